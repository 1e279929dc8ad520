"""The gateway's error tree, rendered once into the client's wire format.

Every failure a client can see is a `GatewayError` subclass: foreign exceptions (httpx,
provider error bodies, JSON decoding) are mapped at the boundary where they occur. The body
never carries a stack trace or a secret; it always carries a type and the request id.
"""

from __future__ import annotations

import re

import orjson

# Key-shaped strings: provider keys, bearer/basic credentials, tokens. A provider that echoes the
# request's Authorization header in its error text must not hand the key to the client or the log.
_KEY_SHAPED = re.compile(
    r"(?i:\b(?:bearer|basic)\s+)[A-Za-z0-9._~+/=\-]{8,}"
    r"|\bsk-[A-Za-z0-9_\-]{8,}"
    r"|\bAIza[0-9A-Za-z_\-]{20,}"
    r"|\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"
    r"|\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})"
    r"|\bxox[abposer]-[A-Za-z0-9\-]{10,}"
    r"|\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"
    r"|(?i:(?:api[_-]?key|x-goog-api-key|access[_-]?token|secret|password)[\"']?\s*[:=]\s*[\"']?)[^\s\"',;}]{6,}"
)


def _redact_match(match: re.Match[str]) -> str:
    text = match.group(0)
    for sep in (" ", "=", ":", "\"", "'"):  # keep a label ("Bearer ", "api_key=") when there is one
        head, found, _ = text.rpartition(sep)
        if found and head:
            return head + found + "[redacted]"
    return "[redacted]"


def redact_secrets(text: str) -> str:
    """`text` with key-shaped strings replaced by [redacted] (error messages, relayed provider text)."""
    return _KEY_SHAPED.sub(_redact_match, text) if text else text


class GatewayError(Exception):
    status_code = 500
    type = "server_error"
    code: str | None = "internal_error"
    retryable = False  # another try (same target or a fallback) may succeed
    retry_same_target = True  # ...including on the same target (False: only a fallback can help)
    target_failure = False  # counts toward the target's circuit breaker

    def __init__(self, message: str, *, param: str | None = None, headers: dict[str, str] | None = None) -> None:
        message = redact_secrets(message)  # also what a provider said, relayed: never a key
        super().__init__(message)
        self.message = message
        self.param = param
        self.headers = headers or {}

    def openai_body(self, request_id: str) -> bytes:
        return orjson.dumps(
            {
                "error": {
                    "message": self.message,
                    "type": self.type,
                    "param": self.param,
                    "code": self.code,
                    "request_id": request_id,
                }
            }
        )


class InvalidRequest(GatewayError):
    status_code = 400
    type = "invalid_request_error"
    code = "invalid_request"


class OperationNotSupported(InvalidRequest):
    """The route's targets cannot serve this operation at all (embeddings on a chat-only provider)."""

    code = "operation_not_supported"


class InvalidJSON(InvalidRequest):
    code = "invalid_json"


class AuthenticationFailed(GatewayError):
    status_code = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(GatewayError):
    status_code = 403
    type = "permission_error"
    code = "model_not_allowed"


class NotFound(GatewayError):
    status_code = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class MethodNotAllowed(GatewayError):
    status_code = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class RequestTooLarge(GatewayError):
    status_code = 413
    type = "invalid_request_error"
    code = "request_too_large"


class NotReady(GatewayError):
    status_code = 503
    type = "server_error"
    code = "no_config_loaded"


class UpstreamError(GatewayError):
    """The provider failed (5xx, bad response, refused credentials). Retryable unless stated."""

    status_code = 502
    type = "upstream_error"
    code = "upstream_error"
    retryable = True
    target_failure = True


class UpstreamConnectError(UpstreamError):
    code = "upstream_unreachable"


class UpstreamTimeout(UpstreamError):
    status_code = 504
    code = "upstream_timeout"


class FirstByteTimeout(UpstreamTimeout):
    """No response head (or, streaming, no first token) within the route's firstByteSeconds."""


class UpstreamBadResponse(UpstreamError):
    code = "upstream_bad_response"


class UpstreamResponseTooLarge(UpstreamBadResponse):
    """The answer passed a bound (the route's maxResponseBytes, an SSE line or event cap): the
    rest is not read. Another target may answer within it; the same one would not."""

    code = "upstream_response_too_large"
    retry_same_target = False
    target_failure = False


class UpstreamRateLimited(UpstreamError):
    status_code = 429
    type = "rate_limit_error"
    code = "upstream_rate_limited"


class UpstreamRejected(GatewayError):
    """The provider refused the request as the client's fault (4xx): relayed, never retried."""

    status_code = 400
    type = "invalid_request_error"
    code = "upstream_rejected"


