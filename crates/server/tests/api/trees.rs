//! Parents and children (docs/operations.md#parents-and-children): `parent` on submit and
//! `metadata.parent`; a child waits (`PARENT`) while its parent is not RUNNING; depth at
//! most 8; a parent that ends or is cancelled cancels every descendant that is not done; a
//! cancelled parent stays CANCELLING until the last descendant is done and then says how
//! many the cascade cancelled; no child under a CANCELLING or done parent; no delete of a
//! parent with children not done. On SQLite and PostgreSQL (one server and three).

use crate::common::TestServer;
use longrun_testkit::postgres::Schema;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const P: &str = "projects/p/operations/";

async fn get(s: &TestServer, id: &str) -> Value {
    let (status, op) = s.request("GET", &format!("/v1/{P}{id}"), None).await;
    assert_eq!(status, 200, "{op}");
    op
}

fn state(op: &Value) -> &str {
    op["metadata"]["state"].as_str().unwrap()
}

async fn submit_under(s: &TestServer, t: &str, id: &str, parent: &str) -> (u16, Value) {
    let body = json!({"type": t, "operationId": id, "parent": format!("{P}{parent}")});
    s.request(
        "POST",
        "/v1/projects/p/operations:submit",
        Some(&body.to_string()),
    )
    .await
}

async fn cancel(s: &TestServer, id: &str) {
    let (status, answer) = s
        .request("POST", &format!("/v1/{P}{id}:cancel"), Some("{}"))
        .await;
    assert_eq!(status, 200, "{answer}");
}

/// Completes a lease with code 1: the worker stopped on the cancel.
async fn acknowledge_cancel(s: &TestServer, leased: &Value) {
    let name = leased["operation"]["name"].as_str().unwrap();
    let body = json!({"leaseId": leased["leaseId"], "error": {"code": 1, "message": "stopped"}});
    let (status, op) = s
        .request(
            "POST",
            &format!("/v1/{name}:complete"),
            Some(&body.to_string()),
        )
        .await;
    assert_eq!(status, 200, "{op}");
}

/// Waits until `id` is in `want`.
async fn wait_state(s: &TestServer, id: &str, want: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let op = get(s, id).await;
        if state(&op) == want {
            return op;
        }
        assert!(Instant::now() < deadline, "{id} never {want}: {op}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn cancelled_descendants(op: &Value) -> Value {
    op["error"]["details"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["reason"] == "CHILDREN_CANCELLED"))
        .map_or(Value::Null, |d| {
            d["metadata"]["cancelledDescendants"].clone()
        })
}

async fn count(s: &TestServer, filter: &str) -> usize {
    let page = s.client.list("p", filter, 1000, "").await.unwrap();
    page["operations"].as_array().map_or(0, Vec::len)
}

