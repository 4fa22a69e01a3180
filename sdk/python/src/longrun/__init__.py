"""longrun: clients and workers for a longrun server (contract section 14).

- `Client` / `AsyncClient`: submit, get, list, cancel, delete, wait.
- `Worker`: runs `async def` or plain `def` handlers for the operations it leases.
- `ApiError`: an error answer; `Failed` / `Retry`: raised by handlers.
"""

from .client import AsyncClient, Client
from .context import Context
from .errors import ApiError, Failed, LongrunError, Retry
from .worker import Worker

__all__ = [
    "ApiError",
    "AsyncClient",
    "Client",
    "Context",
    "Failed",
    "LongrunError",
    "Retry",
    "Worker",
]
__version__ = "0.1.0"
