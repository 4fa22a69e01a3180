"""What a finished handler's attempt reports: its response, or a `Failure` (for an
unexpected exception, with its traceback trimmed into a DebugInfo). The worker and
`longrun.testing` both read outcomes here, so a test sees what the server would."""

from __future__ import annotations

import asyncio
import os
import traceback
from typing import Any

from ._transport.backend import Failure
from .errors import Code, Failed

# Bounds on what an exception's DebugInfo carries: the innermost frames, each entry cut to
# a length, and the exception's own line; a few KiB at most, whatever the traceback.
_MAX_FRAMES = 30
_MAX_ENTRY = 400
_MAX_DETAIL = 2000
_MAX_MESSAGE = 2000

_HERE = os.path.dirname(__file__)

CANCELLED = Failure(Code.CANCELLED, "Cancelled by the worker on request.")
CANCELLED_BEFORE_START = Failure(Code.CANCELLED, "Cancelled before it started.")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def crashed(error: BaseException) -> Failure:
    """The failure an unexpected exception makes: code 2, `Type: message`, and a DebugInfo
    with the traceback's innermost frames (the handler's, not the worker's)."""
    frames = traceback.extract_tb(error.__traceback__)
    # The worker's own frames that called the handler come first: leave them out.
    while frames and os.path.dirname(frames[0].filename) == _HERE:
        frames.pop(0)
    stack = [_cut(entry.strip(), _MAX_ENTRY) for entry in traceback.format_list(frames)]
    if len(stack) > _MAX_FRAMES:
        omitted = len(stack) - _MAX_FRAMES
        stack = [f"... {omitted} outer frames omitted", *stack[-_MAX_FRAMES:]]
    detail = "".join(traceback.format_exception_only(type(error), error)).strip()
    text = str(error)
    message = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return Failure(
        Code.UNKNOWN, _cut(message, _MAX_MESSAGE), tuple(stack), _cut(detail, _MAX_DETAIL)
    )


def of(handler: asyncio.Future[Any], cancel_requested: bool) -> tuple[Any, Failure | None]:
    """The response, or the failure, of a finished handler. `cancel_requested`: the server
    asked for a cancel, so a handler ended by `CancelledError` acknowledges it."""
    if handler.cancelled():
        if cancel_requested:
            return None, CANCELLED
        return None, Failure(
            Code.UNAVAILABLE, "The handler was cancelled, though no cancel was requested."
        )
    error = handler.exception()
    if error is None:
        result = handler.result()
        return ({} if result is None else result), None
    if isinstance(error, asyncio.CancelledError):
        return None, CANCELLED
    if isinstance(error, Failed):
        return None, Failure(error.code, error.message)
    return None, crashed(error)


async def call_async(handler: Any, ctx: Any) -> Any:
    """Runs an `async def` handler (this frame is left out of its DebugInfo)."""
    return await handler(ctx)


def call_sync(handler: Any, ctx: Any) -> Any:
    """Runs a plain `def` handler (this frame is left out of its DebugInfo)."""
    return handler(ctx)
