"""What the client test scripts share: failing with a message, checks, polling, and the
`earthengine` CLI pointed at a server."""

import atexit
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse

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


def earthengine_cli(base, key_file, project, timeout=120):
    """A runner of the `earthengine` script next to this Python, configured the way the
    README says (a JSON file named by EE_CONFIG_FILE with the server's URL and the project,
    and --service_account_file KEY_FILE): run(*args, rc=0) runs one command, checks its exit
    code and returns the finished process."""
    cli = os.path.join(os.path.dirname(sys.executable), "earthengine")
    check(os.path.exists(cli), f"no earthengine script at {cli} (install earthengine-api)")
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as config:
        json.dump({"url": base, "project": project}, config)
    atexit.register(os.unlink, config.name)
    env = dict(os.environ)
    env["EE_CONFIG_FILE"] = config.name
    # The CLI's ee.Initialize also fetches Google's public data catalog over https; keep
    # every request on BASE: https traffic to any other host goes to a closed loopback port.
    host = urllib.parse.urlsplit(base).hostname or ""
    env["https_proxy"] = env["HTTPS_PROXY"] = "http://127.0.0.1:9"
    env["no_proxy"] = env["NO_PROXY"] = f"127.0.0.1,localhost,::1,{host}"

    def run(*args, rc=0):
        argv = [cli, "--service_account_file", key_file, *args]
        try:
            done = subprocess.run(
                argv,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except subprocess.TimeoutExpired:
            fail(f"`earthengine {' '.join(args)}` did not finish within {timeout} s")
        check(
            done.returncode == rc,
            f"`earthengine {' '.join(args)}` exited {done.returncode}, expected {rc}\n"
            f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}",
        )
        return done

    return run