/// Submit under a parent, waiting, leasing, filters, depth and the refusals.
async fn children_wait_for_their_parent(s: &TestServer) {
    s.submit("p", json!({"type": "ROOT", "operationId": "r"}))
        .await;
    let (status, child) = submit_under(s, "CHILD", "r-a", "r").await;
    assert_eq!(status, 200, "{child}");
    assert_eq!(child["metadata"]["parent"], format!("{P}r"));
    assert_eq!(child["metadata"]["waitingReason"], "PARENT", "{child}");
    // The parent is PENDING: its child is not leased.
    assert!(s.lease_now("w", &["CHILD"], 5).await.is_empty());
    let root = s.lease_now("w", &["ROOT"], 1).await;
    assert_eq!(root.len(), 1);
    let leased = s.lease_now("w", &["CHILD"], 5).await;
    assert_eq!(leased.len(), 1, "a RUNNING parent's child is leased");
    assert_eq!(count(s, &format!("metadata.parent = \"{P}r\"")).await, 1);
    assert_eq!(
        count(s, "metadata.parent = \"\"").await,
        count(s, "NOT metadata.parent:*").await
    );

    // Another project's operation, one that does not exist: refused, nothing written.
    let body = json!({"type": "CHILD", "parent": "projects/q/operations/x"});
    let (status, answer) = s
        .request(
            "POST",
            "/v1/projects/p/operations:submit",
            Some(&body.to_string()),
        )
        .await;
    assert_eq!(
        (status, &answer["error"]["status"]),
        (400, &json!("FAILED_PRECONDITION")),
        "{answer}"
    );
    assert_eq!(
        answer["error"]["details"][0]["reason"], "PARENT_OF_ANOTHER_PROJECT",
        "{answer}"
    );
    let (status, answer) = submit_under(s, "CHILD", "orphan", "missing").await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["status"], "FAILED_PRECONDITION");
    assert_eq!(
        answer["error"]["details"][0]["reason"], "PARENT_NOT_OPEN",
        "{answer}"
    );

    // Eight levels, the root counted; a ninth is refused.
    s.submit("p", json!({"type": "DEEP", "operationId": "d1"}))
        .await;
    for level in 2..=8 {
        let (status, answer) =
            submit_under(s, "DEEP", &format!("d{level}"), &format!("d{}", level - 1)).await;
        assert_eq!(status, 200, "level {level}: {answer}");
    }
    let (status, answer) = submit_under(s, "DEEP", "d9", "d8").await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        answer["error"]["details"][0]["reason"], "TREE_TOO_DEEP",
        "{answer}"
    );
    cancel(s, "d1").await;
    let d1 = wait_state(s, "d1", "CANCELLED", Duration::from_secs(10)).await;
    assert_eq!(cancelled_descendants(&d1), "7", "{d1}");
    for level in 2..=8 {
        assert_eq!(state(&get(s, &format!("d{level}")).await), "CANCELLED");
    }
}

/// A RUNNING parent cancelled with a RUNNING and a PENDING child: the PENDING one ends at
/// once, the RUNNING one is told; the parent stays CANCELLING, even after its own worker
/// stops, until the last child is done; then it ends CANCELLED saying 2.
async fn a_cancelled_parent_waits_for_its_children(s: &TestServer) {
    s.submit("p", json!({"type": "JOB", "operationId": "job"}))
        .await;
    let job = s.lease_now("w", &["JOB"], 1).await.remove(0);
    for id in ["job-1", "job-2"] {
        let (status, answer) = submit_under(s, "PART", id, "job").await;
        assert_eq!(status, 200, "{answer}");
    }
    let part = s.lease_now("w", &["PART"], 1).await.remove(0);
    cancel(s, "job").await;
    // No child after the cancel's answer: none submitted, none leased.
    let (status, answer) = submit_under(s, "PART", "job-3", "job").await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["details"][0]["reason"], "PARENT_NOT_OPEN");
    assert!(s.lease_now("w", &["PART"], 5).await.is_empty());
    let pending_child = wait_state(s, "job-2", "CANCELLED", Duration::from_secs(5)).await;
    assert_eq!(pending_child["error"]["code"], 1);
    assert_eq!(
        state(&get(s, &part["operation"]["name"].as_str().unwrap()[P.len()..]).await),
        "CANCELLING"
    );
    acknowledge_cancel(s, &job).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        state(&get(s, "job").await),
        "CANCELLING",
        "a child is still running"
    );
    // Not deletable while not done.
    let (status, _) = s.request("DELETE", &format!("/v1/{P}job"), None).await;
    assert_eq!(status, 400);
    acknowledge_cancel(s, &part).await;
    let job = wait_state(s, "job", "CANCELLED", Duration::from_secs(5)).await;
    assert_eq!(job["error"]["code"], 1, "{job}");
    assert_eq!(cancelled_descendants(&job), "2", "{job}");
    let (status, _) = s.request("DELETE", &format!("/v1/{P}job"), None).await;
    assert_eq!(status, 200);
}

