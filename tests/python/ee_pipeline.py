"""A realistic Earth Engine pipeline, run offline against longrun's emulator.

Usage: ee_pipeline.py BASE KEY_FILE PROJECT

The server at BASE serves the full algorithm list (from the installed earthengine-api) and
runs every Earth Engine task type on the `simulate` executor for about a second; auth mode
"oauth"; KEY_FILE is a service-account key with roles/earthengine.admin on PROJECT, whose
asset registry starts empty.

The script is what a user writes, with the official client unmodified: the 20 calls most
common in real scripts (exactly one of which, `getInfo()`, needs computation and must fail
at once with NOT_EMULATED), then a pipeline: a folder, a Sentinel-2 collection filtered by
date and bounds, band math and `map`, reducers, exports to Drive, Cloud Storage, an asset
and BigQuery, an image and a table ingestion, a polling loop until every task is done,
`Task.list`, and the assets the tasks made (`getAsset`, `listAssets`, `updateAsset`,
`renameAsset`, `copyAsset`, `deleteAsset`, `getAssetAcl`). Prints "ok" at the end; any
failed check exits non-zero with a message.
"""

import inspect
import os
import re
import sys
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

# ee.Initialize also fetches Google's public data catalog (for deprecation warnings) from
# an https address: https traffic to any host but BASE goes to a closed loopback port, so
# that fetch fails at once and the client carries on without it.
if len(sys.argv) > 1:
    _host = urllib.parse.urlsplit(sys.argv[1]).hostname or ""
    os.environ["https_proxy"] = os.environ["HTTPS_PROXY"] = "http://127.0.0.1:9"
    os.environ["no_proxy"] = os.environ["NO_PROXY"] = f"127.0.0.1,localhost,::1,{_host}"

import ee
from checks import check, fail, poll
from google.oauth2 import service_account

EE_SCOPE = "https://www.googleapis.com/auth/earthengine"
DONE = ("COMPLETED", "FAILED", "CANCELLED")


def common_calls(project: str, region: ee.Geometry) -> list[tuple[str, Callable[[], Any]]]:
    """The 20 calls most common in real scripts (ee.Initialize, already made, is the 1st)."""
    s2 = "COPERNICUS/S2_SR_HARMONIZED"

    def collection() -> ee.ImageCollection:
        return ee.ImageCollection(s2).filterDate("2024-06-01", "2024-07-01").filterBounds(region)

    def export_drive() -> ee.batch.Task:
        task = ee.batch.Export.image.toDrive(
            collection().median().select(["B4", "B3", "B2"]),
            description="common-drive",
            region=region,
            scale=10,
            crs="EPSG:32633",
            maxPixels=1e9,
        )
        task.start()
        return task

    def export_gcs() -> ee.batch.Task:
        table = ee.FeatureCollection([ee.Feature(region, {"name": "aoi"})])
        task = ee.batch.Export.table.toCloudStorage(
            table, description="common-gcs", bucket="common-bucket", fileFormat="GeoJSON"
        )
        task.start()
        return task

    def export_video() -> ee.batch.Task:
        frames = collection().map(lambda i: i.visualize(bands=["B4", "B3", "B2"], max=3000))
        task = ee.batch.Export.video.toDrive(
            frames, description="common-video", region=region, framesPerSecond=2, dimensions=480
        )
        task.start()
        return task

    def status() -> dict[str, Any]:
        task = export_gcs()
        return task.status()

    return [
        ("ee.Geometry.Rectangle", lambda: ee.Geometry.Rectangle([13.0, 52.3, 13.6, 52.7])),
        ("ee.ImageCollection(...).filterDate", lambda: collection()),
        ("filterBounds", lambda: ee.ImageCollection(s2).filterBounds(region)),
        (
            "filter(ee.Filter.lt)",
            lambda: collection().filter(ee.Filter.lt("CLOUDY_PIXEL_PERCENTAGE", 20)),
        ),
        ("img.select", lambda: collection().first().select(["B8", "B4"])),
        ("img.multiply / add", lambda: ee.Image(collection().first()).multiply(0.0001).add(1)),
        ("normalizedDifference", lambda: collection().first().normalizedDifference(["B8", "B4"])),
        ("ic.map", lambda: collection().map(lambda i: i.normalizedDifference(["B8", "B4"]))),
        ("ic.median", lambda: collection().median()),
        (
            "reduceRegion",
            lambda: collection().median().reduceRegion(ee.Reducer.mean(), region, 30),
        ),
        ("ee.Date", lambda: ee.Date("2024-06-01").advance(1, "month")),
        ("img.clip", lambda: collection().median().clip(region)),
        ("ee.FeatureCollection", lambda: ee.FeatureCollection([ee.Feature(region, {"a": 1})])),
        ("Export.image.toDrive(crs=)", export_drive),
        ("Export.table.toCloudStorage", export_gcs),
        ("Export.video.toDrive", export_video),
        ("task.status()", status),
        ("ee.batch.Task.list()", lambda: ee.batch.Task.list()),
        ("getInfo()", lambda: ee.Number(1).add(1).getInfo()),
    ]


