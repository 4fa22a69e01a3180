"""The worker protocol over REST: `POST /v1/workers/W:lease`, `...:heartbeat` (with
`waitForCancel`, which returns the moment a cancel is requested) and `...:complete`. The
fallback where gRPC cannot be used."""

from __future__ import annotations

from typing import Any

from .._auth import Authorizer
from ..client import duration
from ..context import Assignment, Report
from ..errors import ApiError
from .backend import LeaseLost
from .rest import AsyncRest, path


def _fenced(e: ApiError) -> bool:
    return e.code in (5, 10)


class RestBackend:
    """REST calls on pooled connections (one per running operation's waiting heartbeat)."""

    pushes_cancels = False

    def __init__(self, url: str, auth: Authorizer, concurrency: int) -> None:
        self._rest = AsyncRest(url, auth, timeout=90.0, connections=concurrency * 2 + 4)

    async def lease(
        self, worker: str, types: list[str], max_operations: int, wait: float, lease: float
    ) -> list[Assignment]:
        body = {
            "types": types,
            "maxOperations": max_operations,
            "waitTimeout": duration(wait),
            "leaseDuration": duration(lease),
        }
        answer = await self._rest.call("POST", f"/v1/workers/{worker}:lease", body)
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
            answer = await self._rest.call("POST", path(a.name, "heartbeat"), body)
        except ApiError as e:
            if _fenced(e):
                raise LeaseLost(str(e)) from e
            raise
        return bool(answer.get("cancelRequested"))

    async def complete(self, a: Assignment, response: Any, error: tuple[int, str] | None) -> None:
        body: dict[str, Any] = {"leaseId": a.lease_id}
        if error is None:
            body["response"] = response
        else:
            body["error"] = {"code": error[0], "message": error[1]}
        try:
            await self._rest.call("POST", path(a.name, "complete"), body)
        except ApiError as e:
            if _fenced(e):
                raise LeaseLost(str(e)) from e
            raise

    async def close(self) -> None:
        await self._rest.close()
