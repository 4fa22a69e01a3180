"""A key file from `longrun service-accounts create` is read by the `earthengine` CLI as a
Google key file: the CLI talks to the project of its configuration, not to the account's.

Usage: ee_key_file.py BASE KEY_FILE PROJECT

KEY_FILE belongs to an account of another project (KEY_PROJECT, its `project_id`) that holds
roles/earthengine.admin on PROJECT and on KEY_PROJECT. One task is submitted to each; `task
list` with `--service_account_file KEY_FILE` and PROJECT configured (EE_CONFIG_FILE) must
list PROJECT's task and not KEY_PROJECT's. A key file of the old form, with a `project`
field, still gets tokens from google-auth. Prints "ok" at the end.
"""

import json
import os
import sys
import tempfile
import uuid

import google.auth.transport.requests
import requests
from checks import check, earthengine_cli
from google.oauth2 import service_account

EE_SCOPE = "https://www.googleapis.com/auth/earthengine"


def token(key_info: dict) -> str:
    credentials = service_account.Credentials.from_service_account_info(key_info, scopes=[EE_SCOPE])
    credentials.refresh(google.auth.transport.requests.Request())
    return credentials.token


def main() -> None:
    base, key_file, project = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3]
    with open(key_file) as f:
        key = json.load(f)
    key_project = key["project_id"]
    check(key_project != project, f"the key's project {key_project} is the configured one")
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {token(key)}"
    submitted = {}
    for p in (project, key_project):
        r = http.post(
            f"{base}/v1/projects/{p}/operations:submit",
            json={"type": "EXPORT_IMAGE", "description": f"in {p}", "requestId": str(uuid.uuid4())},
            timeout=60,
        )
        check(r.status_code == 200, f"submit in {p}: HTTP {r.status_code} {r.text}")
        submitted[p] = r.json()["name"].split("/operations/", 1)[1]

    run = earthengine_cli(base, key_file, project)
    listed = run("task", "list").stdout
    check(submitted[project] in listed, f"`task list` lacks {project}'s task:\n{listed}")
    check(
        submitted[key_project] not in listed,
        f"`task list` shows the key's project {key_project}, not the configured {project}:\n"
        f"{listed}",
    )

    # A key file written by older versions, with a `project` field: still a valid key.
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as old:
        json.dump({**key, "project": key_project}, old)
    try:
        with open(old.name) as f:
            check(bool(token(json.load(f))), "no token for a key file with `project`")
    finally:
        os.unlink(old.name)
    print("ok")


if __name__ == "__main__":
    main()
