"""Every fault kind of longrun's Earth Engine emulator, seen through the official client.

Usage: ee_faults.py BASE KEY_FILE PROJECT

The server at BASE runs every Earth Engine task type on the `simulate` executor (1 s, cancel
grace 2 s) with these rules (crates/cli/tests/cli/ee_emulator.rs), seed 7:
- [[fault]] description "*fail*": FAILED, code 3, "Simulated bad input.";
- "*flaky*": transient_failures = 2; "*stubborn*": HANG, ignore_cancel;
- "*slow*": duration 4 s; "*coin*": FAILED with probability 0.5;
- [[api_fault]] assets.get: 429 at rate 0.3; listAssets (the project's): 503 always, with
  200 ms latency; operations.list: 300 ms latency.

Checked, with ordinary client code picking each task's fate through its description: a
FAILED task's message, the attempt count after transient failures, a CANCEL_REQUESTED task
that ends CANCELLED only after the grace, a longer run, a probability split, a 429 the
client retries (and fails on without retries), a 503 it retries and then gives up on, and
added latency. Prints "ok" at the end; any failed check exits non-zero with a message.
"""

import os
import sys
import time
import urllib.parse
from typing import Any

if len(sys.argv) > 1:
    _host = urllib.parse.urlsplit(sys.argv[1]).hostname or ""
    os.environ["https_proxy"] = os.environ["HTTPS_PROXY"] = "http://127.0.0.1:9"
    os.environ["no_proxy"] = os.environ["NO_PROXY"] = f"127.0.0.1,localhost,::1,{_host}"

import ee
from checks import check, fail, poll
from google.oauth2 import service_account

EE_SCOPE = "https://www.googleapis.com/auth/earthengine"
DONE = ("COMPLETED", "FAILED", "CANCELLED")


def export(description: str) -> ee.batch.Task:
    """An ordinary table export; its description picks its fate."""
    table = ee.FeatureCollection([ee.Feature(ee.Geometry.Point([13.4, 52.5]), {"v": 1})])
    task = ee.batch.Export.table.toDrive(table, description=description, folder="faults")
    task.start()
    return task


def finished(task: ee.batch.Task, timeout: float = 30.0) -> dict[str, Any]:
    return poll(
        f"task {task.config.get('description')}", task.status, lambda s: s["state"] in DONE, timeout
    )


def main() -> None:
    base, key_file, project = sys.argv[1], sys.argv[2], sys.argv[3]
    credentials = service_account.Credentials.from_service_account_file(key_file, scopes=[EE_SCOPE])
    ee.Initialize(credentials=credentials, project=project, url=base)

    # Started together, checked one by one.
    failing = export("should fail")
    flaky = export("flaky export")
    stubborn = export("stubborn export")
    slow_started = time.monotonic()
    slow = export("slow export")
    normal = export("plain export")
    coins = [export(f"coin {i}") for i in range(20)]

    s = finished(failing)
    check(
        s["state"] == "FAILED" and s.get("error_message") == "Simulated bad input.",
        f"FAILED rule: {s}",
    )
    op = ee.data.getOperation(failing.name)
    check(op["error"]["code"] == 3, f"FAILED rule's code: {op['error']}")

    s = finished(flaky)
    check(s["state"] == "COMPLETED", f"transient failures then success: {s}")
    check(s.get("attempt") == 3, f"2 transient failures make attempt 3: {s}")

    s = finished(normal)
    check(s["state"] == "COMPLETED" and s.get("attempt") == 1, f"a task no rule takes: {s}")
    s = finished(slow)
    took = time.monotonic() - slow_started
    check(s["state"] == "COMPLETED" and took >= 3.5, f"duration rule: done after {took:.1f} s: {s}")

    poll("stubborn task running", stubborn.status, lambda s: s["state"] == "RUNNING")
    stubborn.cancel()
    cancelled_at = time.monotonic()
    time.sleep(1.0)
    s = stubborn.status()
    check(s["state"] == "CANCEL_REQUESTED", f"ignore_cancel: 1 s after the cancel the task is {s}")
    s = finished(stubborn, timeout=15.0)
    waited = time.monotonic() - cancelled_at
    check(s["state"] == "CANCELLED", f"ignore_cancel: ends {s}")
    check(waited >= 1.8, f"ignore_cancel: CANCELLED after {waited:.1f} s, before the 2 s grace")

    fates = [finished(c)["state"] for c in coins]
    check(set(fates) == {"COMPLETED", "FAILED"}, f"probability 0.5 over 20 tasks: {fates}")
    print(f"probability 0.5: {fates.count('FAILED')}/20 FAILED")

    # Request faults. An asset to read.
    folder = f"projects/{project}/assets/faults"
    ee.data.createFolder(folder)
    ee.data.setMaxRetries(0)
    rejected = 0
    for _ in range(30):
        try:
            ee.data.getAsset(folder)
        except ee.EEException as e:
            check("Simulated 429" in str(e), f"429 message: {e}")
            rejected += 1
    check(0 < rejected < 30, f"rate 0.3 without retries: {rejected}/30 rejected")
    ee.data.setMaxRetries(5)
    for _ in range(30):
        check(ee.data.getAsset(folder)["type"] == "FOLDER", "getAsset with retries")
    print(f"429: {rejected}/30 rejected without retries, 30/30 through with the client's retries")

    for retries, least, most in ((0, 0.2, 0.6), (2, 0.6, 30.0)):
        ee.data.setMaxRetries(retries)
        began = time.monotonic()
        try:
            ee.data.listBuckets()
            fail("listAssets of the project succeeded under a 503 rule")
        except ee.EEException as e:
            check("Simulated 503" in str(e), f"503 message: {e}")
        took = time.monotonic() - began
        # 200 ms of latency per attempt: 1 attempt without retries, 3 with 2 retries.
        check(least <= took < most, f"503 with {retries} retries gave up after {took:.2f} s")
    ee.data.setMaxRetries(5)

    began = time.monotonic()
    ee.batch.Task.list()
    took = time.monotonic() - began
    check(took >= 0.3, f"operations.list latency rule: answered in {took:.2f} s")
    print("ok")


if __name__ == "__main__":
    main()
