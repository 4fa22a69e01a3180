"""The official `earthengine` command-line tool (from `earthengine-api`) against longrun.

Usage: ee_cli.py BASE KEY_FILE PROJECT

Same server setup as ee_client.py (auth mode "oauth", Earth Engine task types on the
`simulate` executor with limited concurrency; KEY_FILE a service-account key with token_uri
BASE/token and roles/earthengine.admin on PROJECT; PROJECT starts empty).

The CLI is the `earthengine` script installed next to this Python. It reads the server URL
and the project from the JSON file named by EE_CONFIG_FILE ({"url": ..., "project": ...}),
and gets its token with --service_account_file (a JWT-bearer grant at the key's token_uri).
State is prepared with plain HTTP calls; the CLI's output is checked against the server's.
Prints "ok" at the end; any failed check exits non-zero with a message.
"""

import sys
import time
import uuid

import google.auth.transport.requests
import requests
from checks import TIMEOUT, check, earthengine_cli, poll
from google.oauth2 import service_account

EE_SCOPE = "https://www.googleapis.com/auth/earthengine"
LONG = {"simulate": {"duration": "3600s"}}
QUEUED = 40
DONE = ("SUCCEEDED", "FAILED", "CANCELLED")


def task_id(name):
    return name.split("/operations/", 1)[1]


