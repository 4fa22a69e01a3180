"""The peers' scenarios with longrun's Python SDK (`sdk/python`) against a `longrun serve`.

Usage: python longrun_sdk.py [--store sqlite|postgres] [--database-url URL] [--bin PATH]
                             [--scenario all|cancel|drain|idle]

- cancel: a worker process (longrun_worker.py) runs an `async def` handler whose loop awaits
  `asyncio.sleep(0.005)`; each round submits one operation, waits for the handler to start,
  cancels it over REST, and measures from just before the cancel call until the handler sees
  `asyncio.CancelledError` (both processes read CLOCK_MONOTONIC), and until a get first
  shows it CANCELLED (gets back to back once the cancel call returned). `ROUNDS` rounds
  (200).
- drain: `JOBS` (5,000) no-op operations are submitted (4 concurrent callers, one REST call
  each), then one Worker at concurrency 4 in this process drains them over the gRPC Work
  stream; timed from its start until the server lists none not done (polled every 20 ms).
- idle: a worker process with nothing to do, for 10 s after a 2 s settle: CPU (user+system,
  % of one core) and resident memory (VmRSS).

The server is `LONGRUN_BIN` (default target/release/longrun of this repository), on SQLite
in a temporary directory or on PostgreSQL in a fresh schema that is dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import longrun

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
JOBS = int(os.environ.get("JOBS", 5_000))
ROUNDS = int(os.environ.get("ROUNDS", 200))
CONCURRENCY = 4


def serve(args: argparse.Namespace, data: Path) -> tuple[subprocess.Popen[str], str]:
    # The default queue limit (3,000 pending per project) is below the drain's 5,000.
    config = data / "longrun.toml"
    config.write_text("[project_defaults]\nmax_queued = 100000\n")
    cmd = [args.bin, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data / "data")]
    cmd += ["--config", str(config)]
    if args.store == "postgres":
        cmd += ["--store", "postgres", "--database-url", args.scoped_url]
    env = {**os.environ, "LONGRUN_LOG": "warn"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("listening on "):
        sys.exit(f"longrun serve did not start: {line!r}")
    return proc, line.removeprefix("listening on ")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def spawn_worker(url: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "longrun_worker.py"), url], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def cancel(url: str) -> str:
    proc = spawn_worker(url)
    assert proc.stdout is not None
    latencies: list[float] = []
    # Parts: the cancel call as the client sees it; cancel call start → push received; cancel
    # call start → a get first shows CANCELLED.
    calls: list[float] = []
    pushes: list[float] = []
    readable: list[float] = []
    try:
        with longrun.Client(url) as client:
            for _ in range(ROUNDS):
                op = client.submit("bench", "NAP")
                line = proc.stdout.readline().split()
                assert line == ["started", op["name"]], line
                time.sleep(0.02)
                asked = time.monotonic_ns()
                client.cancel(op["name"])
                calls.append((time.monotonic_ns() - asked) / 1e6)
                # Read back until the operation is CANCELLED (S2's t2).
                while client.get(op["name"])["metadata"]["state"] != "CANCELLED":
                    pass
                readable.append((time.monotonic_ns() - asked) / 1e6)
                line = proc.stdout.readline().split()
                assert line[:2] == ["cancelled", op["name"]], line
                latencies.append((int(line[2]) - asked) / 1e6)
                pushes.append((int(line[3]) - asked) / 1e6)
    finally:
        proc.terminate()
        proc.wait()
    return (
        f"cancel a running async handler → CancelledError: p50 {percentile(latencies, 50):.2f} ms, "
        f"p99 {percentile(latencies, 99):.2f} ms, max {max(latencies):.2f} ms ({ROUNDS} rounds); "
        f"push received p50 {percentile(pushes, 50):.2f} ms; "
        f"cancel call returned p50 {percentile(calls, 50):.2f} ms, "
        f"p99 {percentile(calls, 99):.2f} ms; "
        f"CANCELLED readable p50 {percentile(readable, 50):.2f} ms, "
        f"p99 {percentile(readable, 99):.2f} ms"
    )


async def drain(url: str, prefetch: int) -> str:
    async with longrun.AsyncClient(url) as client:

        async def submit(count: int) -> None:
            for _ in range(count):
                await client.submit("bench", "NOOP")

        started = time.perf_counter()
        await asyncio.gather(*(submit(JOBS // 4 + (i < JOBS % 4)) for i in range(4)))
        enqueued = time.perf_counter() - started

        worker = longrun.Worker(
            url, name="drain", concurrency=CONCURRENCY, lease_poll=1.0, prefetch=prefetch
        )
        ran = 0

        @worker.handler("NOOP")
        async def noop(ctx: longrun.Context) -> None:
            nonlocal ran
            ran += 1

        stop = asyncio.Event()
        started, cpu = time.perf_counter(), time.process_time()
        running = asyncio.create_task(worker.run_async(stop))
        while True:
            await asyncio.sleep(0.02)
            if ran >= JOBS:
                pending = [op async for op in client.list("bench", "done = false", page_size=1)]
                if not pending:
                    break
        drained = time.perf_counter() - started
        cpu = time.process_time() - cpu
        stop.set()
        await running
        succeeded = 0
        async for op in client.list("bench", 'metadata.state = "SUCCEEDED"', page_size=1000):
            succeeded += op["metadata"]["type"] == "NOOP"
        if succeeded != JOBS or ran != JOBS:
            sys.exit(f"expected {JOBS} succeeded, found {succeeded} (handler ran {ran} times)")
    return (
        f"drain {JOBS / drained:.0f} jobs/s ({JOBS} jobs, concurrency {CONCURRENCY}, "
        f"prefetch {prefetch}, "
        f"{drained:.2f} s, worker CPU {cpu / JOBS * 1e6:.0f} µs a job); "
        f"enqueue {JOBS / enqueued:.0f} jobs/s"
    )


def idle(url: str) -> str:
    proc = spawn_worker(url)
    try:
        time.sleep(2)
        ticks = os.sysconf("SC_CLK_TCK")

        def cpu() -> int:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return int(fields[11]) + int(fields[12])

        before, began = cpu(), time.monotonic()
        time.sleep(10)
        used = (cpu() - before) / ticks / (time.monotonic() - began) * 100
        rss = next(
            int(line.split()[1]) / 1024
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
            if line.startswith("VmRSS:")
        )
    finally:
        proc.terminate()
        proc.wait()
    return f"idle worker: {used:.2f} % of a core, {rss:.1f} MB RSS"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test"),
    )
    default_bin = os.environ.get("LONGRUN_BIN", str(REPO / "target" / "release" / "longrun"))
    parser.add_argument("--bin", default=default_bin)
    parser.add_argument("--scenario", choices=["all", "cancel", "drain", "idle"], default="all")
    parser.add_argument(
        "--prefetch", type=int, default=0, help="the drain worker's prefetch (default 0)"
    )
    args = parser.parse_args()
    schema = f"peers_longrun_{uuid.uuid4().hex[:8]}"
    if args.store == "postgres":
        subprocess.run(["psql", args.database_url, "-qc", f"CREATE SCHEMA {schema}"], check=True)
        sep = "&" if "?" in args.database_url else "?"
        args.scoped_url = f"{args.database_url}{sep}options=-c%20search_path%3D{schema}"
    lines = []
    try:
        for scenario in ["cancel", "drain", "idle"]:
            if args.scenario not in ("all", scenario):
                continue
            # A fresh server per scenario, so that one's leftovers do not weigh on the next.
            with tempfile.TemporaryDirectory() as data:
                if args.store == "postgres":
                    subprocess.run(
                        ["psql", args.database_url, "-qc",
                         f"DROP SCHEMA {schema} CASCADE; CREATE SCHEMA {schema}"],
                        check=True, capture_output=True,
                    )  # fmt: skip
                server, url = serve(args, Path(data))
                try:
                    if scenario == "cancel":
                        lines.append(cancel(url))
                    elif scenario == "drain":
                        lines.append(asyncio.run(drain(url, args.prefetch)))
                    else:
                        lines.append(idle(url))
                finally:
                    server.terminate()
                    server.wait()
    finally:
        if args.store == "postgres":
            subprocess.run(
                ["psql", args.database_url, "-qc", f"DROP SCHEMA IF EXISTS {schema} CASCADE"],
                check=True, capture_output=True,
            )  # fmt: skip
    for line in lines:
        print(f"longrun Python SDK {longrun.__version__} on {args.store}: {line}")


if __name__ == "__main__":
    main()
