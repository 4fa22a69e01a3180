"""The worker protocol over REST: `POST /v1/workers/W:lease`, `...:heartbeat` (with
`waitForCancel`, which returns the moment a cancel is requested), `...:complete` and
`...:release`. The fallback where gRPC cannot be used."""

from __future__ import annotations

from typing import Any

from .._auth import Authorizer
from ..client import duration
from ..context import Assignment, Report
from ..errors import ApiError
from ..tls import Tls
from .backend import Failure, LeaseLost, Reconnects, not_json, too_large, unreachable
from .rest import MAX_BODY, UNREACHABLE, AsyncRest, encode, path


def _fenced(e: ApiError) -> bool:
    return e.code in (5, 10)


class RestBackend:
    """REST calls on pooled connections (one per running operation's waiting heartbeat)."""

    pushes_cancels = False

    def __init__(self, url: str, auth: Authorizer, operations: int, tls: Tls | None = None) -> None:
        self._rest = AsyncRest(url, auth, timeout=90.0, connections=operations * 2 + 4, tls=tls)
        self._reconnects = Reconnects(url)

    @property
    def connected(self) -> bool:
        return self._reconnects.failures == 0

    async def _call(self, url: str, body: Any = None, content: bytes | None = None) -> Any:
        """One POST; a server that cannot be reached is retried no sooner than the
        backoff allows, and each failed attempt is logged once."""
        await self._reconnects.ready()
        try:
            answer = await self._rest.call("POST", url, body, content=content)
        except ApiError as e:
            if unreachable(e):
                self._reconnects.failed(e.message.removeprefix(UNREACHABLE))
            raise
        self._reconnects.succeeded()
        return answer

    async def lease(
        self, worker: str, types: list[str], max_operations: int, wait: float, lease: float
    ) -> list[Assignment]:
        body = {
            "types": types,
            "maxOperations": max_operations,
            "waitTimeout": duration(wait),
            "leaseDuration": duration(lease),
        }
        answer = await self._call(f"/v1/workers/{worker}:lease", body)
        leased = []
        for entry in answer.get("leases", []):
            op = entry["operation"]
            metadata = op.get("metadata", {})
            leased.append(
                Assignment(
                    name=op["name"],
                    type=metadata.get("type", ""),
                    lease_id=entry["leaseId"],
                    payload=entry.get("payload"),
                    attempt=int(metadata.get("attempt", 1)),
                    operation_source=op,
                )
            )
        return leased

    async def heartbeat(self, a: Assignment, report: Report | None, wait_for_cancel: float) -> bool:
        body: dict[str, Any] = {"leaseId": a.lease_id}
        if report is not None:
            body.update(report.rest())
        if wait_for_cancel > 0:
            body["waitForCancel"] = duration(wait_for_cancel)
        try:
            answer = await self._call(path(a.name, "heartbeat"), body)
        except ApiError as e:
            if _fenced(e):
                raise LeaseLost(str(e)) from e
            raise
        return bool(answer.get("cancelRequested"))

    async def complete(self, a: Assignment, response: Any, error: Failure | None) -> None:
        def body(error: Failure | None) -> bytes:
            if error is None:
                return encode({"leaseId": a.lease_id, "response": response})
            return encode({"leaseId": a.lease_id, "error": error.rest()})

        try:
            content = body(error)
        except (TypeError, ValueError) as e:
            content = body(not_json(e))
        if len(content) > MAX_BODY:
            content = body(too_large(len(content), MAX_BODY))
        try:
            await self._call(path(a.name, "complete"), content=content)
        except ApiError as e:
            if _fenced(e):
                raise LeaseLost(str(e)) from e
            raise

    async def release(self, a: Assignment) -> None:
        try:
            await self._call(path(a.name, "release"), {"leaseId": a.lease_id})
        except ApiError as e:
            if _fenced(e):
                raise LeaseLost(str(e)) from e
            raise

    async def stop_leasing(self, timeout: float) -> None:
        # A lease over REST is a request of its own, which ends with its wait.
        return

    async def close(self, timeout: float) -> None:
        await self._rest.close()
