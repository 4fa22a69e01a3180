"""The official Earth Engine Python client (`earthengine-api`) against longrun.

Usage: ee_client.py BASE KEY_FILE PROJECT

The server at BASE runs with auth mode "oauth" and a config whose Earth Engine task types
run on the `simulate` executor (limited concurrency, so most of a bulk submission stays
PENDING). KEY_FILE is a service-account key whose token_uri is BASE/token and which holds
roles/earthengine.admin on PROJECT; PROJECT starts empty.

Checked with the real client, unmodified: ee.Initialize against BASE, listOperations over
more than one page, getOperation, cancelOperation on PENDING and RUNNING operations,
ee.batch.Task.list / status / active / cancel, getTaskStatus of an unknown id, and a table
export started with ee.batch.Export.table.toDrive(...).start(). Prints "ok" at the end; any
failed check exits non-zero with a message saying what was expected.
"""

import math
import os
import sys
import threading
import time
import urllib.parse
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor

# ee.Initialize also fetches Google's public data catalog (for deprecation warnings) from
# an https address. The test talks to BASE only: https traffic to any other host goes to a
# closed loopback port, so that fetch fails at once (the client carries on without it).
if len(sys.argv) > 1:
    _host = urllib.parse.urlsplit(sys.argv[1]).hostname or ""
    os.environ["https_proxy"] = os.environ["HTTPS_PROXY"] = "http://127.0.0.1:9"
    os.environ["no_proxy"] = os.environ["NO_PROXY"] = f"127.0.0.1,localhost,::1,{_host}"

import ee
import google.auth.transport.requests
import google.oauth2.credentials
import requests
from checks import check, fail, poll
from google.oauth2 import service_account

EE_SCOPE = "https://www.googleapis.com/auth/earthengine"
BULK = 520
LONG = {"simulate": {"duration": "3600s"}}
TASK_STATE = {
    "PENDING": "READY",
    "RUNNING": "RUNNING",
    "CANCELLING": "CANCEL_REQUESTED",
    "SUCCEEDED": "COMPLETED",
    "CANCELLED": "CANCELLED",
    "FAILED": "FAILED",
}


class Rest:
    """Plain HTTP calls for preparing and cross-checking state (one session per thread)."""

    def __init__(self, base, project, token):
        self.base = base
        self.project = project
        self.token = token
        self.local = threading.local()

    def session(self):
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
            self.local.session.headers["Authorization"] = f"Bearer {self.token}"
        return self.local.session

    def submit(self, description, payload, priority=None, request_id=None, type_="EXPORT_FEATURES"):
        body = {
            "type": type_,
            "description": description,
            "requestId": request_id or str(uuid.uuid4()),
            "payload": payload,
        }
        if priority is not None:
            body["priority"] = priority
        r = self.session().post(
            f"{self.base}/v1/projects/{self.project}/operations:submit", json=body, timeout=60
        )
        check(r.status_code == 200, f"submit {description!r}: HTTP {r.status_code} {r.text}")
        return r.json()

    def cancel(self, name):
        r = self.session().post(f"{self.base}/v1/{name}:cancel", json={}, timeout=60)
        check(r.status_code == 200, f"cancel {name}: HTTP {r.status_code} {r.text}")

    def list_all(self):
        ops, token = [], None
        while True:
            params = {"pageSize": 1000}
            if token:
                params["pageToken"] = token
            r = self.session().get(
                f"{self.base}/v1/projects/{self.project}/operations", params=params, timeout=60
            )
            check(r.status_code == 200, f"list: HTTP {r.status_code} {r.text}")
            page = r.json()
            ops += page.get("operations", [])
            token = page.get("nextPageToken")
            if not token:
                return ops

    def states(self):
        return {op["name"]: op["metadata"]["state"] for op in self.list_all()}


def state_of(op):
    return op["metadata"]["state"]


def expect_cancelled(op, what):
    check(op.get("done") is True, f"{what}: done should be true: {op}")
    check(state_of(op) == "CANCELLED", f"{what}: state should be CANCELLED: {op}")
    check(op.get("error", {}).get("code") == 1, f"{what}: error.code should be 1: {op}")
    check("response" not in op, f"{what}: a cancelled operation has no response: {op}")