/// A parent that ends (succeeds or fails) cancels its children; a delete waits for them.
async fn a_parent_that_ends_cancels_its_children(s: &TestServer) {
    for (id, outcome) in [
        ("ok", json!({"response": {}})),
        ("bad", json!({"error": {"code": 3, "message": "no"}})),
    ] {
        s.submit("p", json!({"type": "END", "operationId": id}))
            .await;
        let parent = s.lease_now("w", &["END"], 1).await.remove(0);
        submit_under(s, "ENDPART", &format!("{id}-run"), id).await;
        submit_under(s, "ENDPART", &format!("{id}-wait"), id).await;
        let running = s.lease_now("w", &["ENDPART"], 1).await.remove(0);
        let mut body = outcome.clone();
        body["leaseId"] = parent["leaseId"].clone();
        let (status, done) = s
            .request(
                "POST",
                &format!("/v1/{P}{id}:complete"),
                Some(&body.to_string()),
            )
            .await;
        assert_eq!(status, 200, "{done}");
        wait_state(
            s,
            &format!("{id}-wait"),
            "CANCELLED",
            Duration::from_secs(5),
        )
        .await;
        let run_id = &running["operation"]["name"].as_str().unwrap()[P.len()..];
        wait_state(s, run_id, "CANCELLING", Duration::from_secs(5)).await;
        let (status, answer) = s.request("DELETE", &format!("/v1/{P}{id}"), None).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(
            answer["error"]["details"][0]["reason"], "CHILDREN_NOT_DONE",
            "{answer}"
        );
        acknowledge_cancel(s, &running).await;
        let (status, answer) = s.request("DELETE", &format!("/v1/{P}{id}"), None).await;
        assert_eq!(status, 200, "{answer}");
    }
}

