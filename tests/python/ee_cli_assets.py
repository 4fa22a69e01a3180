"""The `earthengine` CLI's asset and task commands against longrun's Earth Engine emulator.

Usage: ee_cli_assets.py BASE KEY_FILE PROJECT

Server as for ee_pipeline.py (tasks run about a second; a [[fault]] makes tasks whose
description matches "*slow*" run 60 s). The CLI is the `earthengine` script next to this
Python, configured the way the README says: a JSON file named by EE_CONFIG_FILE with the
server's URL and the project, and --service_account_file KEY_FILE.

Checked: `create folder` (with and without --parents), `create collection`, `ls` (of the
project and of a folder, -l, -r), `asset info`, `asset set`, `mv`, `cp`, `rm` (-r),
`acl get`, `upload image` and `upload table` (ingestions that create assets), `du` of
the assets they made, `task list`,
`task info`, `task wait` and `task cancel`. Prints "ok" at the end.
"""

import json
import sys

from checks import check, earthengine_cli, poll


def main() -> None:
    base, key_file, project = sys.argv[1], sys.argv[2], sys.argv[3]
    run = earthengine_cli(base, key_file, project)

    def earthengine(*args: str, rc: int = 0) -> str:
        done = run(*args, rc=rc)
        return done.stdout + done.stderr

    root = f"projects/{project}/assets"
    earthengine("create", "folder", f"{root}/cli")
    earthengine("create", "collection", f"{root}/cli/scenes")
    earthengine("create", "folder", "--parents", f"{root}/cli/deep/er")
    out = earthengine("create", "folder", f"{root}/cli")
    check("already exists" in out, f"create of an existing folder: {out}")
    out = earthengine("create", "folder", f"{root}/nowhere/x", rc=1)
    check("does not exist" in out, f"create under a missing folder: {out}")

    top = earthengine("ls").split()
    check(f"{root}/cli" in top, f"`ls` of the project: {top}")
    listing = earthengine("ls", f"{root}/cli").split()
    check(listing == [f"{root}/cli/deep", f"{root}/cli/scenes"], f"`ls` of a folder: {listing}")
    long = earthengine("ls", "-l", f"{root}/cli")
    check("[ImageCollection]" in long and "[Folder]" in long, f"`ls -l`: {long}")
    recursive = earthengine("ls", "-r", f"{root}/cli").split()
    check(f"{root}/cli/deep/er" in recursive, f"`ls -r`: {recursive}")

    info = json.loads(earthengine("asset", "info", f"{root}/cli/scenes"))
    check(
        info["type"] == "IMAGE_COLLECTION" and info["name"] == f"{root}/cli/scenes",
        f"`asset info`: {info}",
    )
    earthengine("asset", "info", f"{root}/cli/none", rc=1)
    earthengine("asset", "set", "-p", "(string)sensor=S2", f"{root}/cli/scenes")
    info = json.loads(earthengine("asset", "info", f"{root}/cli/scenes"))
    check(info.get("properties", {}).get("sensor") == "S2", f"`asset set`: {info}")

    # Ingestions: the CLI's uploads become tasks that create their assets.
    out = earthengine(
        "upload",
        "image",
        "--wait",
        "60",
        f"--asset_id={root}/cli/scenes/one",
        "-p",
        "(string)tile=33UUU",
        "gs://bucket/one.tif",
    )
    check("Started upload task" in out, f"`upload image`: {out}")
    earthengine(
        "upload", "table", "--wait", "60", f"--asset_id={root}/cli/plots", "gs://bucket/plots.csv"
    )
    image = json.loads(earthengine("asset", "info", f"{root}/cli/scenes/one"))
    check(
        image["type"] == "IMAGE" and image.get("properties") == {"tile": "33UUU"},
        f"uploaded image: {image}",
    )
    check(
        json.loads(earthengine("asset", "info", f"{root}/cli/plots"))["type"] == "TABLE",
        "uploaded table",
    )

    # `du` of a leaf asset prints the sizeBytes its getAsset carries.
    for leaf in (f"{root}/cli/scenes/one", f"{root}/cli/plots"):
        size = int(json.loads(earthengine("asset", "info", leaf))["sizeBytes"])
        out = run("du", leaf).stdout.split()
        check(out == [str(size), leaf] and size > 0, f"`du {leaf}`: {out} (sizeBytes {size})")
    earthengine("mv", f"{root}/cli/plots", f"{root}/cli/deep/plots")
    earthengine("asset", "info", f"{root}/cli/plots", rc=1)
    earthengine("cp", f"{root}/cli/deep/plots", f"{root}/cli/plots-copy")
    check(
        json.loads(earthengine("asset", "info", f"{root}/cli/plots-copy"))["type"] == "TABLE",
        "`cp`",
    )
    earthengine("mv", f"{root}/cli/scenes", f"{root}/cli/deep/scenes")
    check(
        earthengine("ls", f"{root}/cli/deep/scenes").split() == [f"{root}/cli/deep/scenes/one"],
        "`mv` of a collection keeps its images",
    )

    acl = json.loads(earthengine("acl", "get", f"{root}/cli").replace("'", '"'))
    check(acl["owners"] == [f"serviceAccount:tester@{project}.iam.longrun"], f"`acl get`: {acl}")

    earthengine("rm", f"{root}/cli/plots-copy")
    earthengine("rm", "-r", f"{root}/cli/deep")
    check(earthengine("ls", f"{root}/cli").split() == [], "`rm -r` left something")

    # Task commands on an ingestion that runs 60 s (its description matches "*slow*").
    out = earthengine(
        "upload", "table", f"--asset_id={root}/cli/slow-table", "gs://bucket/slow.csv"
    )
    task_id = out.split("Started upload task with ID: ")[1].split()[0]
    rows = earthengine("task", "list")
    check(task_id in rows and "Upload" in rows, f"`task list`: {rows}")
    info_out = earthengine("task", "info", task_id)
    check(
        "Ingest" in info_out and ("RUNNING" in info_out or "PENDING" in info_out),
        f"`task info`: {info_out}",
    )
    earthengine("task", "cancel", task_id)
    poll(
        "cancelled upload", lambda: earthengine("task", "info", task_id), lambda o: "CANCELLED" in o
    )
    earthengine("asset", "info", f"{root}/cli/slow-table", rc=1)
    out = earthengine("upload", "table", f"--asset_id={root}/cli/waited", "gs://bucket/w.csv")
    waited = out.split("Started upload task with ID: ")[1].split()[0]
    earthengine("task", "wait", waited)
    check("SUCCEEDED" in earthengine("task", "info", waited), "`task wait` returned before the end")
    check(
        json.loads(earthengine("asset", "info", f"{root}/cli/waited"))["type"] == "TABLE",
        "waited table",
    )
    earthengine("rm", "-r", f"{root}/cli")
    earthengine("asset", "info", f"{root}/cli", rc=1)
    print("ok")


if __name__ == "__main__":
    main()