def main():
    base, key_file, project = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3]

    # A token from the server's /token, through Google's own auth library.
    account = service_account.Credentials.from_service_account_file(key_file, scopes=[EE_SCOPE])
    account.refresh(google.auth.transport.requests.Request())
    check(account.token, "the service account got no access token")
    rest = Rest(base, project, account.token)

    # ee.Initialize: discovery document, then the algorithm list, both from BASE.
    ee.Initialize(
        credentials=google.oauth2.credentials.Credentials(account.token), project=project, url=base
    )
    check(ee.data.is_initialized(), "ee.Initialize returned but the client is not initialized")
    print("initialize: ok")

    # Every request the client sends goes through this session; record the URLs.
    sent = []
    ee.data._get_state().requests_session.hooks["response"].append(
        lambda r, *a, **k: sent.append((r.request.method, r.request.url))
    )

    # A high-priority operation leases before everything submitted after it.
    runner = rest.submit("running candidate", LONG, priority=9999)["name"]
    poll(
        f"{runner} RUNNING",
        lambda: ee.data.getOperation(runner),
        lambda op: state_of(op) == "RUNNING",
    )
    print("running candidate: RUNNING")

    # More operations than one page of the client's listOperations (pageSize 500).
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        bulk = list(pool.map(lambda i: rest.submit(f"bulk {i}", LONG), range(BULK)))
    bulk_names = [op["name"] for op in bulk]
    check(len(set(bulk_names)) == BULK, f"{BULK} submits gave {len(set(bulk_names))} names")
    for op in bulk:
        check(state_of(op) == "PENDING", f"submit returns a PENDING operation: {op}")
    print(f"submitted {BULK} operations in {time.monotonic() - started:.1f} s")

    # The same requestId again: the same operation, nothing new.
    request_id = str(uuid.uuid4())
    first = rest.submit("dedup", LONG, request_id=request_id)["name"]
    second = rest.submit("dedup", LONG, request_id=request_id)["name"]
    check(first == second, f"a repeated requestId made a second operation: {first} {second}")
    ours = [runner, first, *bulk_names]

    # ee.data.listOperations pages through everything.
    sent.clear()
    listed = ee.data.listOperations()
    names = [op["name"] for op in listed]
    check(len(names) == len(set(names)), "listOperations returned an operation twice")
    missing = set(ours) - set(names)
    check(
        not missing,
        f"listOperations is missing {len(missing)} operations, e.g. {sorted(missing)[:3]}",
    )
    everything = {op["name"] for op in rest.list_all()}
    check(
        set(names) == everything,
        f"listOperations gave {len(names)} operations, the REST listing {len(everything)}",
    )
    check(len(names) > 500, f"expected more than 500 operations, got {len(names)}")
    pages = [url for method, url in sent if method == "GET" and "/operations?" in url]
    check(
        len(pages) == math.ceil(len(names) / 500),
        f"{len(names)} operations in pages of 500 should take {math.ceil(len(names) / 500)} "
        f"requests, took {len(pages)}: {pages}",
    )
    check("pageSize=500" in pages[0] and "pageToken=" not in pages[0], f"first page: {pages[0]}")
    check(all("pageToken=" in url for url in pages[1:]), f"later pages carry pageToken: {pages}")
    created = [op["metadata"]["createTime"] for op in listed]
    check(created == sorted(created, reverse=True), "listOperations is not newest first")
    print(f"listOperations: {len(names)} operations in {len(pages)} pages")

    # The last bulk operations in queue order (same priority, newest first) stay PENDING.
    by_name = {op["name"]: op for op in listed}
    queue_tail = sorted(
        (n for n in bulk_names if state_of(by_name[n]) == "PENDING"),
        key=lambda n: (by_name[n]["metadata"]["createTime"], n),
        reverse=True,
    )
    check(len(queue_tail) >= 3, f"expected PENDING bulk operations, found {len(queue_tail)}")

    # getOperation.
    one = queue_tail[2]
    op = ee.data.getOperation(one)
    check(op["name"] == one, f"getOperation({one}) returned {op.get('name')}")
    check(op.get("done") is False, f"a PENDING operation is not done: {op}")
    md = op["metadata"]
    check(
        md.get("@type") == "type.googleapis.com/google.earthengine.v1.OperationMetadata",
        f"metadata @type: {md.get('@type')}",
    )
    check(md.get("type") == "EXPORT_FEATURES", f"metadata.type: {md}")
    check(md.get("description") == by_name[one]["metadata"]["description"], f"description: {md}")
    check(md.get("description", "").startswith("bulk "), f"description: {md}")
    check(state_of(op) == "PENDING", f"expected PENDING: {op}")
    print("getOperation: ok")

    # cancelOperation on a PENDING operation: CANCELLED at once, error code 1.
    ee.data.cancelOperation(one)
    op = ee.data.getOperation(one)
    expect_cancelled(op, f"cancelled PENDING {one}")
    check("endTime" in op["metadata"], f"a done operation has endTime: {op}")
    print("cancelOperation (PENDING): CANCELLED")

    # cancelOperation on the RUNNING operation: CANCELLING or CANCELLED, then CANCELLED.
    ee.data.cancelOperation(runner)
    op = ee.data.getOperation(runner)
    check(state_of(op) in ("CANCELLING", "CANCELLED"), f"after cancel of RUNNING: {op}")
    op = poll(f"{runner} done", lambda: ee.data.getOperation(runner), lambda o: o.get("done"))
    expect_cancelled(op, f"cancelled RUNNING {runner}")
    print("cancelOperation (RUNNING): CANCELLED")

    # Bulk operations lease into the freed slot.
    poll(
        "a bulk operation RUNNING",
        rest.states,
        lambda s: any(s.get(n) == "RUNNING" for n in bulk_names),
    )

    # ee.batch.Task.list: every operation, states mapped the client's way. Only states that
    # did not change around the call are compared.
    before = rest.states()
    tasks = ee.batch.Task.list()
    after = rest.states()
    by_id = {t.id: t for t in tasks}
    check(len(by_id) == len(tasks), "Task.list returned a task twice")
    seen = set()
    for name in ours:
        task_id = name.split("/operations/", 1)[1]
        task = by_id.get(task_id)
        check(task is not None, f"Task.list lacks {name}")
        check(task.name == name, f"task {task_id}: name {task.name} != {name}")
        check(task.task_type == "EXPORT_FEATURES", f"task {task_id}: type {task.task_type}")
        check(
            task.config["description"] == by_name[name]["metadata"]["description"],
            f"task {task_id}: description {task.config}",
        )
        if before[name] == after[name]:
            check(
                task.state == TASK_STATE[before[name]],
                f"task {task_id}: state {task.state}, operation is {before[name]}",
            )
            seen.add(task.state)
    for wanted in ("READY", "RUNNING", "CANCELLED"):
        check(wanted in seen, f"Task.list showed no {wanted} task (saw {sorted(seen)})")
    print(f"Task.list: {len(tasks)} tasks, states {sorted(seen)}")

    # Task.status / active / cancel on a READY task from the list.
    ready = by_id[queue_tail[0].split("/operations/", 1)[1]]
    status = ready.status()
    check(status["state"] == "READY", f"READY task status: {status}")
    check(status["id"] == ready.id and status["name"] == ready.name, f"status ids: {status}")
    check(status["task_type"] == "EXPORT_FEATURES", f"status task_type: {status}")
    check(isinstance(status["creation_timestamp_ms"], int), f"status creation time: {status}")
    check(ready.active() is True, "a READY task is active")
    ready.cancel()
    status = ready.status()
    check(status["state"] == "CANCELLED", f"READY task after cancel: {status}")
    check(status.get("error_message"), f"a cancelled task has an error_message: {status}")
    check(ready.active() is False, "a CANCELLED task is not active")
    print("Task status/active/cancel (READY): ok")

    # ... and on a RUNNING task from the list.
    running = [
        by_id[n.split("/operations/", 1)[1]]
        for n in bulk_names
        if before[n] == after[n] == "RUNNING"
    ]
    check(running, "no RUNNING task in Task.list to cancel")
    task = running[0]
    status = task.status()
    check(status["state"] == "RUNNING", f"RUNNING task status: {status}")
    check(isinstance(status.get("start_timestamp_ms"), int), f"a started task: {status}")
    check(task.active() is True, "a RUNNING task is active")
    task.cancel()
    status = task.status()
    check(status["state"] in ("CANCEL_REQUESTED", "CANCELLED"), f"after cancel: {status}")
    poll(f"task {task.id} CANCELLED", lambda: task.status()["state"], lambda s: s == "CANCELLED")
    check(task.active() is False, "a CANCELLED task is not active")
    expect_cancelled(ee.data.getOperation(task.name), f"cancelled RUNNING task {task.name}")
    print("Task status/active/cancel (RUNNING): ok")

    # An unknown task id: a clean 404, which the client reports as UNKNOWN.
    missing_id = "NOSUCHTASKID00000000000"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        unknown = ee.data.getTaskStatus(missing_id)
    check(
        unknown
        == [
            {
                "id": missing_id,
                "state": "UNKNOWN",
                "name": f"projects/{project}/operations/{missing_id}",
            }
        ],
        f"getTaskStatus({missing_id}): {unknown}",
    )
    try:
        ee.data.getOperation(f"projects/{project}/operations/{missing_id}")
        fail("getOperation of an unknown operation did not raise")
    except ee.EEException as e:
        check(str(e), "the not-found error carries no message")
    print("getTaskStatus (unknown): UNKNOWN")

    # Clear the queue so the export leases at once: cancel whatever is not done yet.
    undone = [n for n, s in rest.states().items() if s in ("PENDING", "RUNNING")]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(rest.cancel, undone))
    final = poll(
        "every operation done after cancelling the rest",
        rest.states,
        lambda s: all(v in ("SUCCEEDED", "FAILED", "CANCELLED") for v in s.values()),
        timeout=60,
    )
    check(
        all(final[n] == "CANCELLED" for n in ours),
        f"not CANCELLED: {[(n, final[n]) for n in ours if final[n] != 'CANCELLED'][:3]}",
    )
    print(f"cancelled {len(undone)} remaining operations")

    # A table export, built client-side from Feature/FeatureCollection constructors.
    collection = ee.FeatureCollection([ee.Feature(None, {"a": 1})])
    export = ee.batch.Export.table.toDrive(
        collection=collection, description="offline export", priority=9999
    )
    check(export.status() == {"state": "UNSUBMITTED"}, f"before start: {export.status()}")
    export.start()
    check(
        export.id and export.name, f"start() gave no operation: id={export.id} name={export.name}"
    )
    check(
        export.name == f"projects/{project}/operations/{export.id}",
        f"export operation name {export.name} / id {export.id}",
    )
    op = ee.data.getOperation(export.name)
    md = op["metadata"]
    check(md.get("type") == "EXPORT_FEATURES", f"export type: {md}")
    check(md.get("description") == "offline export", f"export description: {md}")
    check(md.get("priority") == 9999, f"export priority ({{'value': 9999}} in the request): {md}")
    # The client retries an export with the same requestId: it must not start a second one.
    again = ee.data.exportTable(export._request_id, export.config)
    check(again["name"] == export.name, f"same requestId, new export: {again['name']}")
    poll(
        f"export {export.name} RUNNING",
        lambda: ee.data.getOperation(export.name),
        lambda o: state_of(o) == "RUNNING",
    )
    check(export.status()["state"] == "RUNNING", f"export status: {export.status()}")
    check(export.active() is True, "a RUNNING export is active")
    listed_export = [t for t in ee.batch.Task.list() if t.id == export.id]
    check(
        len(listed_export) == 1
        and listed_export[0].task_type == "EXPORT_FEATURES"
        and listed_export[0].config["description"] == "offline export",
        f"the export in Task.list: {listed_export}",
    )
    export.cancel()
    op = poll(
        f"export {export.name} done",
        lambda: ee.data.getOperation(export.name),
        lambda o: o.get("done"),
    )
    expect_cancelled(
        op,
        f"cancelled export {export.name} (if SUCCEEDED: the task type's simulate duration "
        "is too short to cancel it in time)",
    )
    check(export.status()["state"] == "CANCELLED", f"export status: {export.status()}")
    check(export.active() is False, "a CANCELLED export is not active")
    print("table export: started, RUNNING, CANCELLED")

    # An image export of a constant image clipped to a rectangle, built client-side from
    # the served signatures (Image.constant, GeometryConstructors.Polygon,
    # Image.clipToBoundsAndScale).
    image_export = ee.batch.Export.image.toDrive(
        image=ee.Image(1),
        region=ee.Geometry.Rectangle([0, 0, 1, 1]),
        scale=30,
        description="offline image export",
    )
    image_export.start()
    op = ee.data.getOperation(image_export.name)
    check(op["metadata"].get("type") == "EXPORT_IMAGE", f"image export type: {op}")
    check(
        op["metadata"].get("description") == "offline image export",
        f"image export description: {op}",
    )
    image_export.cancel()
    op = poll(
        f"image export {image_export.name} done",
        lambda: ee.data.getOperation(image_export.name),
        lambda o: o.get("done"),
    )
    expect_cancelled(op, f"cancelled image export {image_export.name}")
    print("image export: started, CANCELLED")

    print("ok")


if __name__ == "__main__":
    main()
