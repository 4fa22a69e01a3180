"""Auth mode `oauth`: clients and workers with a service-account key file (exchanged at the
server's `/token` through google-auth) or a static token; refusals carry their codes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Literal

import httpx
import pytest

import longrun
from longrun.errors import ApiError

from .conftest import Server, make_server
from .helpers import running, state

CONFIG = """
[auth]
mode = "oauth"

[[iam.binding]]
project = "p"
role = "roles/longrun.worker"
members = ["serviceAccount:runner@p.iam.longrun"]

[[iam.binding]]
project = "p"
role = "roles/earthengine.admin"
members = ["serviceAccount:submitter@p.iam.longrun"]
"""


def account(server: Server, name: str) -> Path:
    """Creates NAME@p.iam.longrun in the server's store; returns its key file. A server on
    SQLite holds its data directory, so it is stopped for that and started again on its
    port."""
    key = server.workdir / f"{name}.json"
    store = server.store_args[1:] if server.store_args else ["--data-dir", str(server.data)]
    store = [a for a in store if a != "postgres"]
    holds_directory = not server.store_args
    if holds_directory:
        server.kill()
    try:
        server.cli(
            "service-accounts", "create", name, "--project", "p", "--key-file", str(key),
            "--token-uri", f"{server.url}/token", *store,
        )  # fmt: skip
    finally:
        if holds_directory:
            server.restart()
    return key


def test_key_files_and_tokens(tmp_path: Path, store: str) -> None:
    server = make_server(tmp_path, store, CONFIG)
    try:
        runner, submitter = account(server, "runner"), account(server, "submitter")
        assert json.loads(runner.read_text())["client_email"] == "runner@p.iam.longrun"

        with longrun.Client(server.url) as anonymous, pytest.raises(ApiError) as e:
            anonymous.submit("p", "NAP")
        assert (e.value.code, e.value.http_status) == (16, 401)

        # The worker's account may run work, not submit it.
        with longrun.Client(server.url, credentials_file=str(runner)) as c:
            with pytest.raises(ApiError) as e:
                c.submit("p", "NAP")
            assert (e.value.code, e.value.reason) == (7, "IAM_PERMISSION_DENIED")

        with longrun.Client(server.url, credentials_file=str(submitter)) as client:
            op = client.submit("p", "KEPT")
            # A static token works as well: one exchanged here by hand.
            token = _token(client)
            with longrun.Client(server.url, token=token) as by_token:
                assert by_token.get(op["name"])["name"] == op["name"]

        transports: tuple[Literal["grpc", "rest"], ...] = ("grpc", "rest")
        for transport in transports:
            worker = longrun.Worker(
                server.url, credentials_file=str(runner), transport=transport, lease_poll=0.5
            )

            @worker.handler("AUTHED")
            async def authed(ctx: longrun.Context) -> dict[str, int]:
                return {"n": ctx.payload["n"]}

            asyncio.run(_run_one(server, submitter, worker))

        # A worker whose token is refused keeps retrying and never runs anything.
        refused = longrun.Worker(server.url, token="not-a-token", lease_poll=0.2)

        @refused.handler("AUTHED")
        async def never(ctx: longrun.Context) -> None:
            raise AssertionError("ran without a valid token")

        async def refused_scenario() -> None:
            async with longrun.AsyncClient(server.url, credentials_file=str(submitter)) as c:
                op = await c.submit("p", "AUTHED", {"n": 2})
                async with running(refused):
                    await asyncio.sleep(1.0)
                assert state(await c.get(op["name"])) == "PENDING"

        asyncio.run(refused_scenario())
    finally:
        server.kill()


async def _run_one(server: Server, submitter: Path, worker: longrun.Worker) -> None:
    async with (
        longrun.AsyncClient(server.url, credentials_file=str(submitter)) as c,
        running(worker),
    ):
        op = await c.submit("p", "AUTHED", {"n": 1})
        done = await c.wait(op["name"], timeout=20)
        assert state(done) == "SUCCEEDED", done
        assert done["response"]["value"]["n"] == 1


def _token(client: longrun.Client) -> str:
    header = client._rest.auth.header()
    assert header is not None and header.startswith("Bearer ")
    token = header.removeprefix("Bearer ")
    assert httpx.get(f"{client._rest.http.base_url}/v1/projects/p/operations",
                     headers={"authorization": header}).status_code == 200  # fmt: skip
    return token
