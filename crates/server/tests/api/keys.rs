//! Concurrency keys (docs/projects.md#concurrency-keys): a submit's `concurrencyKey` and a task
//! type's `key_concurrency`, black-box over REST with real workers, on SQLite and on several
//! servers sharing PostgreSQL.

use crate::common::{TestServer, envelope};
use longrun_server::config::TaskType;
use longrun_testkit::postgres::Schema;
use longrun_worker::{HttpBackend, Worker};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The type the tests limit: at most 2 per (project, key).
const KEYED: &str = "KEYED";

fn keyed_type(c: &mut longrun_server::Config) {
    c.task_types.push(TaskType {
        key_concurrency: 2,
        ..TaskType::new(KEYED)
    });
}

/// Operations running at once per (project, key) as the workers see them, and the most
/// ever seen.
#[derive(Default)]
struct Running {
    now: HashMap<String, usize>,
    most: HashMap<String, usize>,
}

/// Real workers over REST, one per server, each with 16 slots, running every `KEYED`
/// operation for 100 ms and counting how many of each (project, key) run at once. A lease
/// waits 30 s for work, so only a wake-up (not the next poll) starts the next of a key in
/// time.
fn workers(
    servers: &[&TestServer],
    running: Arc<Mutex<Running>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    servers
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let running = running.clone();
            let worker = Worker::new(&format!("keys-{i}"))
                .concurrency(16)
                .lease_poll(Duration::from_secs(30))
                .shutdown_grace(Duration::ZERO)
                .handle(KEYED, move |ctx| {
                    let running = running.clone();
                    async move {
                        let group = format!(
                            "{}/{}",
                            ctx.name().project(),
                            ctx.concurrency_key().unwrap_or_default()
                        );
                        assert_eq!(ctx.payload()["group"], group.as_str());
                        {
                            let mut r = running.lock().unwrap();
                            let now = r.now.entry(group.clone()).or_default();
                            *now += 1;
                            let now = *now;
                            let most = r.most.entry(group.clone()).or_default();
                            *most = (*most).max(now);
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        *running.lock().unwrap().now.get_mut(&group).unwrap() -= 1;
                        Ok(json!({}))
                    }
                });
            let backend = Arc::new(HttpBackend::new(&s.base));
            tokio::spawn(worker.run(backend, std::future::pending()))
        })
        .collect()
}

