"""The gateway's error tree, rendered once into the client's wire format.

Every failure a client can see is a `GatewayError` subclass: foreign exceptions (httpx,
provider error bodies, JSON decoding) are mapped at the boundary where they occur. The body
never carries a stack trace or a secret; it always carries a type and the request id.
"""

from __future__ import annotations

import orjson


class GatewayError(Exception):
    status_code = 500
    type = "server_error"
    code: str | None = "internal_error"
    retryable = False

    def __init__(self, message: str, *, param: str | None = None, headers: dict[str, str] | None = None) -> None:
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


class UpstreamConnectError(UpstreamError):
    code = "upstream_unreachable"


class UpstreamTimeout(UpstreamError):
    status_code = 504
    code = "upstream_timeout"


class UpstreamBadResponse(UpstreamError):
    code = "upstream_bad_response"


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
