"""The README's examples (examples/worker.py and examples/client.py) run as written,
against a real server, and print what the README says they print."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from .conftest import Server

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_the_examples_run_as_written(server: Server) -> None:
    env = {**os.environ, "LONGRUN_URL": server.url}
    worker = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "worker.py")], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        client = subprocess.run(
            [sys.executable, str(EXAMPLES / "client.py")],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert client.returncode == 0, client.stderr
        lines = client.stdout.splitlines()
        assert lines[0] == "SUCCEEDED {'counted': 2}"
        assert lines[1] == "FAILED width must be positive"
        assert lines[2] == "CANCELLED"
        assert len([line for line in lines if line.startswith("projects/demo/operations/")]) == 3
        assert lines[-1] == "5 NOT_FOUND OPERATION_NOT_FOUND"
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=30)
        assert worker.returncode == 0, err
    finally:
        worker.kill()


def test_the_readme_handler_test() -> None:
    """The README's "Testing a handler" example, on the example worker's handler."""
    import asyncio
    import importlib.util

    import longrun
    from longrun.testing import HandlerEnvironment

    spec = importlib.util.spec_from_file_location("example_worker", EXAMPLES / "worker.py")
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    countdown = example.countdown

    outcome = asyncio.run(HandlerEnvironment().run(countdown, {"seconds": 2}))
    assert outcome.state == longrun.State.SUCCEEDED and outcome.response == {"counted": 2}
    assert outcome.progress == 1.0 and outcome.stages[0]["completeWorkUnits"] == 2

    env = HandlerEnvironment(on_report=lambda reported: env.cancel())
    assert asyncio.run(env.run(countdown, {"seconds": 5})).state == longrun.State.CANCELLED
