"""Errors: `ApiError` for what the server answers with Google's error envelope, and the
exceptions a worker's handler raises to end its operation (`Failed`, `Retry`).

The envelope is Google's: `{"error": {"code": HTTP, "message", "status",
"details": [{"@type": ".../google.rpc.ErrorInfo", "reason", "domain", "metadata"}]}}`; over
gRPC the same google.rpc.Status arrives with its details in `grpc-status-details-bin`.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class Code(IntEnum):
    """The google.rpc codes (google/rpc/code.proto). A member is its number:
    `Code.NOT_FOUND == 5`, and `str(Code.NOT_FOUND)` is `"5"`."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @classmethod
    def of(cls, number: int) -> Code:
        """The member for `number`; UNKNOWN for a number google.rpc does not define."""
        try:
            return cls(number)
        except ValueError:
            return cls.UNKNOWN


# google.rpc.Code names by number, and each code's HTTP status.
CODE_NAMES = {code.value: code.name for code in Code}
CODES = {name: code for code, name in CODE_NAMES.items()}
HTTP_STATUS = {
    0: 200, 1: 499, 2: 500, 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 8: 429,
    9: 400, 10: 409, 11: 400, 12: 501, 13: 500, 14: 503, 15: 500, 16: 401,
}  # fmt: skip
# For an envelope without `status`: the code an HTTP status stands for.
_BY_HTTP = {400: 3, 401: 16, 403: 7, 404: 5, 409: 10, 429: 8, 499: 1, 501: 12, 503: 14, 504: 4}

ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"


class LongrunError(Exception):
    """Base of every error this package raises."""


class ApiError(LongrunError):
    """The server answered an error (or could not be reached: `code` 14, `http_status` 0).

    Attributes:
        code: the google.rpc code, a `Code` (`Code.NOT_FOUND`, which equals 5).
        status: its name (`"NOT_FOUND"`).
        http_status: the HTTP status of the answer (404), or 0 when no answer came.
        message: the server's message.
        reason: the ErrorInfo reason (`"OPERATION_NOT_FOUND"`), or None.
        metadata: the ErrorInfo metadata (str to str), empty without one.
        details: every detail of the envelope as received (dicts with `@type`).
    """

    def __init__(
        self,
        code: int,
        message: str,
        *,
        http_status: int | None = None,
        reason: str | None = None,
        metadata: dict[str, str] | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(f"{CODE_NAMES.get(code, code)}: {message}")
        self.code = Code.of(code)
        self.status = self.code.name
        self.http_status = HTTP_STATUS.get(code, 500) if http_status is None else http_status
        self.message = message
        self.reason = reason
        self.metadata = metadata or {}
        self.details = details or []

    @classmethod
    def from_envelope(cls, http_status: int, body: Any) -> ApiError:
        """The error of a non-2xx answer whose body is `body` (parsed JSON, or anything)."""
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict):
            code = _BY_HTTP.get(http_status, 2 if http_status < 500 else 13)
            return cls(code, f"HTTP {http_status}", http_status=http_status)
        status = error.get("status")
        code = CODES.get(status, _BY_HTTP.get(http_status, 2)) if isinstance(status, str) else 2
        details = [d for d in error.get("details") or [] if isinstance(d, dict)]
        info = next((d for d in details if d.get("@type") == ERROR_INFO), {})
        return cls(
            code,
            str(error.get("message", "")),
            http_status=http_status,
            reason=info.get("reason"),
            metadata=dict(info.get("metadata") or {}),
            details=details,
        )


class Failed(LongrunError):
    """Raised by a handler: the operation ends FAILED with this message and `code`
    (a google.rpc code, default `Code.UNKNOWN`; `Code.CANCELLED` acknowledges a
    cancellation, `Code.UNAVAILABLE` asks for a retry)."""

    def __init__(self, message: str, code: int = Code.UNKNOWN) -> None:
        super().__init__(message)
        self.message = message
        self.code = Code.of(code)


class Retry(Failed):
    """Raised by a handler: the attempt ends with code 14 UNAVAILABLE, and the server puts
    the operation back in the queue while attempts remain (`max_attempts`), else FAILED."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code=Code.UNAVAILABLE)
