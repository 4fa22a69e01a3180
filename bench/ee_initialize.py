"""Times the official client's `ee.Initialize` against a longrun server, and reads the
server's resident memory: the figures docs/earth-engine.md#the-algorithm-list quotes.

Usage: python ee_initialize.py URL [SERVER_PID] [ROUNDS]

With the Python that has earthengine-api, against a server started for it, e.g.

    VIRTUAL_ENV=$VENV longrun serve --config examples/ee-emulator.toml --listen 127.0.0.1:18083 &
    $VENV/bin/python bench/ee_initialize.py http://127.0.0.1:18083 $! 10

Each round is a fresh `ee.Initialize` (two discovery documents and the algorithm list);
prints the number of algorithms served, the median and worst round, and VmRSS of SERVER_PID
before and after.
"""

import json
import os
import statistics
import sys
import time
import urllib.parse
import urllib.request

# ee.Initialize also fetches Google's public data catalog over https: keep it off the
# network (the request fails at once and the client carries on without it).
os.environ["https_proxy"] = os.environ["HTTPS_PROXY"] = "http://127.0.0.1:9"
os.environ["no_proxy"] = os.environ["NO_PROXY"] = "127.0.0.1,localhost,::1"

import ee  # noqa: E402
import google.oauth2.credentials  # noqa: E402


def rss_kib(pid: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        line = next(line for line in f if line.startswith("VmRSS:"))
    return int(line.split()[1])


def main() -> None:
    url = sys.argv[1]
    pid = sys.argv[2] if len(sys.argv) > 2 else None
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    host = urllib.parse.urlsplit(url).hostname or ""
    os.environ["no_proxy"] = os.environ["NO_PROXY"] = f"127.0.0.1,localhost,::1,{host}"
    with urllib.request.urlopen(f"{url}/v1/projects/bench-project/algorithms") as r:  # noqa: S310
        count = len(json.load(r)["algorithms"])
    before = rss_kib(pid) if pid else None
    times = []
    for _ in range(rounds):
        ee.Reset()
        started = time.perf_counter()
        ee.Initialize(credentials=google.oauth2.credentials.Credentials("unused"), project="bench-project", url=url)
        times.append(time.perf_counter() - started)
    print(f"algorithms served: {count}")
    print(f"ee.Initialize over {rounds} rounds: median {statistics.median(times):.3f} s, worst {max(times):.3f} s")
    if pid:
        print(f"server VmRSS: {before / 1024:.1f} MiB before, {rss_kib(pid) / 1024:.1f} MiB after")


if __name__ == "__main__":
    main()
