//! The Earth Engine emulator over HTTP (docs/earth-engine.md): methods not emulated, the
//! discovery document, the asset registry, request faults, simulated tasks' destinations,
//! usage, assets and task faults, and where the algorithm list comes from.

use crate::common::TestServer;
use longrun_server::config::{Executor, TaskType};
use longrun_server::emulator::faults::{ApiFault, TaskFault};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

#[tokio::test]
async fn methods_not_emulated_answer_at_once_naming_the_method() {
    let s = TestServer::start().await;
    for (method, path, id) in [
        ("POST", "/v1/projects/p/value:compute", "value.compute"),
        (
            "POST",
            "/v1/projects/p/image:computePixels",
            "image.computePixels",
        ),
        (
            "POST",
            "/v1/projects/p/table:computeFeatures",
            "table.computeFeatures",
        ),
        (
            "POST",
            "/v1/projects/p/imageCollection:computeImages",
            "imageCollection.computeImages",
        ),
        ("POST", "/v1/projects/p/maps?fields=name", "maps.create"),
        ("GET", "/v1/projects/p/maps/m/tiles/3/1/2", "maps.tiles.get"),
        ("POST", "/v1/projects/p/thumbnails", "thumbnails.create"),
        (
            "GET",
            "/v1/projects/p/thumbnails/abc:getPixels",
            "thumbnails.getPixels",
        ),
        (
            "POST",
            "/v1/projects/p/videoThumbnails",
            "videoThumbnails.create",
        ),
        (
            "POST",
            "/v1/projects/p/filmstripThumbnails",
            "filmstripThumbnails.create",
        ),
        ("POST", "/v1/projects/p/tables", "tables.create"),
        ("POST", "/v1/projects/p/featureView", "featureView.create"),
        (
            "POST",
            "/v1/projects/p/image:importExternal",
            "image.importExternal",
        ),
        (
            "POST",
            "/v1/projects/p/assets/a/b:getPixels",
            "assets.getPixels",
        ),
        (
            "GET",
            "/v1/projects/p/assets/a:listFeatures?pageSize=5",
            "assets.listFeatures",
        ),
        (
            "POST",
            "/v1/projects/p/assets/a:setIamPolicy",
            "assets.setIamPolicy",
        ),
        (
            "GET",
            "/v1/projects/p/assets:search?query=ndvi&pageSize=10",
            "assets.search",
        ),
    ] {
        let started = Instant::now();
        let (status, error) = s.request(method, path, Some("{\"expression\": {}}")).await;
        assert!(started.elapsed() < Duration::from_secs(1), "{path}");
        assert_eq!(status, 400, "{method} {path}: {error}");
        assert_eq!(error["error"]["status"], "FAILED_PRECONDITION");
        let info = &error["error"]["details"][0];
        assert_eq!(info["reason"], "NOT_EMULATED", "{path}");
        assert_eq!(
            info["metadata"]["method"],
            format!("earthengine.projects.{id}")
        );
        let message = error["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(id) && message.contains("computes nothing"),
            "{message}"
        );
    }
    // Known path, wrong HTTP method: 405.
    let (status, _) = s.request("GET", "/v1/projects/p/value:compute", None).await;
    assert_eq!(status, 405);
    let (status, _) = s.request("POST", "/v1/projects/p:explode", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn discovery_lists_every_method_the_client_calls_also_behind_a_trailing_slash() {
    let s = TestServer::start().await;
    for path in [
        "/$discovery/rest?version=v1",
        "//$discovery/rest?version=v1&prettyPrint=false",
    ] {
        let (status, doc) = s.request("GET", path, None).await;
        assert_eq!(status, 200, "{path}");
        let projects = &doc["resources"]["projects"];
        for id in [
            "listAssets",
            "getConfig",
            "updateConfig",
            "algorithms.list",
            "assets.get",
            "assets.listAssets",
            "assets.create",
            "assets.delete",
            "assets.patch",
            "assets.move",
            "assets.copy",
            "assets.getIamPolicy",
            "assets.setIamPolicy",
            "assets.getPixels",
            "assets.listFeatures",
            "assets.search",
            "value.compute",
            "image.computePixels",
            "image.export",
            "image.import",
            "image.importExternal",
            "imageCollection.computeImages",
            "table.computeFeatures",
            "table.export",
            "table.import",
            "video.export",
            "map.export",
            "videoMap.export",
            "classifier.export",
            "maps.create",
            "maps.tiles.get",
            "thumbnails.create",
            "thumbnails.getPixels",
            "videoThumbnails.create",
            "filmstripThumbnails.create",
            "tables.create",
            "featureView.create",
            "operations.get",
            "operations.list",
            "operations.cancel",
        ] {
            let mut node = projects;
            let parts: Vec<&str> = id.split('.').collect();
            for resource in &parts[..parts.len() - 1] {
                node = &node["resources"][resource];
            }
            let method = &node["methods"][parts[parts.len() - 1]];
            assert_eq!(method["id"], format!("earthengine.projects.{id}"), "{id}");
        }
        let search = &projects["resources"]["assets"]["methods"]["search"];
        assert_eq!(
            (&search["httpMethod"], &search["path"]),
            (&json!("GET"), &json!("v1/{+project}/assets:search"))
        );
        assert_eq!(
            search["parameters"]["project"]["pattern"],
            "^projects/[^/]+$"
        );
        assert_eq!(search["parameters"]["query"]["location"], "query");
        let list = &projects["resources"]["assets"]["methods"]["listAssets"];
        assert_eq!(list["response"]["$ref"], "ListAssetsResponse");
        assert!(doc["schemas"]["ListAssetsResponse"]["properties"]["nextPageToken"].is_object());
    }
}

async fn call(s: &TestServer, method: &str, path: &str, body: Value) -> (u16, Value) {
    s.request(method, path, Some(&body.to_string())).await
}

fn reason(error: &Value) -> &str {
    error["error"]["details"][0]["reason"]
        .as_str()
        .unwrap_or_default()
}

#[tokio::test]
async fn the_asset_registry_keeps_earth_engines_rules() {
    let s = TestServer::start().await;
    let folder = json!({"type": "FOLDER"});
    let (status, made) = call(
        &s,
        "POST",
        "/v1/projects/p/assets?assetId=f",
        folder.clone(),
    )
    .await;
    assert_eq!(status, 200, "{made}");
    assert_eq!(
        (made["type"].as_str(), made["name"].as_str()),
        (Some("FOLDER"), Some("projects/p/assets/f"))
    );
    assert!(made["updateTime"].as_str().unwrap().ends_with('Z'));
    let (status, error) = call(
        &s,
        "POST",
        "/v1/projects/p/assets?assetId=f",
        folder.clone(),
    )
    .await;
    assert_eq!((status, reason(&error)), (409, "ASSET_EXISTS"));
    assert_eq!(
        error["error"]["message"],
        "Cannot overwrite asset 'projects/p/assets/f'."
    );
    let (status, error) = call(
        &s,
        "POST",
        "/v1/projects/p/assets?assetId=none/x",
        folder.clone(),
    )
    .await;
    assert_eq!((status, reason(&error)), (404, "PARENT_NOT_FOUND"));
    let collection = json!({"type": "IMAGE_COLLECTION", "properties": {"k": "v"}});
    let (status, _) = call(&s, "POST", "/v1/projects/p/assets?assetId=f/c", collection).await;
    assert_eq!(status, 200);
    let (status, error) = call(
        &s,
        "POST",
        "/v1/projects/p/assets?assetId=f/c/sub",
        folder.clone(),
    )
    .await;
    assert_eq!((status, reason(&error)), (400, "INVALID_PARENT"));
    for (path, body, want) in [
        (
            "/v1/projects/p/assets?assetId=f/img",
            json!({"type": "IMAGE"}),
            "UNSUPPORTED_ASSET_TYPE",
        ),
        ("/v1/projects/p/assets", folder.clone(), "MISSING_ASSET_ID"),
        (
            "/v1/projects/p/assets?assetId=f/../x",
            folder.clone(),
            "INVALID_ASSET_NAME",
        ),
        (
            "/v1/projects/p/assets?assetId=f//x",
            folder.clone(),
            "INVALID_ASSET_NAME",
        ),
    ] {
        let (status, error) = call(&s, "POST", path, body).await;
        assert_eq!((status, reason(&error)), (400, want), "{path}");
    }
    let (status, error) = s.request("GET", "/v1/projects/p/assets/f/..", None).await;
    assert_eq!((status, reason(&error)), (400, "INVALID_ASSET_NAME"));
    let (status, error) = s
        .request("GET", "/v1/projects/p/assets/nothing", None)
        .await;
    assert_eq!((status, reason(&error)), (404, "ASSET_NOT_FOUND"));

    // Pages in name order; the token continues after the last name.
    for id in ["f/d", "f/b", "f/a"] {
        call(
            &s,
            "POST",
            &format!("/v1/projects/p/assets?assetId={id}"),
            folder.clone(),
        )
        .await;
    }
    let mut names = Vec::new();
    let mut token = String::new();
    loop {
        let path =
            format!("/v1/projects/p/assets/f:listAssets?pageSize=2&pageToken={token}&view=BASIC");
        let (status, page) = s.request("GET", &path, None).await;
        assert_eq!(status, 200, "{page}");
        let assets = page["assets"].as_array().unwrap();
        assert!(assets.len() <= 2);
        names.extend(
            assets
                .iter()
                .map(|a| a["name"].as_str().unwrap().to_string()),
        );
        match page["nextPageToken"].as_str() {
            Some(t) => token = t.to_string(),
            None => break,
        }
    }
    assert_eq!(
        names,
        [
            "projects/p/assets/f/a",
            "projects/p/assets/f/b",
            "projects/p/assets/f/c",
            "projects/p/assets/f/d"
        ]
    );
    let (_, top) = s.request("GET", "/v1/projects/p:listAssets", None).await;
    assert_eq!(top["assets"][0]["name"], "projects/p/assets/f");
    let (status, error) = s
        .request(
            "GET",
            "/v1/projects/p/assets/f:listAssets?pageToken=projects/q/assets/x",
            None,
        )
        .await;
    assert_eq!((status, reason(&error)), (400, "INVALID_PAGE_TOKEN"));
    let (status, error) = s
        .request(
            "GET",
            "/v1/projects/p/assets/f:listAssets?filter=x%3D1",
            None,
        )
        .await;
    assert_eq!((status, reason(&error)), (400, "NOT_EMULATED"));

    // Properties: one replaced, one removed, one added.
    let patch = json!({"asset": {"properties": {"n": 2}}, "updateMask": {"paths": ["properties.n", "properties.\"k\""]}});
    let (status, patched) = call(&s, "PATCH", "/v1/projects/p/assets/f/c", patch).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["properties"], json!({"n": 2}));
    let (status, error) = call(
        &s,
        "PATCH",
        "/v1/projects/p/assets/f/c",
        json!({"updateMask": {"paths": ["type"]}}),
    )
    .await;
    assert_eq!((status, reason(&error)), (400, "INVALID_UPDATE_MASK"));

    // Move takes the contents along; copy takes one asset; delete only when empty.
    let (status, error) = s.request("DELETE", "/v1/projects/p/assets/f", None).await;
    assert_eq!((status, reason(&error)), (400, "ASSET_NOT_EMPTY"));
    let (status, moved) = call(
        &s,
        "POST",
        "/v1/projects/p/assets/f:move",
        json!({"destinationName": "projects/p/assets/g"}),
    )
    .await;
    assert_eq!(status, 200, "{moved}");
    let (status, _) = s.request("GET", "/v1/projects/p/assets/g/c", None).await;
    assert_eq!(status, 200);
    let (status, error) = call(
        &s,
        "POST",
        "/v1/projects/p/assets/g:move",
        json!({"destinationName": "projects/p/assets/g/a/x"}),
    )
    .await;
    assert_eq!((status, reason(&error)), (400, "INVALID_DESTINATION"));
    let (status, copy) = call(
        &s,
        "POST",
        "/v1/projects/p/assets/g/c:copy",
        json!({"destinationName": "projects/p/assets/g/c2"}),
    )
    .await;
    assert_eq!((status, copy["properties"].clone()), (200, json!({"n": 2})));
    let (status, error) = call(
        &s,
        "POST",
        "/v1/projects/p/assets/g:copy",
        json!({"destinationName": "projects/p/assets/h"}),
    )
    .await;
    assert_eq!((status, reason(&error)), (400, "NOT_EMULATED"));
    let (status, error) = call(
        &s,
        "POST",
        "/v1/projects/p/assets/g/c:copy",
        json!({"destinationName": "projects/p/assets/g/c2"}),
    )
    .await;
    assert_eq!((status, reason(&error)), (409, "ASSET_EXISTS"));
    let (status, _) = call(
        &s,
        "POST",
        "/v1/projects/p/assets/g/c:copy",
        json!({"destinationName": "projects/p/assets/g/c2", "overwrite": true}),
    )
    .await;
    assert_eq!(status, 200);
    for id in ["g/a", "g/b", "g/c", "g/c2", "g/d", "g"] {
        let (status, body) = s
            .request("DELETE", &format!("/v1/projects/p/assets/{id}"), None)
            .await;
        assert_eq!((status, body), (200, json!({})), "{id}");
    }
    let (_, top) = s.request("GET", "/v1/projects/p:listAssets", None).await;
    assert_eq!(top, json!({"assets": []}));
}

#[tokio::test]
async fn request_faults_fail_and_delay_what_they_match() {
    let s = TestServer::with(|c| {
        c.api_faults = vec![
            ApiFault {
                method: "operations.get".into(),
                project: "p".into(),
                status: Some(429),
                rate: 1.0,
                latency: None,
            },
            ApiFault {
                method: "assets.*".into(),
                project: "*".into(),
                status: Some(503),
                rate: 1.0,
                latency: Some(Duration::from_millis(200)),
            },
        ];
    })
    .await;
    let (status, error) = s.request("GET", "/v1/projects/p/operations/x", None).await;
    assert_eq!(
        (status, error["error"]["status"].as_str(), reason(&error)),
        (429, Some("RESOURCE_EXHAUSTED"), "SIMULATED_RATE_LIMIT")
    );
    // Another project, another method: untouched.
    let (status, _) = s.request("GET", "/v1/projects/q/operations/x", None).await;
    assert_eq!(status, 404);
    let started = Instant::now();
    let (status, error) = s.request("GET", "/v1/projects/q/assets/a", None).await;
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!((status, reason(&error)), (503, "SIMULATED_UNAVAILABLE"));
}

async fn simulated(faults: Vec<TaskFault>) -> TestServer {
    TestServer::with(|c| {
        for t in ["EXPORT_IMAGE", "EXPORT_FEATURES", "INGEST_TABLE"] {
            c.task_types.push(TaskType {
                executor: Executor::Simulate,
                duration: Some(Duration::from_millis(150)),
                ..TaskType::new(t)
            });
        }
        c.task_faults = faults;
    })
    .await
}

async fn finished(s: &TestServer, name: &str) -> Value {
    let (status, op) = s
        .request(
            "POST",
            &format!("/v1/{name}:wait"),
            Some(r#"{"timeout": "20s"}"#),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(op["done"], true, "{op}");
    op
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_tasks_report_destinations_usage_and_make_their_assets() {
    let s = simulated(vec![]).await;
    call(
        &s,
        "POST",
        "/v1/projects/p/assets?assetId=out",
        json!({"type": "FOLDER"}),
    )
    .await;
    let exports = [
        (
            "image:export",
            json!({"description": "d", "fileExportOptions": {"driveDestination": {"folder": "f", "filenamePrefix": "x"}}}),
            "https://drive.google.com/#folders/f/x",
        ),
        (
            "image:export",
            json!({"description": "g", "fileExportOptions": {"cloudStorageDestination": {"bucket": "b", "filenamePrefix": "p/q"}}}),
            "https://console.developers.google.com/storage/browser/b/p/q",
        ),
        (
            "image:export",
            json!({"description": "a", "assetExportOptions": {"earthEngineDestination": {"name": "projects/p/assets/out/img"}}}),
            "https://code.earthengine.google.com/?asset=projects/p/assets/out/img",
        ),
        (
            "table:export",
            json!({"description": "bq", "bigqueryExportOptions": {"bigqueryDestination": {"table": "pr.ds.t"}}}),
            "https://console.cloud.google.com/bigquery?p=pr&d=ds&t=t&page=table",
        ),
        (
            "table:import",
            json!({"tableManifest": {"name": "projects/p/assets/out/t", "properties": {"s": 1}, "start_time": "2024-01-01T00:00:00Z"}}),
            "https://code.earthengine.google.com/?asset=projects/p/assets/out/t",
        ),
    ];
    for (path, body, uri) in exports {
        let (status, op) = call(&s, "POST", &format!("/v1/projects/p/{path}"), body).await;
        assert_eq!(status, 200, "{op}");
        let op = finished(&s, op["name"].as_str().unwrap()).await;
        assert_eq!(op["metadata"]["state"], "SUCCEEDED", "{op}");
        assert_eq!(op["metadata"]["destinationUris"], json!([uri]));
        assert!(op["metadata"]["batchEecuUsageSeconds"].as_f64().unwrap() > 0.0);
    }
    let (_, image) = s
        .request("GET", "/v1/projects/p/assets/out/img", None)
        .await;
    assert_eq!(image["type"], "IMAGE");
    let (_, table) = s.request("GET", "/v1/projects/p/assets/out/t", None).await;
    assert_eq!(
        (table["type"].clone(), table["properties"].clone()),
        (json!("TABLE"), json!({"s": 1}))
    );
    assert_eq!(table["startTime"], "2024-01-01T00:00:00Z");
    // The asset exists now: the same export again fails as Earth Engine's does.
    let again = json!({"description": "a2", "assetExportOptions": {"earthEngineDestination": {"name": "projects/p/assets/out/img"}}});
    let (_, op) = call(&s, "POST", "/v1/projects/p/image:export", again).await;
    let op = finished(&s, op["name"].as_str().unwrap()).await;
    assert_eq!(op["error"]["code"], 6, "{op}");
    assert_eq!(
        op["error"]["message"],
        "Cannot overwrite asset 'projects/p/assets/out/img'."
    );
    let into_nothing = json!({"description": "n", "assetExportOptions": {"earthEngineDestination": {"name": "projects/p/assets/none/img"}}});
    let (_, op) = call(&s, "POST", "/v1/projects/p/image:export", into_nothing).await;
    let op = finished(&s, op["name"].as_str().unwrap()).await;
    assert_eq!(op["error"]["code"], 5, "{op}");
}

/// Leaf assets (images, tables) carry `sizeBytes`, an int64 as a JSON string, as Google's
/// do, in `getAsset` and in `listAssets`, and a copy keeps it; folders and image
/// collections carry none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaf_assets_carry_their_size_in_bytes() {
    let s = simulated(vec![]).await;
    for (id, kind) in [("out", "FOLDER"), ("out/c", "IMAGE_COLLECTION")] {
        let (status, made) = call(
            &s,
            "POST",
            &format!("/v1/projects/p/assets?assetId={id}"),
            json!({"type": kind}),
        )
        .await;
        assert_eq!(status, 200, "{made}");
    }
    for (path, body) in [
        (
            "image:export",
            json!({"description": "i", "assetExportOptions": {"earthEngineDestination": {"name": "projects/p/assets/out/img"}}}),
        ),
        (
            "table:import",
            json!({"tableManifest": {"name": "projects/p/assets/out/t"}}),
        ),
    ] {
        let (status, op) = call(&s, "POST", &format!("/v1/projects/p/{path}"), body).await;
        assert_eq!(status, 200, "{op}");
        let op = finished(&s, op["name"].as_str().unwrap()).await;
        assert_eq!(op["metadata"]["state"], "SUCCEEDED", "{op}");
    }
    let size = |asset: &Value| -> u64 {
        let text = asset["sizeBytes"]
            .as_str()
            .unwrap_or_else(|| panic!("sizeBytes as a string: {asset}"));
        text.parse().unwrap()
    };
    let mut sizes = Vec::new();
    for id in ["out/img", "out/t"] {
        let (status, asset) = s
            .request("GET", &format!("/v1/projects/p/assets/{id}"), None)
            .await;
        assert_eq!(status, 200, "{asset}");
        assert!(size(&asset) > 0, "{asset}");
        sizes.push(size(&asset));
    }
    for id in ["out", "out/c"] {
        let (_, asset) = s
            .request("GET", &format!("/v1/projects/p/assets/{id}"), None)
            .await;
        assert!(asset.get("sizeBytes").is_none(), "{asset}");
    }
    let (_, listing) = s
        .request("GET", "/v1/projects/p/assets/out:listAssets", None)
        .await;
    let listed: Vec<(String, Option<u64>)> = listing["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_string(),
                a.get("sizeBytes").map(|_| size(a)),
            )
        })
        .collect();
    assert_eq!(
        listed,
        vec![
            ("projects/p/assets/out/c".into(), None),
            ("projects/p/assets/out/img".into(), Some(sizes[0])),
            ("projects/p/assets/out/t".into(), Some(sizes[1])),
        ]
    );
    let (status, copy) = call(
        &s,
        "POST",
        "/v1/projects/p/assets/out/img:copy",
        json!({"destinationName": "projects/p/assets/out/img2"}),
    )
    .await;
    assert_eq!(status, 200, "{copy}");
    assert_eq!(size(&copy), sizes[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_faults_pick_fates_by_description() {
    let rule = |description: &str| TaskFault {
        project: "*".into(),
        op_type: "EXPORT_*".into(),
        description: description.into(),
        outcome: None,
        error_code: None,
        error_message: None,
        transient_failures: 0,
        duration: None,
        ignore_cancel: false,
        probability: 1.0,
    };
    let s = simulated(vec![
        TaskFault {
            outcome: Some("FAILED".into()),
            error_code: Some(9),
            error_message: Some("no quota".into()),
            ..rule("*fail*")
        },
        TaskFault {
            transient_failures: 2,
            ..rule("*flaky*")
        },
        TaskFault {
            outcome: Some("FAILED".into()),
            probability: 0.0,
            ..rule("*")
        },
    ])
    .await;
    let start = |description: &str| {
        let body =
            json!({"description": description, "fileExportOptions": {"driveDestination": {}}});
        let s = &s;
        async move {
            let (_, op) = call(s, "POST", "/v1/projects/p/table:export", body).await;
            finished(s, op["name"].as_str().unwrap()).await
        }
    };
    let op = start("will fail").await;
    assert_eq!(
        (op["error"]["code"].clone(), op["error"]["message"].clone()),
        (json!(9), json!("no quota"))
    );
    assert!(op["metadata"].get("destinationUris").is_none(), "{op}");
    let op = start("flaky").await;
    assert_eq!(
        (
            op["metadata"]["state"].clone(),
            op["metadata"]["attempt"].clone()
        ),
        (json!("SUCCEEDED"), json!(3))
    );
    // A rule of probability 0 takes nothing.
    let op = start("plain").await;
    assert_eq!(
        (
            op["metadata"]["state"].clone(),
            op["metadata"]["attempt"].clone()
        ),
        (json!("SUCCEEDED"), json!(1))
    );
}

#[tokio::test]
async fn the_algorithm_list_comes_from_the_configured_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("algorithms.json");
    let list = json!({"algorithms": [{"name": "algorithms/Only", "arguments": []}]});
    std::fs::write(&path, list.to_string()).unwrap();
    let s = TestServer::with(|c| c.earthengine.algorithms_file = Some(path.clone())).await;
    let (status, body) = s.request("GET", "/v1/projects/p/algorithms", None).await;
    assert_eq!((status, body), (200, list));
}
