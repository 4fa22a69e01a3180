"""The server's OpenAPI document, checked by tools not written here.

Usage: openapi_check.py BASE

BASE is the server's URL, like http://127.0.0.1:PORT (auth off). Checked: `GET /openapi.json`
is a valid OpenAPI 3.1 document (openapi-spec-validator); schemathesis sends requests the
document describes to every operation (a bounded number per operation, a fixed seed) and
checks each answer: no 5xx, a status the document lists, its content type and its body
against the response schema, and the headers. Only schema-valid requests are generated:
a request the schema rules out may be answered anything in Google's envelope (a
`returnPartialSuccess=true` is 501 UNIMPLEMENTED by design). Prints "ok" at the end.
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import requests
from checks import check
from openapi_spec_validator import validate

EXAMPLES = os.environ.get("OPENAPI_EXAMPLES", "15")
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
    ]
)


def main(argv):
    if len(argv) != 2:
        sys.exit("usage: openapi_check.py BASE")
    base = argv[1].rstrip("/")
    session = requests.Session()
    session.trust_env = False
    r = session.get(f"{base}/openapi.json", timeout=10)
    check(r.status_code == 200, f"GET /openapi.json: HTTP {r.status_code} {r.text[:200]}")
    document = r.json()
    validate(document)
    check(document["openapi"].startswith("3.1"), f"not OpenAPI 3.1: {document['openapi']}")

    schemathesis = Path(sys.executable).with_name("schemathesis")
    # Run in a directory of its own: schemathesis keeps a cache where it runs.
    with tempfile.TemporaryDirectory() as scratch:
        run = subprocess.run(
            [
                str(schemathesis), "run", f"{base}/openapi.json", "--max-examples", EXAMPLES,
                "--seed", "1", "--mode", "positive", "--checks", CHECKS, "--no-color",
            ],
            capture_output=True, text=True, check=False, timeout=600,
            env={**os.environ, "NO_PROXY": "*"}, cwd=scratch,
        )  # fmt: skip
    check(run.returncode == 0, f"schemathesis found failures:\n{run.stdout[-6000:]}{run.stderr}")
    print("ok")


if __name__ == "__main__":
    main(sys.argv)
