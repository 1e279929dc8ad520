"""Output guardrails over a stream of canonical `chat.completion.chunk` dicts.

Each choice's content and each of its tool calls' arguments is a separate `Channel`. A chunk's
text deltas are replaced by what the channels can emit now; everything else (role, ids, names,
finish_reason, usage, unknown fields) passes through in order. A channel is flushed when its
choice finishes, when a later tool call of the same choice starts, before a chunk without
choices (the usage chunk), and at `flush()`, so text always precedes the finish_reason and the
usage that follow it. A chunk left with nothing to say is dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .scanner import Channel

ChannelFactory = Callable[[bool], Channel]
"""make(json_escape) -> a new Channel (json_escape for tool call arguments)."""

_ENVELOPE_SKIP = frozenset({"choices", "usage"})


class ChunkFilter:
    """Rewrites canonical chunks; `feed` and `flush` return the chunks to send on, in order."""

    def __init__(self, make_channel: ChannelFactory, *, drop_logprobs: bool) -> None:
        self._make = make_channel
        self._drop_logprobs = drop_logprobs
        self._content: dict[int, Channel] = {}
        self._tools: dict[int, dict[int, Channel]] = {}
        self._envelope: dict[str, Any] = {"object": "chat.completion.chunk"}
        self._closed_max_held = 0

    @property
    def max_held(self) -> int:
        """Most characters any channel held back at once (observability and tests)."""
        live = [c.max_held for c in self._content.values()]
        live += [c.max_held for tools in self._tools.values() for c in tools.values()]
        return max([self._closed_max_held, *live])

    # -- channels ---------------------------------------------------------------------------

    def _content_channel(self, index: int) -> Channel:
        channel = self._content.get(index)
        if channel is None:
            channel = self._content[index] = self._make(False)
        return channel

    def _tool_channel(self, index: int, tool: int) -> Channel:
        tools = self._tools.setdefault(index, {})
        channel = tools.get(tool)
        if channel is None:
            channel = tools[tool] = self._make(True)
        return channel

    def _close_content(self, index: int) -> str:
        channel = self._content.pop(index, None)
        return self._done(channel) if channel is not None else ""

    def _close_tools(self, index: int, below: int | None = None) -> list[dict[str, Any]]:
        tools = self._tools.get(index) or {}
        out = []
        for tool in sorted(tools):
            if below is not None and tool >= below:
                continue
            rest = self._done(tools.pop(tool))
            if rest:
                out.append({"index": tool, "function": {"arguments": rest}})
        return out

    def _done(self, channel: Channel) -> str:
        rest = channel.flush()
        self._closed_max_held = max(self._closed_max_held, channel.max_held)
        return rest

    # -- chunks -----------------------------------------------------------------------------

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        choices = chunk.get("choices")
        if type(choices) is list and len(choices) == 1 and chunk.get("usage") is None:
            fast = self._fast(chunk, choices[0])
            if fast is not None:
                return fast
        self._envelope = {k: v for k, v in chunk.items() if k not in _ENVELOPE_SKIP}
        if not isinstance(choices, list) or not choices:
            return [*self.flush(), chunk]
        out_choices = []
        for choice in choices:
            new = self._choice(choice) if isinstance(choice, dict) else choice
            if new is not None:
                out_choices.append(new)
        if not out_choices and chunk.get("usage") is None:
            return []
        return [{**chunk, "choices": out_choices}]

    def flush(self) -> list[dict[str, Any]]:
        """End of stream (or a choice-less chunk): whatever every channel still holds."""
        choices = []
        for index in sorted(set(self._content) | set(self._tools)):
            delta: dict[str, Any] = {}
            rest = self._close_content(index)
            if rest:
                delta["content"] = rest
            tools = self._close_tools(index)
            if tools:
                delta["tool_calls"] = tools
            if delta:
                choices.append({"index": index, "delta": delta, "finish_reason": None})
        return [{**self._envelope, "choices": choices}] if choices else []

    def _fast(self, chunk: dict[str, Any], choice: Any) -> list[dict[str, Any]] | None:
        """The common chunk, a text delta of one unfinished choice; None for anything else."""
        if type(choice) is not dict or choice.get("finish_reason") is not None or choice.get("logprobs") is not None:
            return None
        delta = choice.get("delta")
        if type(delta) is not dict or len(delta) != 1:
            return None
        content = delta.get("content")
        if type(content) is not str or not content:
            return None
        index = choice.get("index", 0)
        channel = self._content.get(index)
        if channel is None:
            if self._envelope.get("id") != chunk.get("id"):
                return None  # first chunk of a stream: let the general path note the envelope
            channel = self._content_channel(index)
        text = channel.feed(content)
        if not text:
            return []
        return [{**chunk, "choices": [{**choice, "delta": {"content": text}}]}]

    def _choice(self, choice: dict[str, Any]) -> dict[str, Any] | None:
        index = choice.get("index", 0)
        delta = choice.get("delta")
        finished = choice.get("finish_reason") is not None
        if not isinstance(delta, dict):
            delta = {}
        new_delta = dict(delta)
        # Streamed reasoning is not scanned chunk by chunk: with output guardrails on it is withheld.
        reasoning = new_delta.pop("reasoning_content", None) is not None
        reasoning = new_delta.pop("thinking_blocks", None) is not None or reasoning
        content = delta.get("content")
        text = self._content_channel(index).feed(content) if isinstance(content, str) and content else ""
        if finished:
            text += self._close_content(index)
        if isinstance(content, str) or text:
            new_delta["content"] = text
        calls = delta.get("tool_calls")
        new_calls: list[Any] = []
        if isinstance(calls, list):
            for call in calls:
                new_calls.extend(self._tool_call(index, call))
        if finished:
            new_calls.extend(self._close_tools(index))
        if new_calls:
            new_delta["tool_calls"] = new_calls
        else:
            new_delta.pop("tool_calls", None)
        new = {**choice, "delta": new_delta}
        if self._drop_logprobs and new.get("logprobs") is not None:
            new["logprobs"] = None
        had_text = bool(content) or bool(calls) or reasoning
        says_something = bool(set(new_delta) - {"content"}) or bool(new_delta.get("content")) or content == ""
        if had_text and not says_something and not finished and new.get("logprobs") is None:
            return None  # everything it carried is held back
        return new

    def _tool_call(self, index: int, call: Any) -> list[Any]:
        if not isinstance(call, dict):
            return [call]
        tool = call.get("index", 0)
        out: list[Any] = self._close_tools(index, below=tool)  # a later tool call started
        function = call.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("arguments"), str):
            return [*out, call]
        args = function["arguments"]
        text = self._tool_channel(index, tool).feed(args)
        if not text and args and set(call) <= {"index", "function"} and set(function) <= {"arguments"}:
            return out
        return [*out, {**call, "function": {**function, "arguments": text}}]
