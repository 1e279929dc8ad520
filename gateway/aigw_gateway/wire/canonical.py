"""The canonical shapes (OpenAI chat) the ingresses produce and the adapters consume, typed.

Canonical = OpenAI's chat completions request, `chat.completion` and `chat.completion.chunk`,
plus a few extension keys for what OpenAI's chat API cannot say but another API can, so that a
translation across formats carries it instead of losing it:

request (top level)
  `top_k`             Anthropic top_k, Gemini topK, Ollama options.top_k
  `reasoning_budget`  thinking budget in tokens (Anthropic thinking.budget_tokens, Gemini
                      thinkingBudget); 0 = off, -1 = the model decides
  `x_vendor`          {api: {field: value}}: fields of the client's API with no canonical
                      counterpart; the same API's adapter re-applies them, any other refuses them
                      by their client-side name
  `x_names`           {canonical key: the client's name for it} (`thinking` for reasoning_budget),
                      so a refusal names what the client sent
  `x_paths`           [the client's path for canonical message i] ("system", "messages[3]"), when
                      the two numberings differ, so a refusal of message content points at the
                      client's own message
messages
  system/user parts   `cache_control` on a content part (Anthropic's marker, the convention
                      OpenAI-compatible gateways use); tools may carry it too
  assistant           `thinking_blocks` [{type: thinking, thinking, signature} |
                      {type: redacted_thinking, data}], `reasoning_content` (text)
  tool                `is_error`; content may be a list of text and image_url parts
response / chunk choices
  `stop_reason`       the stop sequence that ended the answer (vLLM's convention)
  message/delta       `reasoning_content`, `thinking_blocks`
usage
  prompt_tokens counts every input token, cache reads and writes included;
  `prompt_tokens_details.cached_tokens` (reads) and `.cache_write_tokens` (writes) itemise them.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

# Extension keys that no OpenAI API accepts: adapters for OpenAI-shaped targets remove them.
EXTENSION_KEYS = ("top_k", "reasoning_budget", "x_vendor", "x_names", "x_paths")
MESSAGE_EXTENSION_KEYS = ("thinking_blocks", "reasoning_content", "is_error", "cache_control")

# reasoning_effort <-> thinking budget (tokens). Budgets follow Anthropic's minimum of 1024.
EFFORT_BUDGET: dict[str, int] = {"none": 0, "minimal": 1024, "low": 2048, "medium": 8192, "high": 24576,
                                 "xhigh": 32768}


def effort_for_budget(budget: int) -> str | None:
    """The reasoning_effort closest to a budget; None for 'the model decides' (-1)."""
    if budget < 0:
        return None
    if budget == 0:
        return "none"
    if budget <= 1024:
        return "minimal"
    if budget <= 2048:
        return "low"
    if budget <= 8192:
        return "medium"
    return "high"


def reasoning_budget(request: "ChatRequest") -> int | None:
    """The request's thinking budget from reasoning_budget or reasoning_effort; None when unset."""
    budget = request.get("reasoning_budget")
    if isinstance(budget, int) and not isinstance(budget, bool):
        return budget
    effort = request.get("reasoning_effort")
    if isinstance(effort, str):
        return EFFORT_BUDGET.get(effort)
    return None


class ContentPart(TypedDict, total=False):
    type: str  # text | image_url | input_audio | file
    text: str
    image_url: dict[str, Any]
    input_audio: dict[str, Any]
    file: dict[str, Any]
    cache_control: dict[str, Any]


class ToolCall(TypedDict, total=False):
    index: int
    id: str
    type: Literal["function"]
    function: dict[str, Any]  # {name, arguments (JSON text)}


class Message(TypedDict, total=False):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None
    name: str
    tool_calls: list[ToolCall]
    tool_call_id: str
    is_error: bool
    thinking_blocks: list[dict[str, Any]]
    reasoning_content: str


class ChatRequest(TypedDict, total=False):
    model: str
    messages: list[Message]
    stream: bool
    stream_options: dict[str, Any]
    max_tokens: int
    max_completion_tokens: int
    temperature: float
    top_p: float
    top_k: int
    n: int
    stop: str | list[str]
    presence_penalty: float
    frequency_penalty: float
    seed: int
    logprobs: bool
    top_logprobs: int
    logit_bias: dict[str, float]
    user: str
    tools: list[dict[str, Any]]
    tool_choice: str | dict[str, Any]
    parallel_tool_calls: bool
    response_format: dict[str, Any]
    reasoning_effort: str
    reasoning_budget: int
    x_vendor: dict[str, dict[str, Any]]
    x_names: dict[str, str]
    x_paths: list[str]


class PromptTokensDetails(TypedDict, total=False):
    cached_tokens: int
    cache_write_tokens: int


class Usage(TypedDict, total=False):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails
    completion_tokens_details: dict[str, int]


class Choice(TypedDict, total=False):
    index: int
    message: Message
    delta: Message
    finish_reason: str | None
    stop_reason: str | None


class Completion(TypedDict, total=False):
    id: str
    object: str  # chat.completion | chat.completion.chunk
    created: int
    model: str
    choices: list[Choice]
    usage: Usage


def usage_dict(input_tokens: int, output_tokens: int, *, cache_read: int = 0, cache_write: int = 0,
               reasoning: int = 0) -> Usage:
    """Canonical usage from uncached input, output and cache reads/writes (never folded silently:
    both are counted in prompt_tokens and itemised)."""
    prompt = input_tokens + cache_read + cache_write
    out: Usage = {"prompt_tokens": prompt, "completion_tokens": output_tokens, "total_tokens": prompt + output_tokens}
    details: PromptTokensDetails = {}
    if cache_read:
        details["cached_tokens"] = cache_read
    if cache_write:
        details["cache_write_tokens"] = cache_write
    if details:
        out["prompt_tokens_details"] = details
    if reasoning:
        out["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return out


def cache_tokens(usage: Any) -> tuple[int, int]:
    """(cache reads, cache writes) of a canonical usage."""
    details = usage.get("prompt_tokens_details") if isinstance(usage, dict) else None
    if not isinstance(details, dict):
        return 0, 0
    return int(details.get("cached_tokens") or 0), int(details.get("cache_write_tokens") or 0)


def client_param(request: Any, param: str | None) -> str | None:
    """`messages[i]...` of the canonical request as the client's own path (see `x_paths`)."""
    paths = request.get("x_paths") if isinstance(request, dict) else None
    if not paths or not param or not param.startswith("messages["):
        return param
    index, _, rest = param[len("messages["):].partition("]")
    try:
        return paths[int(index)] + rest
    except (ValueError, IndexError):
        return param
