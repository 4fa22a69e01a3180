"""`Client` and `AsyncClient`: submit, get, list, cancel, delete and wait over REST.
Operations are the wire JSON, typed as `longrun.Operation`."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from ._auth import Authorizer, Token
from ._transport.rest import AsyncRest, Rest, path
from .operation import Operation

# Added to a wait's own timeout for the HTTP call, so the answer has time to arrive.
_WAIT_SLACK = 10.0


def duration(seconds: float) -> str:
    """Seconds as a proto3 JSON duration (`"3.500s"`)."""
    return f"{max(seconds, 0.0):.3f}s"


def _submission(
    type: str,
    payload: Any,
    description: str,
    priority: int | None,
    request_id: str | None,
    operation_id: str | None,
    max_attempts: int | None,
    timeout: float | None,
    script_uri: str | None,
    destination_uris: list[str] | None,
    concurrency_key: str | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"type": type, "description": description}
    optional = {
        "payload": payload,
        "priority": priority,
        "requestId": request_id,
        "operationId": operation_id,
        "maxAttempts": max_attempts,
        "timeout": None if timeout is None else duration(timeout),
        "scriptUri": script_uri,
        "destinationUris": destination_uris,
        "concurrencyKey": concurrency_key,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    return body


def _page_params(filter: str | None, page_size: int | None, token: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if filter:
        params["filter"] = filter
    if page_size is not None:
        params["pageSize"] = page_size
    if token:
        params["pageToken"] = token
    return params


class Client:
    """Blocking client of one server.

    Args:
        url: the server, e.g. `"http://127.0.0.1:8080"`.
        token: a bearer token, or a callable returning one, for auth mode `oauth`.
        credentials_file: instead of `token`, a service-account key file (needs google-auth).
        timeout: seconds for one HTTP call (a wait's call gets its own timeout on top).

    Every method raises `longrun.ApiError` for an error answer (its `.code` is the
    google.rpc code as a `longrun.Code`, `.reason` the ErrorInfo reason), and `ApiError`
    with code 14 and `http_status` 0 when the server cannot be reached. Names are full
    operation names, `projects/P/operations/ID`, as in `op["name"]`.
    """

    def __init__(
        self,
        url: str,
        token: Token = None,
        *,
        credentials_file: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        self._rest = Rest(url, Authorizer(token, credentials_file), timeout)

    def submit(
        self,
        project: str,
        type: str,
        payload: Any = None,
        *,
        description: str = "",
        priority: int | None = None,
        request_id: str | None = None,
        operation_id: str | None = None,
        max_attempts: int | None = None,
        timeout: float | None = None,
        script_uri: str | None = None,
        destination_uris: list[str] | None = None,
        concurrency_key: str | None = None,
    ) -> Operation:
        """Queues an operation of `type` in `project`; returns it PENDING. `payload` is any
        JSON value, handed to the worker; `timeout` is in seconds (then FAILED with code 4).
        The same `request_id` again returns the first operation; a used `operation_id` is
        409 ALREADY_EXISTS; a full queue is 429 RESOURCE_EXHAUSTED. `concurrency_key`
        (1 to 256 bytes) groups operations for the type's `key_concurrency`: at most that
        many of one key run at once in the project; it is read back
        as `metadata.concurrencyKey`."""
        body = _submission(
            type, payload, description, priority, request_id, operation_id,
            max_attempts, timeout, script_uri, destination_uris, concurrency_key,
        )  # fmt: skip
        result: Operation = self._rest.call(
            "POST", path(f"projects/{project}/operations:submit"), body
        )
        return result

    def get(self, name: str) -> Operation:
        """The operation's latest state; 404 NOT_FOUND when unknown."""
        result: Operation = self._rest.call("GET", path(name))
        return result

    def list(
        self, project: str, filter: str | None = None, page_size: int | None = None
    ) -> Iterator[Operation]:
        """Every operation of `project` matching `filter` (AIP-160: `done = false`,
        `metadata.state = "RUNNING" AND metadata.type = "EXPORT_IMAGE"`), newest
        first, fetched a page (`page_size`, default 100) at a time as the loop goes on."""
        token: str | None = None
        while True:
            params = _page_params(filter, page_size, token)
            page = self._rest.call("GET", path(f"projects/{project}/operations"), params=params)
            yield from page.get("operations", [])
            token = page.get("nextPageToken")
            if not token:
                return

    def cancel(self, name: str) -> None:
        """Asks for cancellation: a PENDING operation ends CANCELLED at once, a RUNNING one
        becomes CANCELLING and its worker is told. The intent is durable when this returns.
        Sent with an empty body (the server accepts one), in one packet."""
        self._rest.call("POST", path(name, "cancel"))

    def delete(self, name: str) -> None:
        """Removes a done operation; 400 FAILED_PRECONDITION while it is not done."""
        self._rest.call("DELETE", path(name))

    def wait(self, name: str, timeout: float = 30.0) -> Operation:
        """Waits up to `timeout` seconds for the operation to be done and returns it (done
        or not). The server caps one wait (600 s by default); the call is repeated until
        `timeout` has passed."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            op: Operation = self._rest.call(
                "POST", path(name, "wait"), {"timeout": duration(left)}, timeout=left + _WAIT_SLACK
            )
            if op.get("done") or deadline - time.monotonic() <= 0:
                return op

    def close(self) -> None:
        """Closes the connections."""
        self._rest.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient:
    """The same methods as `Client`, awaitable; `list` is an async iterator."""

    def __init__(
        self,
        url: str,
        token: Token = None,
        *,
        credentials_file: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        self._rest = AsyncRest(url, Authorizer(token, credentials_file), timeout)

    async def submit(
        self,
        project: str,
        type: str,
        payload: Any = None,
        *,
        description: str = "",
        priority: int | None = None,
        request_id: str | None = None,
        operation_id: str | None = None,
        max_attempts: int | None = None,
        timeout: float | None = None,
        script_uri: str | None = None,
        destination_uris: list[str] | None = None,
        concurrency_key: str | None = None,
    ) -> Operation:
        """See `Client.submit`."""
        body = _submission(
            type, payload, description, priority, request_id, operation_id,
            max_attempts, timeout, script_uri, destination_uris, concurrency_key,
        )  # fmt: skip
        url = path(f"projects/{project}/operations:submit")
        result: Operation = await self._rest.call("POST", url, body)
        return result

    async def get(self, name: str) -> Operation:
        """See `Client.get`."""
        result: Operation = await self._rest.call("GET", path(name))
        return result

    async def list(
        self, project: str, filter: str | None = None, page_size: int | None = None
    ) -> AsyncIterator[Operation]:
        """See `Client.list`; iterate with `async for`."""
        token: str | None = None
        while True:
            params = _page_params(filter, page_size, token)
            url = path(f"projects/{project}/operations")
            page = await self._rest.call("GET", url, params=params)
            for op in page.get("operations", []):
                yield op
            token = page.get("nextPageToken")
            if not token:
                return

    async def cancel(self, name: str) -> None:
        """See `Client.cancel`."""
        await self._rest.call("POST", path(name, "cancel"))

    async def delete(self, name: str) -> None:
        """See `Client.delete`."""
        await self._rest.call("DELETE", path(name))

    async def wait(self, name: str, timeout: float = 30.0) -> Operation:
        """See `Client.wait`."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            op: Operation = await self._rest.call(
                "POST", path(name, "wait"), {"timeout": duration(left)}, timeout=left + _WAIT_SLACK
            )
            if op.get("done") or deadline - time.monotonic() <= 0:
                return op

    async def close(self) -> None:
        """Closes the connections."""
        await self._rest.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
