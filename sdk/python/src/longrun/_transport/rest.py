"""REST calls with httpx, as a sync and an async twin sharing how a request is built and how
an answer (or Google's error envelope) is read."""

from __future__ import annotations

import json
import ssl
from typing import Any
from urllib.parse import quote

import httpx

from .._auth import Authorizer
from ..errors import ApiError
from ..tls import Tls
from . import API

# The largest request body the server accepts (413 beyond).
MAX_BODY = 1 << 20


def encode(body: Any) -> bytes:
    """`body` as the JSON bytes of a request (as httpx would write them). Raises TypeError
    or ValueError for what is not JSON."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def path(name: str, verb: str = "") -> str:
    """`/v1/NAME[:verb]`; `name` keeps its `/` segments (operation ids may have several)."""
    return f"{API}/{quote(name, safe='/:@')}" + (f":{verb}" if verb else "")


def operation_name(project_or_name: str, operation: str | None = None) -> str:
    """The full name `projects/P/operations/ID` of `name`, which may already be one."""
    if operation is None:
        return project_or_name
    return f"projects/{project_or_name}/operations/{operation}"


def answer(response: httpx.Response) -> Any:
    """The parsed JSON of a 2xx answer (`{}` for an empty body). Raises ApiError otherwise."""
    if response.is_success:
        return response.json() if response.content else {}
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    raise ApiError.from_envelope(response.status_code, body)


UNREACHABLE = "the server could not be reached: "


def unreachable(e: httpx.HTTPError) -> ApiError:
    return ApiError(14, f"{UNREACHABLE}{e}", http_status=0)


def _timeout(seconds: float | None) -> httpx.Timeout:
    return httpx.Timeout(seconds, connect=10.0)


def _verify(tls: Tls | None) -> ssl.SSLContext | bool:
    """httpx's `verify`: the context of `tls`, else the system's roots."""
    return True if tls is None else tls.ssl_context()


class Rest:
    """Blocking calls to one server."""

    def __init__(
        self, base: str, auth: Authorizer, timeout: float = 60.0, tls: Tls | None = None
    ) -> None:
        self.auth = auth
        self.http = httpx.Client(
            base_url=base.rstrip("/"), timeout=_timeout(timeout), verify=_verify(tls)
        )

    def call(
        self,
        method: str,
        url: str,
        body: Any = None,
        params: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        headers = {}
        if (value := self.auth.header()) is not None:
            headers["authorization"] = value
        extra: dict[str, Any] = {} if timeout is None else {"timeout": _timeout(timeout)}
        try:
            response = self.http.request(
                method, url, json=body, params=params, headers=headers, **extra
            )
        except httpx.HTTPError as e:
            raise unreachable(e) from e
        return answer(response)

    def close(self) -> None:
        self.http.close()


class AsyncRest:
    """Awaitable calls to one server."""

    def __init__(
        self,
        base: str,
        auth: Authorizer,
        timeout: float = 60.0,
        connections: int = 100,
        tls: Tls | None = None,
    ) -> None:
        self.auth = auth
        self.http = httpx.AsyncClient(
            base_url=base.rstrip("/"),
            timeout=_timeout(timeout),
            limits=httpx.Limits(max_connections=connections),
            verify=_verify(tls),
        )

    async def call(
        self,
        method: str,
        url: str,
        body: Any = None,
        params: dict[str, Any] | None = None,
        timeout: float | None = None,
        content: bytes | None = None,
    ) -> Any:
        """`body` is sent as JSON; `content`, JSON already encoded, as it is."""
        headers = {}
        if (value := await self.auth.header_async()) is not None:
            headers["authorization"] = value
        extra: dict[str, Any] = {} if timeout is None else {"timeout": _timeout(timeout)}
        if content is not None:
            headers["content-type"] = "application/json"
            extra["content"] = content
        try:
            response = await self.http.request(
                method, url, json=body, params=params, headers=headers, **extra
            )
        except httpx.HTTPError as e:
            raise unreachable(e) from e
        return answer(response)

    async def close(self) -> None:
        await self.http.aclose()
