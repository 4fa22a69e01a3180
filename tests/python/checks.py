"""What the client test scripts share: failing with a message, checks, and polling."""

import os
import sys
import time

TIMEOUT = 30.0


def fail(message):
    script = os.path.splitext(os.path.basename(sys.argv[0]))[0]
    sys.exit(f"{script}: FAILED: {message}")


def check(condition, message):
    if not condition:
        fail(message)


def poll(what, fetch, done, timeout=TIMEOUT):
    """Calls fetch() until done(value) or the timeout; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value):
            return value
        if time.monotonic() > deadline:
            fail(f"{what}: not reached within {timeout:.0f} s; last seen {value}")
        time.sleep(0.2)