/// A PENDING parent with `n` PENDING children cancelled: CANCELLING, then CANCELLED once
/// the cascade has ended every child, which it counts.
async fn many_pending_children(s: &TestServer, n: usize) {
    s.submit("p", json!({"type": "BIG", "operationId": "big"}))
        .await;
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let requests: Vec<Value> = chunk
            .iter()
            .map(|i| json!({"type": "BIGPART", "operationId": format!("big-{i}"), "parent": format!("{P}big")}))
            .collect();
        let (status, answer) = s
            .request(
                "POST",
                "/v1/projects/p/operations:batchSubmit",
                Some(&json!({"requests": requests}).to_string()),
            )
            .await;
        assert_eq!(status, 200, "{answer}");
    }
    let started = Instant::now();
    cancel(s, "big").await;
    let big = wait_state(s, "big", "CANCELLED", Duration::from_secs(60)).await;
    eprintln!("cascade of {n} PENDING children: {:?}", started.elapsed());
    assert_eq!(cancelled_descendants(&big), n.to_string(), "{big}");
    assert_eq!(
        count(s, "metadata.type = BIGPART AND metadata.state = CANCELLED").await,
        n.min(1000)
    );
    assert_eq!(
        count(
            s,
            "metadata.type = BIGPART AND NOT metadata.state = CANCELLED"
        )
        .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trees_on_sqlite() {
    let s = TestServer::with(|c| c.project_defaults.max_queued = 20_000).await;
    children_wait_for_their_parent(&s).await;
    a_cancelled_parent_waits_for_its_children(&s).await;
    a_parent_that_ends_cancels_its_children(&s).await;
    many_pending_children(&s, 1000).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trees_on_postgres() {
    let Some(schema) = Schema::create("trees").await else {
        return;
    };
    let s = crate::postgres::server_with(schema.url(), |c| c.project_defaults.max_queued = 20_000)
        .await;
    children_wait_for_their_parent(&s).await;
    a_cancelled_parent_waits_for_its_children(&s).await;
    a_parent_that_ends_cancels_its_children(&s).await;
    many_pending_children(&s, 1000).await;
    crate::postgres::finish(schema, [s]).await;
}

/// Submits `ids` as children of `parent` (type `t`) in one batch submit through `s`.
async fn batch_under(s: &TestServer, t: &str, parent: &str, ids: &[String]) {
    let requests: Vec<Value> = ids
        .iter()
        .map(|id| json!({"type": t, "operationId": id, "parent": format!("{P}{parent}")}))
        .collect();
    let (status, answer) = s
        .request(
            "POST",
            "/v1/projects/p/operations:batchSubmit",
            Some(&json!({ "requests": requests }).to_string()),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
}

/// A tree three levels deep spread over three servers sharing PostgreSQL: a root, 10
/// children (8 RUNNING, 2 PENDING) and 100 grandchildren under each (300 RUNNING, 100 of
/// those cancelled by a call, the rest PENDING). The root cancelled through another server:
/// no child is leased or submitted after the answer, on any server; every PENDING
/// descendant ends, every RUNNING one is told; the root stays CANCELLING until the last
/// worker stops, then counts the 910 descendants its cascades cancelled (not the 100
/// cancelled by a call).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_over_three_servers_on_postgres() {
    let Some(schema) = Schema::create("trees3").await else {
        return;
    };
    let _turn = crate::postgres::several_servers().await;
    let servers = crate::postgres::three_servers(schema.url(), |c| {
        c.project_defaults.max_queued = 20_000;
    })
    .await;
    let [a, b, c] = &servers[..] else {
        unreachable!()
    };
    a.submit("p", json!({"type": "ROOT3", "operationId": "root"}))
        .await;
    let root = a.lease_now("w", &["ROOT3"], 1).await.remove(0);
    let mids: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
    batch_under(b, "MID3", "root", &mids).await;
    let mut leased_mids = Vec::new();
    while leased_mids.len() < 8 {
        let want = 8 - leased_mids.len();
        leased_mids.extend(b.lease_now("w", &["MID3"], want).await);
    }
    for mid in &mids {
        let leaves: Vec<String> = (0..100).map(|i| format!("{mid}-{i}")).collect();
        batch_under(c, "LEAF3", mid, &leaves).await;
    }
    let mut leased_leaves = Vec::new();
    while leased_leaves.len() < 300 {
        let got = c.lease_now("w", &["LEAF3"], 100).await;
        assert!(!got.is_empty(), "leaves of running children lease");
        leased_leaves.extend(got);
    }
    leased_leaves.truncate(300);
    for leaf in &leased_leaves[..100] {
        let name = leaf["operation"]["name"].as_str().unwrap();
        let (status, _) = a.request("POST", &format!("/v1/{name}:cancel"), None).await;
        assert_eq!(status, 200);
    }

    cancel(c, "root").await;
    for s in [a, b, c] {
        assert!(s.lease_now("w", &["MID3"], 10).await.is_empty());
        let (status, _) = submit_under(s, "MID3", "late", "root").await;
        assert_eq!(status, 400);
    }
    // Every PENDING descendant ends; the running ones are CANCELLING.
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(a, "metadata.type = LEAF3 AND metadata.state = PENDING").await > 0 {
        assert!(Instant::now() < deadline, "PENDING leaves left");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        count(a, "metadata.type = LEAF3 AND metadata.state = CANCELLED").await,
        700
    );
    assert_eq!(
        count(b, "metadata.type = LEAF3 AND metadata.state = CANCELLING").await,
        300
    );
    // The workers stop, the root's last; it stays CANCELLING until the last leaf stops.
    acknowledge_cancel(a, &root).await;
    for mid in &leased_mids {
        acknowledge_cancel(b, mid).await;
    }
    for (i, leaf) in leased_leaves.iter().enumerate() {
        if i == 299 {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            assert_eq!(state(&get(a, "root").await), "CANCELLING", "a leaf runs on");
        }
        acknowledge_cancel(&servers[i % 3], leaf).await;
    }
    let root = wait_state(b, "root", "CANCELLED", Duration::from_secs(30)).await;
    assert_eq!(cancelled_descendants(&root), "910", "{root}");
    for mid in &mids {
        assert_eq!(state(&get(c, mid).await), "CANCELLED", "{mid}");
    }
    assert_eq!(count(a, "done = false").await, 0);
    crate::postgres::finish(schema, servers).await;
}
