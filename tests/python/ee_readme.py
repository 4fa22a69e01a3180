"""The README's Earth Engine recipe, run as written there, with or without auth.

Usage: ee_readme.py BASE KEY_FILE PROJECT README

Takes the first ```python block and the ```sh block with the `earthengine` commands of the
README's "### Recipe" section and runs them, with the README's `http://127.0.0.1:8080`,
`key.json` and `my-project` replaced by BASE (with a trailing slash in the Python part, as
users often write it), KEY_FILE and PROJECT. KEY_FILE comes from `longrun service-accounts
create` (with auth on, its account is bound to PROJECT; with auth off it may come from any
store). The CLI's config file names the project, as the README's does. Prints "ok" at the
end.
"""

import os
import re
import subprocess
import sys
import tempfile
import urllib.parse

if len(sys.argv) > 1:
    _host = urllib.parse.urlsplit(sys.argv[1]).hostname or ""
    os.environ["https_proxy"] = os.environ["HTTPS_PROXY"] = "http://127.0.0.1:9"
    os.environ["no_proxy"] = os.environ["NO_PROXY"] = f"127.0.0.1,localhost,::1,{_host}"

from checks import check

README_URL = "http://127.0.0.1:8080"


def blocks(readme: str) -> tuple[str, str]:
    """The recipe's Python block and its `earthengine` shell block."""
    section = readme.split("### Recipe", 1)[1].split("\n### ", 1)[0]
    fenced = re.findall(r"```(\w+)\n(.*?)```", section, re.DOTALL)
    python = next(body for lang, body in fenced if lang == "python")
    shell = next(body for lang, body in fenced if lang == "sh" and "earthengine " in body)
    return python, shell


def main() -> None:
    base, key_file, project, readme = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3], sys.argv[4]
    with open(readme) as f:
        python, shell = blocks(f.read())

    def fill(text: str, url: str) -> str:
        return (
            text.replace(README_URL, url)
            .replace("key.json", key_file)
            .replace("my-project", project)
        )

    scope: dict[str, object] = {}
    exec(compile(fill(python, base + "/"), "README.md (recipe)", "exec"), scope)
    task = scope["task"]
    status = task.status()  # type: ignore[attr-defined]
    check(status["state"] in ("READY", "RUNNING", "COMPLETED"), f"README task: {status}")

    work = tempfile.mkdtemp()
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
    outputs = []
    for line in fill(shell, base).splitlines():
        if not line.strip():
            continue
        done = subprocess.run(
            line,
            shell=True,
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        check(
            done.returncode == 0, f"`{line}` exited {done.returncode}\n{done.stdout}\n{done.stderr}"
        )
        outputs.append(done.stdout)
    check(
        task.id in outputs[1] and "ndvi" in outputs[1],
        f"`task list` lacks the README's task:\n{outputs[1]}",
    )  # type: ignore[attr-defined]
    check(outputs[3].strip() == "", f"`ls` of the new, empty folder: {outputs[3]!r}")
    ee = scope["ee"]
    folder = ee.data.getAsset(f"projects/{project}/assets/tests")  # type: ignore[attr-defined]
    check(folder["type"] == "FOLDER", f"the folder `create folder` made: {folder}")
    print("ok")


if __name__ == "__main__":
    main()
