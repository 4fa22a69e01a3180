"""Submits, waits for, cancels and lists operations (the README's client example).

Run: python examples/client.py    (LONGRUN_URL, default http://127.0.0.1:8080)
"""

import os

import longrun

with longrun.Client(os.environ.get("LONGRUN_URL", "http://127.0.0.1:8080")) as client:
    op = client.submit("demo", "COUNTDOWN", {"seconds": 2}, description="a short countdown")
    done = client.wait(op["name"], timeout=60)
    print(done["metadata"]["state"], done["response"]["value"])  # SUCCEEDED {'counted': 2}

    bad = client.wait(client.submit("demo", "RESIZE", {"width": 0})["name"], timeout=60)
    print(bad["metadata"]["state"], bad["error"]["message"])  # FAILED width must be positive

    long = client.submit("demo", "COUNTDOWN", {"seconds": 600})
    while client.get(long["name"])["metadata"]["state"] == "PENDING":
        client.wait(long["name"], timeout=0.1)
    client.cancel(long["name"])  # the worker's handler sees asyncio.CancelledError
    print(client.wait(long["name"], timeout=60)["metadata"]["state"])  # CANCELLED

    for op in client.list("demo", filter="done = true"):
        print(op["name"], op["metadata"]["state"])

    try:
        client.get("projects/demo/operations/nope")
    except longrun.ApiError as e:
        print(e.code, e.status, e.reason)  # 5 NOT_FOUND OPERATION_NOT_FOUND