def main():
    base, key_file, project = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3]
    account = service_account.Credentials.from_service_account_file(key_file, scopes=[EE_SCOPE])
    account.refresh(google.auth.transport.requests.Request())
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {account.token}"

    def submit(description, payload, priority=None):
        body = {
            "type": "EXPORT_FEATURES",
            "description": description,
            "requestId": str(uuid.uuid4()),
            "payload": payload,
        }
        if priority is not None:
            body["priority"] = priority
        r = http.post(f"{base}/v1/projects/{project}/operations:submit", json=body, timeout=60)
        check(r.status_code == 200, f"submit {description}: HTTP {r.status_code} {r.text}")
        return r.json()["name"]

    def get(name):
        r = http.get(f"{base}/v1/{name}", timeout=60)
        check(r.status_code == 200, f"get {name}: HTTP {r.status_code} {r.text}")
        return r.json()

    def states():
        ops, token = [], None
        while True:
            params = {"pageSize": 1000, **({"pageToken": token} if token else {})}
            r = http.get(f"{base}/v1/projects/{project}/operations", params=params, timeout=60)
            check(r.status_code == 200, f"list: HTTP {r.status_code} {r.text}")
            page = r.json()
            ops += page.get("operations", [])
            token = page.get("nextPageToken")
            if not token:
                return {op["name"]: op["metadata"]["state"] for op in ops}

    run = earthengine_cli(base, key_file, project, timeout=180)

    def earthengine(*args, rc=0):
        return run(*args, rc=rc).stdout

    def task_list(*extra):
        """`task list` rows as {id: (type label, description, state)}."""
        rows = {}
        for line in earthengine("task", "list", *extra).splitlines():
            fields = line.split()
            if not fields:
                continue
            check(len(fields) >= 5, f"unexpected `task list` line: {line!r}")
            check(fields[0] not in rows, f"`task list` shows {fields[0]} twice")
            rows[fields[0]] = (fields[1], fields[2], fields[3])
        return rows

    # One operation RUNNING (high priority, leases first), then more than the executor
    # runs at once, so some stay PENDING (lowest priority: they never overtake).
    runner = submit("cli-running", LONG, priority=9999)
    poll(f"{runner} RUNNING", lambda: get(runner)["metadata"]["state"], lambda s: s == "RUNNING")
    queued = [submit(f"cli-queued-{i}", LONG, priority=0) for i in range(QUEUED)]
    ours = [runner, *queued]
    descriptions = {
        runner: "cli-running",
        **{n: f"cli-queued-{i}" for i, n in enumerate(queued)},
    }

    # Wait until the executor has taken what it will take.
    last, stable_since = None, time.monotonic()
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() - stable_since < 1.5:
        now = states()
        if now != last:
            last, stable_since = now, time.monotonic()
        check(time.monotonic() < deadline, "operation states did not settle")
        time.sleep(0.2)
    check(
        any(last[n] == "PENDING" for n in queued),
        f"all {QUEUED} queued operations started: the executor's concurrency is too high",
    )

    # task list: every operation, with its type, description and state.
    before = states()
    rows = task_list()
    after = states()
    check(before == after, "states changed while `task list` ran")
    for name in ours:
        row = rows.get(task_id(name))
        check(row is not None, f"`task list` lacks {task_id(name)}")
        check(row[0] == "Export.table", f"`task list` type of {task_id(name)}: {row}")
        check(row[1] == descriptions[name], f"`task list` description: {row}")
        check(row[2] == before[name], f"`task list` state {row[2]}, operation is {before[name]}")
    check(
        len(rows) == len(before),
        f"`task list` shows {len(rows)} tasks, server has {len(before)}",
    )
    print(f"task list: {len(rows)} tasks")

    # task list --status RUNNING: exactly the running ones.
    running_rows = task_list("--status", "RUNNING")
    running = {task_id(n) for n, s in before.items() if s == "RUNNING"}
    check(task_id(runner) in running, "the high-priority operation is not RUNNING")
    check(
        set(running_rows) == running,
        f"`task list --status RUNNING` shows {sorted(running_rows)}, running: {sorted(running)}",
    )
    check(all(r[2] == "RUNNING" for r in running_rows.values()), f"{running_rows}")
    print(f"task list --status RUNNING: {len(running_rows)} tasks")

    # task info ID.
    info = earthengine("task", "info", task_id(runner))
    for line in (
        f"{task_id(runner)}:",
        "  State: RUNNING",
        "  Type: Export.table",
        "  Description: cli-running",
        "  Priority: 9999",
    ):
        check(line in info.splitlines(), f"`task info` lacks {line!r}:\n{info}")
    check("  Created: " in info and "  Started: " in info, f"`task info` times:\n{info}")
    earthengine("task", "info", "NOSUCHTASKID00000000000", rc=1)
    print("task info: ok")

    # task cancel ID on the RUNNING one: CANCELLING, then CANCELLED with code 1.
    out = earthengine("task", "cancel", task_id(runner))
    check(f'Canceling task "{task_id(runner)}"' in out, f"`task cancel` said:\n{out}")
    check(get(runner)["metadata"]["state"] in ("CANCELLING", "CANCELLED"), "cancel of RUNNING")
    op = poll(f"{runner} done", lambda: get(runner), lambda o: o.get("done"))
    check(
        op["metadata"]["state"] == "CANCELLED" and op.get("error", {}).get("code") == 1,
        f"cancelled RUNNING operation: {op}",
    )
    out = earthengine("task", "cancel", task_id(runner))
    check(
        f'Task "{task_id(runner)}" already in state "CANCELLED".' in out,
        f"`task cancel` of a cancelled task said:\n{out}",
    )

    # task cancel ID on a PENDING one: CANCELLED at once.
    pending = next(n for n in reversed(queued) if get(n)["metadata"]["state"] == "PENDING")
    out = earthengine("task", "cancel", task_id(pending))
    check(f'Canceling task "{task_id(pending)}"' in out, f"`task cancel` said:\n{out}")
    op = get(pending)
    check(
        op.get("done") and op["metadata"]["state"] == "CANCELLED" and op["error"]["code"] == 1,
        f"cancelled PENDING operation: {op}",
    )
    print("task cancel ID: ok")

    # task cancel all: everything still PENDING or RUNNING.
    open_before = {n for n, s in states().items() if s in ("PENDING", "RUNNING")}
    check(open_before, "nothing left for `task cancel all`")
    out = earthengine("task", "cancel", "all")
    for name in open_before:
        check(f'Canceling task "{task_id(name)}"' in out, f"`task cancel all` skipped {name}")
    final = poll(
        "every operation done after `task cancel all`",
        states,
        lambda s: all(v in DONE for v in s.values()),
        timeout=60,
    )
    check(all(final[n] == "CANCELLED" for n in ours), f"not all CANCELLED: {final}")
    print(f"task cancel all: {len(open_before)} cancelled")

    # task wait ID: returns once the operation is done (the CLI polls every 10 s).
    short = submit("cli-short", {"simulate": {"duration": "2s"}}, priority=9999)
    out = earthengine("task", "wait", "--timeout", "120", task_id(short))
    check(
        f"Task {task_id(short)} ended at state: SUCCEEDED" in out,
        f"`task wait` said:\n{out}",
    )
    check(get(short)["metadata"]["state"] == "SUCCEEDED", "`task wait` returned early")
    # ... and reports a failed one with exit status 1.
    failing = submit(
        "cli-failing", {"simulate": {"duration": "1s", "outcome": "FAILED"}}, priority=9999
    )
    out = earthengine("task", "wait", "--timeout", "120", task_id(failing), rc=1)
    check(
        f"Task {task_id(failing)} ended at state: FAILED" in out,
        f"`task wait` of a failing task said:\n{out}",
    )
    print("task wait: ok")

    print("ok")


if __name__ == "__main__":
    main()
