"""`earthengine alpha project_config get|set` against longrun, and the cap it sets.

Usage: ee_cli_project_config.py BASE KEY_FILE PROJECT

Server as for ee_pipeline.py (tasks run about a second and a half; the plan maximum of
concurrent exports is 5; the key's account is an admin of PROJECT). The CLI is the
`earthengine` script next to this Python, configured as the README says. Checked: `get`
prints every ProjectConfig field; `set --max_concurrent_exports=2` answers the new config
and `get` shows it; a value above the plan maximum fails with the server's message; then
five exports started with the `ee` client never run more than two at a time and all
complete. Prints "ok" at the end.
"""

import ast
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
from checks import check, earthengine_cli, fail
from google.oauth2 import service_account

EE_SCOPE = "https://www.googleapis.com/auth/earthengine"
# An operation's metadata.state as the client's Task.status() names it.
TASK_STATE = {
    "PENDING": "READY",
    "RUNNING": "RUNNING",
    "CANCELLING": "CANCEL_REQUESTED",
    "SUCCEEDED": "COMPLETED",
    "FAILED": "FAILED",
    "CANCELLED": "CANCELLED",
}


def main() -> None:
    base, key_file, project = sys.argv[1], sys.argv[2], sys.argv[3]
    run = earthengine_cli(base, key_file, project)

    def earthengine(*args: str, rc: int = 0) -> str:
        done = run(*args, rc=rc)
        return done.stdout + done.stderr

    def printed(out: str) -> dict[str, Any]:
        # The CLI prints the dict with print(): a Python literal.
        value = ast.literal_eval(out.strip().splitlines()[-1])
        check(isinstance(value, dict), f"not a dict: {out}")
        return value

    name = f"projects/{project}/config"
    first = printed(earthengine("alpha", "project_config", "get"))
    want = {
        "name": name,
        "registrationState": "NOT_REGISTERED",
        "maxConcurrentExports": 0,
        "planMaxConcurrentExports": 5,
    }
    check(first == want, f"`project_config get`: {first}")
    answer = printed(earthengine("alpha", "project_config", "set", "--max_concurrent_exports=2"))
    check(answer == {**want, "maxConcurrentExports": 2}, f"`project_config set`: {answer}")
    again = printed(earthengine("alpha", "project_config", "get"))
    check(again == answer, f"`project_config get` after set: {again}")
    out = earthengine("alpha", "project_config", "set", "--max_concurrent_exports=6", rc=1)
    check("above the plan maximum 5" in out, f"set above the plan maximum: {out}")

    credentials = service_account.Credentials.from_service_account_file(key_file, scopes=[EE_SCOPE])
    ee.Initialize(credentials=credentials, project=project, url=base)
    region = ee.Geometry.Rectangle([13.0, 52.0, 13.1, 52.1])
    table = ee.FeatureCollection([ee.Feature(region, {"name": "aoi"})])
    tasks = [
        ee.batch.Export.table.toCloudStorage(
            table, description=f"capped-{i}", bucket="b", fileFormat="GeoJSON"
        )
        for i in range(5)
    ]
    for task in tasks:
        task.start()
    most, waited = 0, False
    deadline = time.monotonic() + 60
    while True:
        # One list call reads every state at the same moment (statuses read one by one could
        # see one export still running and, later, the next one already started).
        capped = {
            op["metadata"]["description"]: op["metadata"]["state"]
            for op in ee.data.listOperations()
            if op["metadata"].get("description", "").startswith("capped-")
        }
        states = [TASK_STATE.get(capped.get(f"capped-{i}", ""), "?") for i in range(5)]
        running = states.count("RUNNING")
        most = max(most, running)
        waited = waited or (running == 2 and "READY" in states)
        if all(s in ("COMPLETED", "FAILED", "CANCELLED") for s in states):
            break
        if time.monotonic() > deadline:
            fail(f"exports not done within 60 s: {states}")
        time.sleep(0.1)
    check(states == ["COMPLETED"] * 5, f"exports ended {states}")
    check(most <= 2, f"{most} exports ran at once with maxConcurrentExports = 2")
    check(waited, "no export was seen waiting while two ran")
    print("ok")


if __name__ == "__main__":
    main()
