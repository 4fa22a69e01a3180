"""The wire JSON of a schedule (docs/schedules.md), typed: a cron pattern in a time zone that
submits an operation at each fire time. Keys the server omits when empty are optional."""

from __future__ import annotations

from typing import Any, Literal, TypedDict

OverlapPolicy = Literal["SKIP", "ALLOW", "CANCEL_PREVIOUS"]


class _ScheduleRequired(TypedDict):
    name: str
    cron: str
    timeZone: str
    operation: dict[str, Any]
    overlapPolicy: OverlapPolicy
    paused: bool
    createTime: str
    updateTime: str


class Schedule(_ScheduleRequired, total=False):
    """A schedule as the server sends it. `nextFireTime` is absent while paused;
    `lastFireTime` and `lastOperation` once it has fired."""

    nextFireTime: str
    lastFireTime: str
    lastOperation: str


def schedule_body(
    cron: str | None,
    operation: dict[str, Any] | None,
    time_zone: str | None,
    overlap_policy: OverlapPolicy | None,
    paused: bool | None,
) -> dict[str, Any]:
    """The fields given, as a create or patch body holds them."""
    fields = {
        "cron": cron,
        "operation": operation,
        "timeZone": time_zone,
        "overlapPolicy": overlap_policy,
        "paused": paused,
    }
    return {k: v for k, v in fields.items() if v is not None}
