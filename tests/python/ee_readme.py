"""The README's Earth Engine recipe, as written there, against a server with or without auth.

Usage: ee_readme.py BASE KEY_FILE PROJECT

KEY_FILE comes from `longrun service-accounts create` (with auth on, the account is bound to
PROJECT; with auth off it may come from any store). The Python part uses the base URL with
a trailing slash, as users often write it; the CLI part has no project in its config file
(the key file names it). Prints "ok" at the end.
"""

import json
import os
import subprocess
import sys
import tempfile
import urllib.parse

if len(sys.argv) > 1:
    _host = urllib.parse.urlsplit(sys.argv[1]).hostname or ""
    os.environ["https_proxy"] = os.environ["HTTPS_PROXY"] = "http://127.0.0.1:9"
    os.environ["no_proxy"] = os.environ["NO_PROXY"] = f"127.0.0.1,localhost,::1,{_host}"

from google.oauth2 import service_account  # noqa: E402

import ee  # noqa: E402
from checks import check  # noqa: E402


def main() -> None:
    base, key_file, project = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3]

    # The README's Python.
    credentials = service_account.Credentials.from_service_account_file(
        key_file, scopes=["https://www.googleapis.com/auth/earthengine"]
    )
    ee.Initialize(credentials=credentials, project=project, url=base + "/")
    points = ee.FeatureCollection([ee.Feature(ee.Geometry.Point([13.4, 52.5]), {"a": 1})])
    task = ee.batch.Export.table.toDrive(points, description="readme export")
    task.start()
    check(task.status()["state"] in ("READY", "RUNNING", "COMPLETED"), f"status: {task.status()}")

    # The README's CLI: a config file with the URL only.
    config = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    json.dump({"url": base}, config)
    config.close()
    cli = os.path.join(os.path.dirname(sys.executable), "earthengine")
    env = {**os.environ, "EE_CONFIG_FILE": config.name}

    def earthengine(*args: str) -> str:
        done = subprocess.run(
            [cli, "--service_account_file", key_file, *args], env=env, capture_output=True, text=True, timeout=120
        )
        check(done.returncode == 0, f"earthengine {args}: {done.returncode}\n{done.stdout}\n{done.stderr}")
        return done.stdout

    rows = earthengine("task", "list")
    check(task.id in rows and "readme export" in rows, f"`earthengine task list` lacks the task:\n{rows}")
    earthengine("create", "folder", f"projects/{project}/assets/readme")
    check(f"projects/{project}/assets/readme" in earthengine("ls"), "`earthengine ls` lacks the folder")
    print("ok")


if __name__ == "__main__":
    main()
