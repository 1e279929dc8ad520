"""FirstChunkNow: the same messages as Starlette's StreamingResponse, but the head and the first
chunk are sent by the request's own task before the disconnect listener runs (no event-loop
iteration in between), and a disconnect still stops the relay."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import StreamingResponse

from aigw_gateway.streaming.first_chunk import FirstChunkNow

SCOPE = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "method": "POST", "path": "/"}


async def _chunks(items: list[Any]) -> AsyncIterator[Any]:
    """Like the relay generators: the first chunk is ready, the next ones come later."""
    for item in items:
        yield item
        await asyncio.sleep(0)


async def _serve(response: StreamingResponse) -> list[tuple[str, Any]]:
    events: list[tuple[str, Any]] = []
    done = asyncio.Event()

    async def receive() -> dict[str, Any]:
        events.append(("receive", None))
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        events.append((message["type"], message.get("body")))
        if message["type"] == "http.response.body" and not message.get("more_body"):
            done.set()

    await response(SCOPE, receive, send)
    return events


def _messages(events: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    return [e for e in events if e[0] != "receive"]


def test_same_messages_as_starlette_with_the_first_chunk_before_the_listener() -> None:
    items = [b"data: 1\n\n", "data: 2\n\n", b"", b"data: [DONE]\n\n"]
    ours = asyncio.run(_serve(FirstChunkNow(_chunks(items), media_type="text/event-stream")))
    theirs = asyncio.run(_serve(StreamingResponse(_chunks(items), media_type="text/event-stream")))
    assert _messages(ours) == _messages(theirs)
    assert [e[0] for e in ours[:2]] == ["http.response.start", "http.response.body"]
    assert ours[1][1] == b"data: 1\n\n" and ("receive", None) in ours  # the listener came after it
    assert theirs[0][0] == "receive"  # Starlette's relay task starts only after the listener


def test_no_task_is_made_before_the_first_chunk_is_sent() -> None:
    """The listener's task is created at the loop's next turn: nothing but the head and the first
    chunk's sends lies between the executor's first token and the client's socket."""
    tasks_at_first_chunk: list[int] = []

    async def main() -> list[tuple[str, Any]]:
        before = len(asyncio.all_tasks())
        response = FirstChunkNow(_chunks([b"data: 1\n\n", b"data: 2\n\n"]))
        original = response.stream_response

        async def stream_response(send):
            async def counting(message):
                if message["type"] == "http.response.body" and not tasks_at_first_chunk:
                    tasks_at_first_chunk.append(len(asyncio.all_tasks()) - before)
                await send(message)
            await original(counting)

        response.stream_response = stream_response  # type: ignore[method-assign]
        return await _serve(response)

    events = asyncio.run(main())
    assert tasks_at_first_chunk == [0]
    assert ("receive", None) in events  # and then it listened


def test_an_empty_stream_ends_at_once() -> None:
    ours = asyncio.run(_serve(FirstChunkNow(_chunks([]))))
    assert _messages(ours) == [("http.response.start", None), ("http.response.body", b"")]


def test_a_disconnect_stops_the_relay_and_ends_the_response_quietly() -> None:
    relayed: list[int] = []
    closed = asyncio.Event()

    async def endless() -> AsyncIterator[bytes]:
        try:
            i = 0
            while True:
                relayed.append(i)
                yield b"data: %d\n\n" % i
                i += 1
                await asyncio.sleep(0.01)
        finally:
            closed.set()

    async def main() -> None:
        calls = 0

        async def receive() -> dict[str, Any]:
            nonlocal calls
            calls += 1
            await asyncio.sleep(0.05)
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            pass

        await asyncio.wait_for(FirstChunkNow(endless())(SCOPE, receive, send), 5)  # returns, no CancelledError
        await asyncio.wait_for(closed.wait(), 5)
        assert calls == 1
        assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]

    asyncio.run(main())
    assert 2 <= len(relayed) < 50
