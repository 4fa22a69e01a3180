"""The watch stream's server-sent events, read line by line: `event:`, `id:` and `data:`
fields up to a blank line make one event; comment lines (`: keep-alive`) are skipped."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..errors import ApiError


@dataclass
class Raw:
    event: str
    id: str | None
    data: Any


class Parser:
    def __init__(self) -> None:
        self._event = ""
        self._id: str | None = None
        self._data: list[str] = []

    def feed(self, line: str) -> Raw | None:
        """One line (without its end); the event it completes, if it is the blank line
        after one. `event: error` raises its error (the stream ends with it)."""
        if line.startswith(":"):
            return None
        if line:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                self._event = value
            elif field == "id":
                self._id = value
            elif field == "data":
                self._data.append(value)
            return None
        if not self._event and not self._data:
            return None
        event, id, data = self._event or "message", self._id, "\n".join(self._data)
        self._event, self._id, self._data = "", None, []
        try:
            parsed: Any = json.loads(data) if data else None
        except ValueError:
            parsed = data
        if event == "error":
            body = parsed if isinstance(parsed, dict) else {}
            error = body.get("error") if isinstance(body.get("error"), dict) else {}
            status = error.get("code", 500) if isinstance(error, dict) else 500
            raise ApiError.from_envelope(int(status), body)
        return Raw(event, id, parsed)
