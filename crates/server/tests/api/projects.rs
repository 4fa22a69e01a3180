//! Projects (docs/projects.md): the project config over REST, and the export cap it
//! sets, enforced by leases on one server and across servers sharing PostgreSQL; leases
//! taking turns across projects (fair leasing) on both stores.

use crate::common::{TestServer, envelope};
use longrun_testkit::postgres::Schema;
use serde_json::{Value, json};
use std::collections::HashSet;

const CONFIG: &str = "/v1alpha/projects/p/config";

async fn patch(s: &TestServer, query: &str, body: Value) -> (u16, Value) {
    s.request(
        "PATCH",
        &format!("{CONFIG}{query}"),
        Some(&body.to_string()),
    )
    .await
}

#[tokio::test]
async fn config_reads_and_sets_max_concurrent_exports() {
    let s = TestServer::with(|c| c.projects.plan_max_concurrent_exports = 20).await;
    let config = |n: u64| {
        json!({
            "name": "projects/p/config",
            "registrationState": "NOT_REGISTERED",
            "maxConcurrentExports": n,
            "planMaxConcurrentExports": 20,
        })
    };
    // Every field is there, as a number, even when 0; every version serves it.
    for version in ["v1", "v1beta", "v1alpha"] {
        let (status, body) = s
            .request("GET", &format!("/{version}/projects/p/config"), None)
            .await;
        assert_eq!((status, body), (200, config(0)), "{version}");
    }
    let mask = "?updateMask=max_concurrent_exports";
    let (status, body) = patch(&s, mask, json!({"maxConcurrentExports": 7})).await;
    assert_eq!((status, body), (200, config(7)));
    assert_eq!(s.request("GET", CONFIG, None).await, (200, config(7)));
    // int64 as a string (proto3 JSON), the plan maximum itself, and 0 (the plan maximum).
    let (_, body) = patch(&s, mask, json!({"maxConcurrentExports": "20"})).await;
    assert_eq!(body, config(20));
    let (_, body) = patch(&s, mask, json!({"maxConcurrentExports": 0})).await;
    assert_eq!(body, config(0));
    // Other projects are untouched.
    let (_, other) = s.request("GET", "/v1/projects/q/config", None).await;
    assert_eq!(other["maxConcurrentExports"], 0);

    let bad_value = |message: &str| {
        envelope(
            400,
            "INVALID_ARGUMENT",
            "INVALID_MAX_CONCURRENT_EXPORTS",
            message,
            json!({"field": "maxConcurrentExports"}),
        )
    };
    let bad_mask = |message: &str| {
        envelope(
            400,
            "INVALID_ARGUMENT",
            "INVALID_UPDATE_MASK",
            message,
            json!({"field": "updateMask"}),
        )
    };
    for (query, body, want) in [
        (
            mask,
            json!({"maxConcurrentExports": 21}),
            bad_value("maxConcurrentExports 21 is above the plan maximum 20"),
        ),
        (
            mask,
            json!({"maxConcurrentExports": -1}),
            bad_value("maxConcurrentExports must be >= 0, not -1"),
        ),
        (
            mask,
            json!({"maxConcurrentExports": 2.5}),
            bad_value("maxConcurrentExports must be an integer, not 2.5"),
        ),
        (
            "",
            json!({"maxConcurrentExports": 2}),
            bad_mask("updateMask is required: updateMask=max_concurrent_exports"),
        ),
        (
            "?updateMask=registration_state",
            json!({"maxConcurrentExports": 2}),
            bad_mask(
                "updateMask names `registration_state`; only max_concurrent_exports can be updated",
            ),
        ),
    ] {
        assert_eq!(patch(&s, query, body).await, (400, want), "{query}");
    }
    let (status, body) = patch(&s, mask, json!({"maxConcurrentExports": 2, "x": 1})).await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = s.request("POST", CONFIG, Some("{}")).await;
    assert_eq!(status, 405);
    // Nothing refused changed the stored value.
    assert_eq!(s.request("GET", CONFIG, None).await, (200, config(0)));
}

