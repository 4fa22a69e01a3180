"""Every answer the API tests read, checked against the server's OpenAPI document.

Usage: openapi_responses.py LONGRUN DIR

LONGRUN is the `longrun` binary: it is started on port 0 with a scratch data directory for its
`GET /openapi.json`. DIR holds the JSON lines the test kit wrote while the API tests ran
(`LONGRUN_TEST_RESPONSES`: `{"method", "path", "status", "contentType", "body"}` a line).
Each answer is matched to the document's operation by its method and path (`/v1alpha` and
`/v1beta` are `/v1`; the most specific template wins, and an id may hold slashes, as
operation ids do) and checked: its status is one the operation lists, its content type the
one the document gives, and its body valid against the schema (JSON Schema 2020-12, formats
checked). An error answer on a path no operation has (a test's unknown route, say) is
checked against the error envelope. Paths that are not API methods (health and readiness,
metrics, the token endpoint, the discovery and OpenAPI documents, the page) are counted
apart. A 2xx answer on any other path fails the check: a method the document leaves out.
Prints a summary and "ok".
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from openapi_schema_validator import OAS31Validator

# Served beside the API and described elsewhere (docs/): not in the document.
NOT_API = re.compile(
    r"^/(healthz|readyz|metrics|token|openapi\.json|\$discovery/.*|discovery/.*"
    r"|v1[a-z]*/discovery.*|assets/.*|)$"
)


@dataclass
class Operation:
    method: str
    template: str
    pattern: re.Pattern[str]
    spec: dict[str, Any]

    @property
    def specificity(self) -> int:
        """Characters outside the template's parameters: the most specific match wins."""
        return len(re.sub(r"\{[^}]+\}", "", self.template))


def openapi_document(binary: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        server = subprocess.Popen(
            [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", f"{scratch}/data"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        try:
            assert server.stdout is not None
            line = server.stdout.readline().strip()
            if not line.startswith("listening on "):
                sys.exit(f"the server did not start: {line!r}")
            base = line.removeprefix("listening on ")
            session = requests.Session()
            session.trust_env = False
            document: dict[str, Any] = session.get(f"{base}/openapi.json", timeout=10).json()
            return document
        finally:
            server.terminate()
            server.wait(timeout=30)


def operations(document: dict[str, Any]) -> list[Operation]:
    found = []
    for template, item in document["paths"].items():
        parts = re.split(r"(\{[^}]+\})", template)
        regex = "".join(".+?" if p.startswith("{") else re.escape(p) for p in parts)
        pattern = re.compile(f"^{regex}$")
        for method, spec in item.items():
            found.append(Operation(method.upper(), template, pattern, spec))
    found.sort(key=lambda op: -op.specificity)
    return found


def normalized(path: str) -> str:
    path = re.sub(r"^/+", "/", path.split("?", 1)[0])
    return re.sub(r"^/v1(alpha|beta)/", "/v1/", path)


def main(argv: list[str]) -> None:
    if len(argv) != 3:
        sys.exit("usage: openapi_responses.py LONGRUN DIR")
    document = openapi_document(argv[1])
    table = operations(document)
    components = document["components"]

    def validator(schema: dict[str, Any]) -> OAS31Validator:
        return OAS31Validator(
            {**schema, "components": components}, format_checker=OAS31Validator.FORMAT_CHECKER
        )

    error_envelope = validator({"$ref": "#/components/schemas/Error"})
    failures: list[str] = []
    checked: Counter[str] = Counter()
    apart: Counter[str] = Counter()
    lines = [
        json.loads(line)
        for file in sorted(Path(argv[2]).glob("*.jsonl"))
        for line in file.read_text().splitlines()
    ]
    if not lines:
        sys.exit(f"no answers recorded in {argv[2]}: was LONGRUN_TEST_RESPONSES set?")
    for answer in lines:
        method, status, body = answer["method"], answer["status"], answer["body"]
        path = normalized(answer["path"])
        where = f"{method} {answer['path']} → {status}"
        operation = next(
            (op for op in table if op.method == method and op.pattern.match(path)), None
        )
        if operation is None:
            if NOT_API.match(path):
                apart[path.split("/")[1]] += 1
                continue
            if status < 400:
                failures.append(f"{where}: no operation in the document has this path")
                continue
            schema, media = error_envelope, "application/json"
            checked["(error on an unknown path)"] += 1
        else:
            responses = operation.spec["responses"]
            listed = responses.get(str(status)) or responses.get("default")
            if listed is None:
                failures.append(f"{where}: status not listed for {operation.template}")
                continue
            (media, content), *_ = listed["content"].items()
            schema = validator(content["schema"])
            checked[f"{method} {operation.template}"] += 1
        if not (answer["contentType"] or "").startswith(media):
            failures.append(f"{where}: content type {answer['contentType']!r}, not {media}")
            continue
        try:
            instance = json.loads(body)
        except json.JSONDecodeError:
            failures.append(f"{where}: the body is not JSON: {body[:200]!r}")
            continue
        for error in schema.iter_errors(instance):
            place = "/".join(str(p) for p in error.absolute_path)
            failures.append(f"{where}: at /{place}: {error.message[:300]}")
    print(
        f"{len(lines)} answers: {sum(checked.values())} checked against "
        f"{len(checked)} operations, {sum(apart.values())} outside the API "
        f"({', '.join(sorted(apart))})"
    )
    unexercised = {f"{op.method} {op.template}" for op in table} - checked.keys()
    print(f"{len(table) - len(unexercised)} of {len(table)} operations answered at least once")
    if failures:
        print(f"{len(failures)} failures:")
        for failure in sorted(set(failures))[:100]:
            print(f"  {failure}")
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main(sys.argv)
