"""AttemptDeadline: asyncio.timeout's behaviour for the first-byte and whole-request deadlines."""

from __future__ import annotations

import asyncio

import pytest

from aigw_gateway.routing.deadline import AttemptDeadline


async def _attempt(first: float, final: float, head_after: float | None, body_after: float) -> str:
    loop = asyncio.get_running_loop()
    now = loop.time()
    try:
        async with AttemptDeadline(loop, now + first, now + final) as budget:
            if head_after is None:
                await asyncio.sleep(3600)
            await asyncio.sleep(head_after)
            budget.head_arrived()
            await asyncio.sleep(body_after)
    except TimeoutError:
        return f"timeout at {loop.time() - now:.2f}"
    return "done"


def test_no_head_within_the_first_byte_deadline_is_a_timeout():
    out = asyncio.run(_attempt(0.05, 5.0, None, 0))
    assert out.startswith("timeout at 0.0"), out


def test_after_the_head_the_whole_request_deadline_applies():
    assert asyncio.run(_attempt(0.05, 5.0, 0.01, 0.1)) == "done"  # the body outlives the first-byte deadline
    out = asyncio.run(_attempt(0.05, 0.2, 0.01, 3600))
    assert out.startswith("timeout at 0.2"), out


def test_equal_deadlines_expire_once():
    out = asyncio.run(_attempt(0.05, 0.05, 0.01, 3600))
    assert out.startswith("timeout at 0.0"), out


def test_a_cancellation_from_elsewhere_stays_a_cancellation():
    async def main() -> None:
        loop = asyncio.get_running_loop()

        async def attempt() -> None:
            async with AttemptDeadline(loop, loop.time() + 5, loop.time() + 5):
                await asyncio.sleep(3600)

        task = asyncio.create_task(attempt())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