#[tokio::test]
async fn leases_keep_each_project_within_its_export_cap() {
    let s = TestServer::with(|c| c.projects.plan_max_concurrent_exports = 3).await;
    for i in 0..5 {
        s.submit(
            "p",
            json!({"type": "EXPORT_IMAGE", "operationId": format!("e{i}")}),
        )
        .await;
        s.submit(
            "q",
            json!({"type": "EXPORT_TABLE", "operationId": format!("e{i}")}),
        )
        .await;
    }
    s.submit("p", json!({"type": "INGEST_IMAGE", "operationId": "in"}))
        .await;
    let (status, _) = patch(
        &s,
        "?updateMask=max_concurrent_exports",
        json!({"maxConcurrentExports": 2}),
    )
    .await;
    assert_eq!(status, 200);
    let types = ["EXPORT_IMAGE", "EXPORT_TABLE", "INGEST_IMAGE"];
    let first = s.lease_now("w", &types, 100).await;
    let mut names: Vec<&str> = first
        .iter()
        .map(|l| l["operation"]["name"].as_str().unwrap())
        .collect();
    names.sort();
    // p: its own 2 exports, and its ingest (no export); q: the plan's 3.
    assert_eq!(
        names,
        [
            "projects/p/operations/e0",
            "projects/p/operations/e1",
            "projects/p/operations/in",
            "projects/q/operations/e0",
            "projects/q/operations/e1",
            "projects/q/operations/e2",
        ]
    );
    assert!(s.lease_now("w", &types, 100).await.is_empty());
    // A CANCELLING export still holds its place; one that ends frees it.
    let (status, _) = s
        .request("POST", "/v1/projects/p/operations/e0:cancel", Some("{}"))
        .await;
    assert_eq!(status, 200);
    assert!(s.lease_now("w", &types, 100).await.is_empty());
    let e1 = first
        .iter()
        .find(|l| l["operation"]["name"] == "projects/p/operations/e1")
        .unwrap();
    s.succeed(e1).await;
    let next = s.lease_now("w", &types, 100).await;
    assert_eq!(next.len(), 1);
    assert_eq!(next[0]["operation"]["name"], "projects/p/operations/e2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_cap_is_exact_across_servers_on_postgres() {
    let Some(schema) = Schema::create("exports").await else {
        return;
    };
    let _turn = crate::postgres::several_servers().await;
    let servers = crate::postgres::three_servers(schema.url(), |_| {}).await;
    for i in 0..40 {
        servers[i % 3]
            .submit(
                "p",
                json!({"type": "EXPORT_IMAGE", "operationId": format!("e{i}")}),
            )
            .await;
    }
    let (status, _) = patch(
        &servers[0],
        "?updateMask=max_concurrent_exports",
        json!({"maxConcurrentExports": 5}),
    )
    .await;
    assert_eq!(status, 200);
    let servers = std::sync::Arc::new(servers);
    // Six workers on three servers lease at once, again and again: five run, no more.
    let first = crate::postgres::race_leases(servers.clone(), "EXPORT_IMAGE").await;
    let unique: HashSet<&str> = first
        .iter()
        .map(|l| l["operation"]["name"].as_str().unwrap())
        .collect();
    assert_eq!((first.len(), unique.len()), (5, 5));
    // Two end (on another server than the one that leased them): exactly two more start.
    servers[1].succeed(&first[0]).await;
    servers[2].succeed(&first[1]).await;
    assert_eq!(
        crate::postgres::race_leases(servers.clone(), "EXPORT_IMAGE")
            .await
            .len(),
        2
    );
    let running = schema
        .admin()
        .query_one(
            &format!(
                "SELECT count(*) FROM {}.operations WHERE state = 'RUNNING'",
                schema.name()
            ),
            &[],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(running, 5);
    let servers = std::sync::Arc::try_unwrap(servers).ok().unwrap();
    crate::postgres::finish(schema, servers).await;
}

/// A queues a backlog, then B, C and D submit one each: each starts within one round.
async fn fair_round(s: &TestServer) {
    for i in 0..30 {
        s.submit(
            "fa",
            json!({"type": "FAIR", "operationId": format!("a{i:02}")}),
        )
        .await;
    }
    for p in ["fb", "fc", "fd"] {
        s.submit(p, json!({"type": "FAIR", "operationId": "x"}))
            .await;
    }
    let mut order = Vec::new();
    for _ in 0..5 {
        for l in s.lease_now("w", &["FAIR"], 1).await {
            order.push(l["operation"]["name"].as_str().unwrap().to_string());
        }
    }
    let position = |p: &str| {
        order
            .iter()
            .position(|n| n == &format!("projects/{p}/operations/x"))
            .unwrap_or(usize::MAX)
    };
    for p in ["fb", "fc", "fd"] {
        assert!(position(p) < 4, "{p} waited: {order:?}");
    }
    assert_eq!(
        order
            .iter()
            .filter(|n| n.starts_with("projects/fa/"))
            .count(),
        2,
        "{order:?}"
    );
}

#[tokio::test]
async fn leases_take_turns_across_projects() {
    fair_round(&TestServer::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_take_turns_across_projects_on_postgres() {
    let Some(schema) = Schema::create("fair").await else {
        return;
    };
    let s = crate::postgres::server_on(schema.url()).await;
    fair_round(&s).await;
    crate::postgres::finish(schema, [s]).await;
}
