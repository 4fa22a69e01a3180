"""Bearer tokens for servers with auth mode `oauth`: a static token, a callable that returns
one, or a service-account key file (Google's format, as `longrun service-accounts create`
writes it) exchanged at the server's `/token` through google-auth (README: Authentication).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

# The scope the server requires of its tokens (docs/auth.md#scopes).
SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]

Token = str | Callable[[], str] | None


class Authorizer:
    """Gives the `authorization` header value for each call, refreshing a key file's token
    before it expires (google-auth refreshes a few minutes ahead)."""

    def __init__(self, token: Token = None, credentials_file: str | None = None) -> None:
        if token is not None and credentials_file is not None:
            raise ValueError("give either token or credentials_file, not both")
        self._token = token
        self._credentials: Any = None
        self._lock = threading.Lock()
        if credentials_file is not None:
            try:
                from google.oauth2 import service_account
            except ImportError as e:  # pragma: no cover - depends on the install
                raise ImportError(
                    "a credentials file needs google-auth: pip install 'longrun[auth]'"
                ) from e
            self._credentials = service_account.Credentials.from_service_account_file(
                credentials_file, scopes=SCOPES
            )

    @property
    def enabled(self) -> bool:
        return self._token is not None or self._credentials is not None

    def header(self) -> str | None:
        """`Bearer TOKEN`, or None without a token. May block (a key file's token exchange)."""
        if self._credentials is not None:
            with self._lock:
                if not self._credentials.valid:
                    import google.auth.transport.requests

                    self._credentials.refresh(google.auth.transport.requests.Request())
                return f"Bearer {self._credentials.token}"
        if self._token is None:
            return None
        token = self._token() if callable(self._token) else self._token
        return f"Bearer {token}"

    def needs_refresh(self) -> bool:
        return self._credentials is not None and not self._credentials.valid

    async def header_async(self) -> str | None:
        """`header()`, with a token exchange run in a thread so the event loop goes on."""
        if self.needs_refresh():
            return await asyncio.to_thread(self.header)
        return self.header()