/// Submits (spread over `servers`) 6 operations of key `a` and of key `b` in project `p`,
/// 4 without a key, and 4 of key `a` in project `q`; runs them with real workers; checks
/// that no key ever ran more than 2 at once while unkeyed work ran wider, that every
/// operation succeeded, and returns how long the run took.
async fn run_keyed_work(servers: &[&TestServer]) -> Duration {
    let mut names = Vec::new();
    let mut n = 0;
    let mut submit = async |project: &str, key: Option<&str>| {
        let group = format!("{project}/{}", key.unwrap_or(""));
        let mut body =
            json!({"type": KEYED, "operationId": format!("o{n}"), "payload": {"group": group}});
        if let Some(key) = key {
            body["concurrencyKey"] = json!(key);
        }
        let op = servers[n % servers.len()].submit(project, body).await;
        n += 1;
        assert_eq!(op["metadata"]["concurrencyKey"], json!(key), "{op}");
        names.push(op["name"].as_str().unwrap().to_string());
    };
    for _ in 0..6 {
        submit("p", Some("a")).await;
        submit("p", Some("b")).await;
    }
    for _ in 0..4 {
        submit("p", None).await;
        submit("q", Some("a")).await;
    }
    let running = Arc::new(Mutex::new(Running::default()));
    let started = Instant::now();
    let handles = workers(servers, running.clone());
    for name in &names {
        let op = servers[0]
            .client
            .wait(
                &longrun_types::Name::parse(name).unwrap(),
                Some(Duration::from_secs(60)),
            )
            .await
            .unwrap();
        assert_eq!(op["metadata"]["state"], "SUCCEEDED", "{op}");
    }
    let took = started.elapsed();
    eprintln!("keyed work on {} server(s) took {took:?}", servers.len());
    // Every operation is done: the workers' waiting leases can be dropped.
    for handle in handles {
        handle.abort();
    }
    let most = running.lock().unwrap().most.clone();
    for group in ["p/a", "p/b", "q/a"] {
        assert_eq!(most.get(group), Some(&2), "{group}: {most:?}");
    }
    // Unkeyed work is not limited by the key limit (4 of them, 16 slots: one lease takes them all).
    assert!(most["p/"] > 2, "{most:?}");
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_concurrency_holds_each_key_with_real_workers() {
    let s = TestServer::with(keyed_type).await;
    let took = run_keyed_work(&[&s]).await;
    // 3 rounds of each key at 2 at a time, 100 ms each: a freed place wakes the
    // waiting leases at once, well before their 30 s poll.
    assert!(took < Duration::from_secs(10), "{took:?}");
    // The key is read back and filtered on.
    let page = s
        .client
        .list("p", "metadata.concurrencyKey = a", 100, "")
        .await
        .unwrap();
    assert_eq!(page["operations"].as_array().unwrap().len(), 6);
    let page = s
        .client
        .list("p", "NOT metadata.concurrencyKey:*", 100, "")
        .await
        .unwrap();
    assert_eq!(page["operations"].as_array().unwrap().len(), 4);
    s.stop().await;
}

#[tokio::test]
async fn concurrency_key_is_validated_like_other_ids() {
    let s = TestServer::with(keyed_type).await;
    let path = "/v1/projects/p/operations:submit";
    let bad = |key: Value| json!({"type": KEYED, "concurrencyKey": key}).to_string();
    let (status, body) = s.request("POST", path, Some(&bad(json!("")))).await;
    assert_eq!(
        (status, body),
        (
            400,
            envelope(
                400,
                "INVALID_ARGUMENT",
                "INVALID_SUBMISSION",
                "concurrencyKey must be 1 to 256 bytes",
                json!({})
            )
        )
    );
    let (status, body) = s
        .request("POST", path, Some(&bad(json!("k".repeat(257)))))
        .await;
    assert_eq!(
        (status, body),
        (
            400,
            envelope(
                400,
                "INVALID_ARGUMENT",
                "TOO_LONG",
                "concurrencyKey is 257 bytes long; it may be at most 256 bytes",
                json!({"field": "concurrencyKey", "limit": "256"})
            )
        )
    );
    let (status, body) = s.request("POST", path, Some(&bad(json!("a\u{0}b")))).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"]["message"],
        "concurrencyKey contains the character U+0000, which cannot be stored"
    );
    let (status, body) = s.request("POST", path, Some(&bad(json!(7)))).await;
    assert_eq!(status, 400, "{body}");
    // snake_case is accepted too, and the longest key is kept whole.
    let long = "k".repeat(256);
    let body = json!({"type": KEYED, "concurrency_key": long}).to_string();
    let (status, op) = s.request("POST", path, Some(&body)).await;
    assert_eq!(status, 200, "{op}");
    assert_eq!(op["metadata"]["concurrencyKey"], json!(long));
    let (_, got) = s
        .request(
            "GET",
            &format!("/v1/{}", op["name"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(got, op);
    // Nothing refused was created.
    let page = s.client.list("p", "", 100, "").await.unwrap();
    assert_eq!(page["operations"].as_array().unwrap().len(), 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_concurrency_is_exact_across_servers_on_postgres() {
    let Some(schema) = Schema::create("keys").await else {
        return;
    };
    let _turn = crate::postgres::several_servers().await;
    let servers = crate::postgres::three_servers(schema.url(), keyed_type).await;
    for i in 0..30 {
        let key = if i % 2 == 0 { "k" } else { "j" };
        servers[i % 3]
            .submit(
                "p",
                json!({"type": KEYED, "operationId": format!("o{i}"), "concurrencyKey": key}),
            )
            .await;
    }
    let servers = Arc::new(servers);
    let keys = |leased: &[Value]| {
        let mut keys: Vec<String> = leased
            .iter()
            .map(|l| {
                l["operation"]["metadata"]["concurrencyKey"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        keys.sort();
        keys
    };
    // Six takers on three servers lease at once, again and again: 2 of each key, no more.
    let first = crate::postgres::race_leases(servers.clone(), KEYED).await;
    let unique: HashSet<&str> = first
        .iter()
        .map(|l| l["operation"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(unique.len(), first.len());
    assert_eq!(keys(&first), ["j", "j", "k", "k"]);
    // One of k ends, on another server than the one that leased it: exactly one more k.
    let k = first
        .iter()
        .find(|l| l["operation"]["metadata"]["concurrencyKey"] == "k")
        .unwrap();
    servers[1].succeed(k).await;
    assert_eq!(
        keys(&crate::postgres::race_leases(servers.clone(), KEYED).await),
        ["k"]
    );
    let running = schema
        .admin()
        .query_one(
            &format!(
                "SELECT count(*) FROM {}.operations WHERE state = 'RUNNING' \
                 AND concurrency_key = 'k'",
                schema.name()
            ),
            &[],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(running, 2);
    let servers = Arc::try_unwrap(servers).ok().unwrap();
    crate::postgres::finish(schema, servers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_concurrency_holds_with_real_workers_on_several_postgres_servers() {
    let Some(schema) = Schema::create("keywork").await else {
        return;
    };
    let _turn = crate::postgres::several_servers().await;
    let servers = crate::postgres::three_servers(schema.url(), keyed_type).await;
    let took = run_keyed_work(&servers.iter().collect::<Vec<_>>()).await;
    // Another server's end reaches a waiting lease within its one-second re-read.
    assert!(took < Duration::from_secs(30), "{took:?}");
    crate::postgres::finish(schema, servers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_submit_carries_the_key() {
    use longrun_proto::google::earthengine::v1::OperationMetadata;
    use longrun_proto::longrun::v1::SubmitOperationRequest;
    use longrun_proto::longrun::v1::submissions_client::SubmissionsClient;
    use prost::Message;
    let s = TestServer::with(keyed_type).await;
    let channel = tonic::transport::Channel::from_shared(s.base.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut submissions = SubmissionsClient::new(channel);
    let submit = |id: &str, key: &str| SubmitOperationRequest {
        parent: "projects/p".into(),
        r#type: KEYED.into(),
        operation_id: id.into(),
        concurrency_key: key.into(),
        ..Default::default()
    };
    let metadata = |op: &longrun_proto::google::longrunning::Operation| {
        OperationMetadata::decode(op.metadata.as_ref().unwrap().value.as_slice()).unwrap()
    };
    let mut keyed = Vec::new();
    for id in ["g0", "g1", "g2"] {
        let op = submissions
            .submit_operation(submit(id, "k"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(metadata(&op).concurrency_key, "k");
        keyed.push(op.name);
    }
    // An empty key is no key.
    let op = submissions
        .submit_operation(submit("g3", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(metadata(&op).concurrency_key, "");
    let (_, got) = s.request("GET", "/v1/projects/p/operations/g3", None).await;
    assert!(got["metadata"].get("concurrencyKey").is_none(), "{got}");
    // REST reads the key back, and the lease holds it to 2 at once.
    let (_, got) = s.request("GET", &format!("/v1/{}", keyed[0]), None).await;
    assert_eq!(got["metadata"]["concurrencyKey"], "k");
    let mut ids: Vec<String> = s
        .lease_now("w", &[KEYED], 10)
        .await
        .iter()
        .map(|l| l["operation"]["name"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            "projects/p/operations/g0",
            "projects/p/operations/g1",
            "projects/p/operations/g3"
        ]
    );
    // A key with U+0000 is refused with INVALID_ARGUMENT naming the field.
    let refused = submissions
        .submit_operation(submit("g4", "a\0b"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(refused.message().contains("concurrencyKey"), "{refused:?}");
    s.stop().await;
}

/// A PENDING operation whose key is at its limit says so; one of another key does not.
#[tokio::test]
async fn a_key_at_its_limit_says_why_its_work_waits() {
    let s = TestServer::with(keyed_type).await;
    // A key with a filter's special characters is matched exactly, not as a pattern.
    let key = r#"a*"\b"#;
    for id in ["o0", "o1", "o2"] {
        s.submit(
            "p",
            json!({"type": KEYED, "operationId": id, "concurrencyKey": key}),
        )
        .await;
    }
    s.submit(
        "p",
        json!({"type": KEYED, "operationId": "other", "concurrencyKey": "a*x"}),
    )
    .await;
    s.submit(
        "p",
        json!({"type": KEYED, "operationId": "other2", "concurrencyKey": "a*x"}),
    )
    .await;
    let why = async |id: &str| {
        let path = format!("/v1/projects/p/operations/{id}");
        let r = s.client.send(http::Method::GET, &path, None).await.unwrap();
        r.headers
            .get("x-longrun-waiting")
            .map(|v| v.to_str().unwrap().to_string())
    };
    // A lease of one takes o0: the key has a place left, so o2 is not held back.
    let first = s.lease_now("w", &[KEYED], 1).await;
    assert_eq!(first[0]["operation"]["name"], "projects/p/operations/o0");
    assert_eq!(why("o2").await, None);
    // A lease of two takes o1, then passes over o2 to the other key's first.
    let mut second: Vec<Value> = s
        .lease_now("w", &[KEYED], 2)
        .await
        .iter()
        .map(|l| l["operation"]["name"].clone())
        .collect();
    second.sort_by_key(|n| n.to_string());
    assert_eq!(
        second,
        ["projects/p/operations/o1", "projects/p/operations/other"]
    );
    assert_eq!(
        why("o2").await.as_deref(),
        Some(
            r#"concurrencyKey a*"\b of type KEYED in project p is at its limit of 2 running operations (key_concurrency)"#
        )
    );
    // Key a*x has one running and one PENDING, which no limit holds back.
    let pending: Vec<String> = s
        .client
        .list("p", "metadata.state = PENDING", 10, "")
        .await
        .unwrap()["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|op| op["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(pending.len(), 2, "{pending:?}");
    for name in pending {
        let id = name.rsplit('/').next().unwrap().to_string();
        let expect_held = id == "o2";
        assert_eq!(why(&id).await.is_some(), expect_held, "{id}");
    }
    s.stop().await;
}
