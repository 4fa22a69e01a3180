"""Test fixtures: a real `longrun serve` (the binary from `cargo build -p longrun-cli`,
`$LONGRUN_BIN`, default `target/debug/longrun` of the repository) on SQLite in a temporary
directory, and on PostgreSQL in a fresh schema when `LONGRUN_TEST_DATABASE_URL` is set."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
BIN = Path(os.environ.get("LONGRUN_BIN", REPO / "target" / "debug" / "longrun"))
DATABASE_URL = os.environ.get("LONGRUN_TEST_DATABASE_URL")

# Short timers so that the tests see graces and retries happen.
BASE_CONFIG = """
[[task_type]]
type = "NAP"
cancel_grace = "5s"

[[task_type]]
type = "FLAKY"
max_attempts = 3
"""


class Server:
    """A `longrun serve` child process; `restart()` keeps its port, data and database."""

    def __init__(self, workdir: Path, store_args: list[str], config: str) -> None:
        self.workdir = workdir
        self.data = workdir / "data"
        self.config = workdir / "longrun.toml"
        self.config.write_text(config)
        self.store_args = store_args
        self.listen = "127.0.0.1:0"
        self.process: subprocess.Popen[str] | None = None
        self.url = ""
        self.start()

    def start(self) -> None:
        if not BIN.exists():
            pytest.fail(
                f"no longrun binary at {BIN}: cargo build -p longrun-cli, or set LONGRUN_BIN"
            )
        args = [str(BIN), "serve", "--listen", self.listen, "--data-dir", str(self.data)]
        args += ["--config", str(self.config), *self.store_args]
        env = {**os.environ, "LONGRUN_LOG": os.environ.get("LONGRUN_LOG", "warn")}
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env)
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        assert line.startswith("listening on "), f"unexpected first line {line!r}"
        self.url = line.removeprefix("listening on ")
        self.listen = self.url.split("://", 1)[-1]

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def restart(self) -> None:
        self.kill()
        # The port may linger for a moment after the kill.
        deadline = time.monotonic() + 10
        while True:
            try:
                self.start()
                return
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def cli(self, *args: str) -> str:
        """Runs `longrun ARGS` on this server's store (for service accounts)."""
        out = subprocess.run(
            [str(BIN), *args], capture_output=True, text=True, check=False, env=os.environ
        )
        assert out.returncode == 0, out.stderr
        return out.stdout


def _schema(url: str) -> str:
    """A fresh schema in the test database, and a URL whose search_path is it."""
    schema = f"longrun_sdk_{uuid.uuid4().hex[:12]}"
    create = f"DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
    # The Rust suites' servers, running beside these tests, may hold most of the database's
    # connections for a while: a refusal for too many clients is waited out (up to 60 s).
    deadline = time.monotonic() + 60
    while True:
        out = subprocess.run(
            ["psql", url, "-q", "-c", create], capture_output=True, text=True, check=False
        )
        if out.returncode == 0:
            break
        if "too many clients" not in out.stderr or time.monotonic() > deadline:
            raise AssertionError(f"psql could not create {schema}: {out.stderr}")
        time.sleep(0.1)
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-c%20search_path%3D{schema}"


def _stores() -> list[str]:
    return ["sqlite", "postgres"]


@pytest.fixture(params=_stores())
def store(request: pytest.FixtureRequest) -> str:
    """The store a server runs on; PostgreSQL is skipped without LONGRUN_TEST_DATABASE_URL."""
    if request.param == "postgres" and not DATABASE_URL:
        pytest.skip("set LONGRUN_TEST_DATABASE_URL to run the server on PostgreSQL")
    if request.param == "postgres" and shutil.which("psql") is None:
        pytest.skip("psql is needed to make a schema for the PostgreSQL server")
    return str(request.param)


def make_server(tmp_path: Path, store: str, config: str = BASE_CONFIG) -> Server:
    args: list[str] = []
    if store == "postgres":
        assert DATABASE_URL is not None
        args = ["--store", "postgres", "--database-url", _schema(DATABASE_URL)]
    return Server(tmp_path, args, config)


@pytest.fixture
def server(tmp_path: Path, store: str) -> Iterator[Server]:
    s = make_server(tmp_path, store)
    yield s
    s.kill()
