"""longrun: clients and workers for a longrun server.

- `Client` / `AsyncClient`: submit, get, list, wait, watch, cancel, batch cancel, delete,
  a command operation's output, schedules (`Schedule`) and queues (`Queue`).
- `Worker`: runs `async def` or plain `def` handlers for the operations it leases.
- `Operation` (a TypedDict of the wire JSON), `State`, `WaitingReason` and `Code` (enums).
- `Tls`: an `https://` server's CA and this side's client certificate.
- `ApiError`: an error answer; `Failed` / `Retry`: raised by handlers.
- `longrun.testing`: runs a handler without a server.

`Client`, `AsyncClient` and `Worker` are imported on first use, so that a gRPC worker does
not load the HTTP client library (a worker's idle memory is one of its costs).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .context import Context
from .errors import ApiError, Code, Failed, LongrunError, Retry
from .operation import Operation, OperationMetadata, Stage, State, Status, WaitingReason
from .queue import Queue, QueueState
from .schedule import OverlapPolicy, Schedule
from .tls import Tls

if TYPE_CHECKING:
    from .client import AsyncClient, Client, WatchEvent
    from .worker import Worker

__all__ = [
    "ApiError",
    "AsyncClient",
    "Client",
    "Code",
    "Context",
    "Failed",
    "LongrunError",
    "Operation",
    "OperationMetadata",
    "OverlapPolicy",
    "Queue",
    "QueueState",
    "Retry",
    "Schedule",
    "Stage",
    "State",
    "Status",
    "Tls",
    "WaitingReason",
    "WatchEvent",
    "Worker",
]
__version__ = "0.2.0"

_LAZY = {
    "Client": ".client",
    "AsyncClient": ".client",
    "WatchEvent": ".client",
    "Worker": ".worker",
    "testing": ".testing",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'longrun' has no attribute {name!r}")
    imported = importlib.import_module(module, __name__)
    value = imported if name == "testing" else getattr(imported, name)
    globals()[name] = value
    return value