class InternalError(GatewayError):
    pass


class RateLimitExceeded(GatewayError):
    """A tenant limit (requests or tokens per minute) is reached. `kind` is "requests" or "tokens"."""

    status_code = 429
    type = "requests"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, kind: str, retry_after: float, headers: dict[str, str] | None = None) -> None:
        super().__init__(message, headers={"retry-after": str(max(1, int(retry_after + 0.999))), **(headers or {})})
        self.type = kind
        self.retry_after = retry_after


class ConcurrencyLimitExceeded(RateLimitExceeded):
    """The tenant already has `concurrentRequests` requests in flight (across the gateway's pods)."""

    code = "concurrency_limit_exceeded"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message, kind="concurrency_limit_exceeded", retry_after=1, headers=headers)


class BudgetExceeded(GatewayError):
    """The tenant's budget for the period is spent and `onExceeded: block`."""

    status_code = 429
    type = "insufficient_quota"
    code = "budget_exceeded"


class LimitsUnavailable(GatewayError):
    """Redis is unreachable and the gateway's redisFailMode is closed."""

    status_code = 503
    type = "server_error"
    code = "limits_unavailable"


class LedgerUnavailable(GatewayError):
    """The usage ledger (PostgreSQL) is not configured or cannot be read right now."""

    status_code = 503
    type = "server_error"
    code = "ledger_unavailable"


class GuardrailBlocked(GatewayError):
    """A guardrail (PII with action block, prompt injection, secrets) refused the request or answer."""

    status_code = 400
    type = "invalid_request_error"
    code = "guardrail_blocked"


class GuardrailUnavailable(GatewayError):
    """A guardrail failed to run and its policy's failMode is closed."""

    status_code = 503
    type = "server_error"
    code = "guardrail_unavailable"


def upstream_status_error(status: int, detail: str | None, retry_after: str | None, target: str) -> GatewayError:
    """The one mapping of a provider's non-2xx status, whatever its wire format.

    - 429: rate limited (retryable, Retry-After relayed);
    - 401/403: the provider refused *our* credential, so the client's key is fine: never a 401;
    - 404: the upstream model or path is wrong in our config: a gateway-side 502;
      (both fall back to the next target, but are not retried on the same one)
    - other 4xx: the client's request is at fault: relayed as 400 (413 stays 413), not retried;
    - 5xx and anything else: upstream failure, retryable.
    """
    if status == 429:
        return UpstreamRateLimited(
            f"upstream {target} is rate limiting", headers={"retry-after": retry_after} if retry_after else None
        )
    if status == 408:
        return UpstreamTimeout(f"upstream {target} timed out reading the request (HTTP 408)")
    if status in (401, 403, 404):
        what = "refused the gateway's credentials" if status != 404 else "does not know the model or path"
        err = UpstreamError(f"upstream {target} {what} (HTTP {status})")
        err.retry_same_target = False  # a configuration problem of this target: fall back, don't retry
        err.target_failure = False  # a 4xx is never a sign of an unhealthy target (breaker)
        return err
    if 400 <= status < 500:
        err = UpstreamRejected(f"upstream {target} rejected the request: {detail or f'HTTP {status}'}")
        err.status_code = 413 if status == 413 else 400
        return err
    return UpstreamError(f"upstream {target} failed with HTTP {status}" + (f": {detail[:300]}" if detail else ""))


# --- rendering in the client's format ----------------------------------------------------------

_ANTHROPIC_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
    413: "request_too_large", 429: "rate_limit_error", 503: "overloaded_error", 529: "overloaded_error",
}
_GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
    405: "UNIMPLEMENTED", 413: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
    502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED",
}

ERROR_FORMATS = ("openai", "anthropic", "gemini")


def render_error(err: GatewayError, request_id: str, fmt: str = "openai") -> bytes:
    """The error body in the wire format of the client's API (OpenAI, Anthropic or Gemini)."""
    if fmt == "anthropic":
        return orjson.dumps({
            "type": "error",
            "error": {"type": _ANTHROPIC_TYPES.get(err.status_code, "api_error"), "message": err.message},
            "request_id": request_id,
        })
    if fmt == "gemini":
        return orjson.dumps({"error": {
            "code": err.status_code,
            "message": err.message,
            "status": _GOOGLE_STATUS.get(err.status_code, "UNKNOWN"),
            "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": (err.code or err.type).upper(),
                         "domain": "aigw.dev", "metadata": {"request_id": request_id, "type": err.type}}],
        }})
    return err.openai_body(request_id)