def wait_all(tasks: list[ee.batch.Task], timeout: float = 60.0) -> dict[str, dict[str, Any]]:
    """The polling loop real scripts have: status() of every task until all are done."""
    deadline = time.monotonic() + timeout
    while True:
        statuses = {t.status()["description"]: t.status() for t in tasks}
        if all(s["state"] in DONE for s in statuses.values()):
            return statuses
        if time.monotonic() > deadline:
            fail(f"tasks not done within {timeout:.0f} s: {statuses}")
        time.sleep(0.3)


def main() -> None:
    base, key_file, project = sys.argv[1], sys.argv[2], sys.argv[3]
    credentials = service_account.Credentials.from_service_account_file(key_file, scopes=[EE_SCOPE])
    started = time.perf_counter()
    ee.Initialize(credentials=credentials, project=project, url=base)
    print(f"ee.Initialize (token exchange included): {time.perf_counter() - started:.3f} s")
    check(ee.data.is_initialized(), "ee.Initialize returned but the client is not initialized")

    # --- Every method ee/data.py calls is in the served discovery document.
    chains = {
        (*re.findall(r"\.\s*(\w+)\(\)", m.group(1)), m.group(2))
        for m in re.finditer(
            r"_get_cloud_projects(?:_raw)?\(\)((?:\s*\.\s*\w+\(\))*)\s*\.\s*(\w+)\(",
            inspect.getsource(ee.data),
        )
    }
    missing = []
    for chain in sorted(chains):
        node = ee.data._get_cloud_projects()
        for i, part in enumerate(chain):
            attr = getattr(node, part, None)
            if attr is None:
                missing.append(".".join(chain))
                break
            if i < len(chain) - 1:
                node = attr()
    check(
        len(chains) > 30 and not missing,
        f"{len(chains)} methods called by ee/data.py; not served: {missing}",
    )
    print(f"discovery: all {len(chains)} methods ee/data.py calls are served")

    # --- The 20 common calls: at most one failure, and it must be getInfo's NOT_EMULATED.
    region = ee.Geometry.Rectangle([13.0, 52.3, 13.6, 52.7])
    failures = []
    for label, call in common_calls(project, region):
        began = time.perf_counter()
        try:
            call()
        except Exception as e:
            failures.append((label, str(e), time.perf_counter() - began))
    print(f"common calls: {20 - len(failures)}/20 work; failing: {[f[0] for f in failures]}")
    check(len(failures) == 1 and failures[0][0] == "getInfo()", f"unexpected failures: {failures}")
    label, message, seconds = failures[0]
    check("not emulated" in message and "value.compute" in message, f"getInfo: {message}")
    check(seconds < 2.0, f"getInfo took {seconds:.1f} s: NOT_EMULATED must answer at once")

    # --- A pipeline.
    folder = f"projects/{project}/assets/pipeline"
    ee.data.createFolder(folder)
    check(ee.data.getAsset(folder)["type"] == "FOLDER", "the folder was not created")
    aoi = ee.Geometry.Polygon([[[13.0, 52.3], [13.6, 52.3], [13.6, 52.7], [13.0, 52.7]]])
    s2 = (
        ee.ImageCollection("COPERNICUS/S2_SR_HARMONIZED")
        .filterDate("2024-05-01", "2024-09-01")
        .filterBounds(aoi)
        .filter(ee.Filter.lt("CLOUDY_PIXEL_PERCENTAGE", 30))
    )

    def ndvi(image: ee.Image) -> ee.Image:
        scaled = image.multiply(0.0001)
        return (
            scaled.normalizedDifference(["B8", "B4"])
            .rename("ndvi")
            .copyProperties(image, ["system:time_start"])
        )

    composite = s2.map(ndvi).median().clip(aoi)
    stats = composite.reduceRegion(
        reducer=ee.Reducer.mean().combine(ee.Reducer.stdDev(), sharedInputs=True),
        geometry=aoi,
        scale=30,
        maxPixels=1e9,
    )
    monthly = ee.FeatureCollection(
        ee.List.sequence(5, 8).map(
            lambda m: ee.Feature(
                None,
                s2.filter(ee.Filter.calendarRange(m, m, "month"))
                .map(ndvi)
                .mean()
                .reduceRegion(ee.Reducer.median(), aoi, 100),
            ).set("month", m)
        )
    )
    tasks = [
        ee.batch.Export.image.toDrive(
            composite,
            description="ndvi-drive",
            folder="pipeline",
            fileNamePrefix="ndvi_summer",
            region=aoi,
            scale=30,
            crs="EPSG:4326",
        ),
        ee.batch.Export.image.toCloudStorage(
            composite,
            description="ndvi-gcs",
            bucket="my-bucket",
            fileNamePrefix="ndvi/2024",
            region=aoi,
            scale=30,
        ),
        ee.batch.Export.image.toAsset(
            composite, description="ndvi-asset", assetId=f"{folder}/ndvi", region=aoi, scale=30
        ),
        ee.batch.Export.table.toBigQuery(
            monthly, description="monthly-bq", table="my-proj.ee.monthly_ndvi"
        ),
        ee.batch.Export.table.toDrive(
            ee.FeatureCollection([ee.Feature(None, stats)]),
            description="stats-drive",
            fileFormat="CSV",
        ),
    ]
    for t in tasks:
        t.start()
    ingest_image = ee.data.startIngestion(
        ee.data.newTaskId()[0],
        {
            "name": f"{folder}/upload",
            "tilesets": [{"sources": [{"uris": ["gs://my-bucket/scene.tif"]}]}],
            "properties": {"source": "drone"},
            "startTime": "2024-06-01T00:00:00Z",
        },
    )
    ingest_table = ee.data.startTableIngestion(
        ee.data.newTaskId()[0],
        {"name": f"{folder}/plots", "sources": [{"uris": ["gs://my-bucket/plots.csv"]}]},
    )
    missing = ee.batch.Export.table.toAsset(
        monthly, description="into-nothing", assetId=f"projects/{project}/assets/no-such-folder/t"
    )
    missing.start()

    statuses = wait_all([*tasks, missing])
    expected = {
        "ndvi-drive": "https://drive.google.com/#folders/pipeline/ndvi_summer",
        "ndvi-gcs": "https://console.developers.google.com/storage/browser/my-bucket/ndvi/2024",
        "ndvi-asset": f"https://code.earthengine.google.com/?asset={folder}/ndvi",
        "monthly-bq": "https://console.cloud.google.com/bigquery?p=my-proj&d=ee&t=monthly_ndvi&page=table",
        "stats-drive": "https://drive.google.com/#folders/root/stats-drive",
    }
    for description, uri in expected.items():
        s = statuses[description]
        check(s["state"] == "COMPLETED", f"{description}: {s}")
        check(
            s.get("destination_uris", [None])[0] == uri,
            f"{description}: destination {s.get('destination_uris')} != {uri}",
        )
        check(s.get("batch_eecu_usage_seconds", 0) > 0, f"{description}: no EECU usage in {s}")
    s = statuses["into-nothing"]
    check(
        s["state"] == "FAILED" and "does not exist" in s.get("error_message", ""),
        f"export into a missing folder: {s}",
    )

    for name in (ingest_image["name"], ingest_table["name"]):
        poll(
            f"ingestion {name}",
            lambda n=name: ee.data.getOperation(n),
            lambda op: op.get("done") is True,
        )
        op = ee.data.getOperation(name)
        check("error" not in op, f"ingestion failed: {op}")

    listed = {t.id for t in ee.batch.Task.list()}
    check(all(t.id in listed for t in tasks), "Task.list() lacks the pipeline's tasks")

    # --- The assets the tasks made.
    image = ee.data.getAsset(f"{folder}/ndvi")
    check(
        image["type"] == "IMAGE" and image["name"] == f"{folder}/ndvi", f"exported asset: {image}"
    )
    upload = ee.data.getAsset(f"{folder}/upload")
    check(
        upload["type"] == "IMAGE" and upload["properties"] == {"source": "drone"},
        f"ingested image: {upload}",
    )
    check(upload.get("startTime") == "2024-06-01T00:00:00Z", f"ingested image start time: {upload}")
    check(
        ee.data.getAsset(f"{folder}/plots")["type"] == "TABLE", "the table ingestion made no TABLE"
    )
    names = [a["name"] for a in ee.data.listAssets({"parent": folder})["assets"]]
    check(
        names == [f"{folder}/ndvi", f"{folder}/plots", f"{folder}/upload"], f"listAssets: {names}"
    )
    page = ee.data.listAssets({"parent": folder, "pageSize": 2})
    check(len(page["assets"]) == 2 and page.get("nextPageToken"), f"a page of 2: {page}")

    ee.data.updateAsset(
        f"{folder}/ndvi", {"properties": {"quality": "good"}}, ["properties.quality"]
    )
    check(ee.data.getAsset(f"{folder}/ndvi")["properties"] == {"quality": "good"}, "updateAsset")
    ee.data.renameAsset(f"{folder}/ndvi", f"{folder}/ndvi_v1")
    check(ee.data.getInfo(f"{folder}/ndvi") is None, "renameAsset left the old name")
    ee.data.copyAsset(f"{folder}/ndvi_v1", f"{folder}/ndvi_copy")
    check(ee.data.getAsset(f"{folder}/ndvi_copy")["properties"] == {"quality": "good"}, "copyAsset")
    ee.data.deleteAsset(f"{folder}/ndvi_copy")
    check(ee.data.getInfo(f"{folder}/ndvi_copy") is None, "deleteAsset")
    acl = ee.data.getAssetAcl(f"{folder}/ndvi_v1")
    check(any(m.endswith(".iam.longrun") for m in acl["owners"]), f"getAssetAcl: {acl}")
    try:
        ee.data.deleteAsset(folder)
        fail("deleting a folder that holds assets succeeded")
    except ee.EEException as e:
        check("not empty" in str(e), f"deleting a full folder: {e}")
    print("ok")


if __name__ == "__main__":
    main()
