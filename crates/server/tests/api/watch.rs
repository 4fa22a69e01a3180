//! The watch stream (docs/watch.md) over HTTP: snapshot, `synced`, live changes,
//! `deleted`, resuming with `Last-Event-ID`, `reset` for a cursor not recognised, the
//! filter, errors, and a change made through one server reaching a watcher on another
//! that shares its PostgreSQL database.

use crate::common::TestServer;
use crate::postgres::server_on;
use longrun_client::{Event, Watcher};
use longrun_testkit::postgres::Schema;
use serde_json::json;
use std::time::Duration;

async fn next(w: &mut Watcher) -> Event {
    // Generous: on PostgreSQL, other tests' schemas notify on the same channel, and each
    // server reads every operation named (see `changes::feed`).
    tokio::time::timeout(Duration::from_secs(30), w.next())
        .await
        .expect("an event within 30 s")
        .unwrap()
        .expect("the stream stays open")
}

/// Events up to and including `synced`.
async fn until_synced(w: &mut Watcher) -> Vec<Event> {
    let mut events = Vec::new();
    loop {
        let e = next(w).await;
        let done = e.event == "synced";
        events.push(e);
        if done {
            return events;
        }
    }
}

fn summary(events: &[Event]) -> Vec<(String, String, String)> {
    events
        .iter()
        .map(|e| {
            let j = e.json();
            (
                e.event.clone(),
                j["name"].as_str().unwrap_or_default().to_string(),
                j["metadata"]["state"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

fn ev(event: &str, id: &str, state: &str) -> (String, String, String) {
    let name = if id.is_empty() {
        String::new()
    } else {
        format!("projects/p/operations/{id}")
    };
    (event.into(), name, state.into())
}

#[tokio::test]
async fn snapshot_then_every_change_then_deleted() {
    let s = TestServer::start().await;
    s.submit("p", json!({"type": "T", "operationId": "a"}))
        .await;
    s.submit("p", json!({"type": "T", "operationId": "b"}))
        .await;
    s.submit("other", json!({"type": "T", "operationId": "x"}))
        .await;

    let mut w = s.client.watch("p", "", None, "").await.unwrap();
    let snapshot = until_synced(&mut w).await;
    // List order (newest first), then `synced`; the other project is not there.
    assert_eq!(
        summary(&snapshot),
        vec![
            ev("operation", "b", "PENDING"),
            ev("operation", "a", "PENDING"),
            ev("synced", "", "")
        ]
    );
    assert!(snapshot.iter().all(|e| e.id.is_some()), "{snapshot:?}");
    assert_eq!(snapshot[2].data, "{}");

    s.submit("p", json!({"type": "T", "operationId": "c"}))
        .await;
    s.submit("other", json!({"type": "T", "operationId": "y"}))
        .await;
    let (status, _) = s
        .request("POST", "/v1/projects/p/operations/a:cancel", Some("{}"))
        .await;
    assert_eq!(status, 200);
    let (status, _) = s
        .request("DELETE", "/v1/projects/p/operations/a", None)
        .await;
    assert_eq!(status, 200);
    let mut live = Vec::new();
    for _ in 0..3 {
        live.push(next(&mut w).await);
    }
    assert_eq!(
        summary(&live),
        vec![
            ev("operation", "c", "PENDING"),
            ev("operation", "a", "CANCELLED"),
            ev("deleted", "a", ""),
        ]
    );
    assert_eq!(live[2].json(), json!({"name": "projects/p/operations/a"}));
    // Cursors are distinct and carried by every change.
    let ids: std::collections::HashSet<_> = live.iter().map(|e| e.id.clone().unwrap()).collect();
    assert_eq!(ids.len(), 3);
    s.stop().await;
}

#[tokio::test]
async fn resume_replays_exactly_what_was_missed() {
    let s = TestServer::start().await;
    s.submit("p", json!({"type": "T", "operationId": "a"}))
        .await;
    let mut w = s.client.watch("p", "", None, "").await.unwrap();
    until_synced(&mut w).await;
    s.submit("p", json!({"type": "T", "operationId": "b"}))
        .await;
    let seen = next(&mut w).await;
    assert_eq!(
        summary(std::slice::from_ref(&seen)),
        vec![ev("operation", "b", "PENDING")]
    );
    drop(w);

    // Missed while away: three changes, in this order.
    s.submit("p", json!({"type": "T", "operationId": "c"}))
        .await;
    s.request("POST", "/v1/projects/p/operations/b:cancel", Some("{}"))
        .await;
    s.request("DELETE", "/v1/projects/p/operations/b", None)
        .await;

    let mut w = s
        .client
        .watch("p", "", seen.id.as_deref(), "")
        .await
        .unwrap();
    let replay = until_synced(&mut w).await;
    assert_eq!(
        summary(&replay),
        vec![
            ev("operation", "c", "PENDING"),
            ev("operation", "b", "CANCELLED"),
            ev("deleted", "b", ""),
            ev("synced", "", ""),
        ]
    );
    // Resuming from the last replayed event gives nothing more, then live changes.
    let last = replay[2].id.clone();
    let mut again = s.client.watch("p", "", last.as_deref(), "").await.unwrap();
    assert_eq!(
        summary(&until_synced(&mut again).await),
        vec![ev("synced", "", "")]
    );
    s.submit("p", json!({"type": "T", "operationId": "d"}))
        .await;
    assert_eq!(
        summary(&[next(&mut again).await]),
        vec![ev("operation", "d", "PENDING")]
    );
    s.stop().await;
}

#[tokio::test]
async fn resume_holds_for_ten_thousand_changes() {
    let s = TestServer::with(|c| c.project_defaults.max_queued = 20_000).await;
    let mut w = s
        .client
        .watch("p", "", None, "snapshot=false")
        .await
        .unwrap();
    let start = until_synced(&mut w).await.pop().unwrap().id;
    drop(w);
    // 10,000 changes: submits through the API, 50 at a time.
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in 0..50 {
        let client = s.client.clone();
        tasks.spawn(async move {
            for i in 0..200 {
                let body = json!({"type": "T", "operationId": format!("o{chunk}-{i}")});
                client.submit("p", &body).await.unwrap();
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    let mut w = s.client.watch("p", "", start.as_deref(), "").await.unwrap();
    let replay = until_synced(&mut w).await;
    assert_eq!(replay.len(), 10_001, "every change replayed, then synced");
    let names: std::collections::HashSet<_> = replay
        .iter()
        .filter_map(|e| e.json()["name"].as_str().map(String::from))
        .collect();
    assert_eq!(names.len(), 10_000);
    s.stop().await;
}

#[tokio::test]
async fn unknown_cursor_resets_with_a_fresh_snapshot() {
    let s = TestServer::start().await;
    s.submit("p", json!({"type": "T", "operationId": "a"}))
        .await;
    for cursor in ["nonsense", "ffff-1", "1-2-s"] {
        let mut w = s.client.watch("p", "", Some(cursor), "").await.unwrap();
        let events = until_synced(&mut w).await;
        assert_eq!(
            summary(&events),
            vec![
                ev("reset", "", ""),
                ev("operation", "a", "PENDING"),
                ev("synced", "", "")
            ],
            "{cursor}"
        );
    }
    // A cursor from before a restart is not recognised either.
    s.stop().await;
}

#[tokio::test]
async fn filter_selects_and_shows_operations_leaving_it() {
    let s = TestServer::start().await;
    s.submit(
        "p",
        json!({"type": "T", "operationId": "a", "description": "red"}),
    )
    .await;
    s.submit(
        "p",
        json!({"type": "T", "operationId": "b", "description": "blue"}),
    )
    .await;
    let mut w = s
        .client
        .watch(
            "p",
            "done = false AND metadata.description = \"red\"",
            None,
            "",
        )
        .await
        .unwrap();
    assert_eq!(
        summary(&until_synced(&mut w).await),
        vec![ev("operation", "a", "PENDING"), ev("synced", "", "")]
    );
    s.request("POST", "/v1/projects/p/operations/b:cancel", Some("{}"))
        .await;
    s.request("POST", "/v1/projects/p/operations/a:cancel", Some("{}"))
        .await;
    s.submit(
        "p",
        json!({"type": "T", "operationId": "c", "description": "red"}),
    )
    .await;
    // b never matched; a is sent once more as it leaves the filter; c enters it.
    assert_eq!(
        summary(&[next(&mut w).await, next(&mut w).await]),
        vec![
            ev("operation", "a", "CANCELLED"),
            ev("operation", "c", "PENDING")
        ]
    );

    let bad = s
        .client
        .watch("p", "state = ", None, "")
        .await
        .err()
        .unwrap();
    match bad {
        longrun_client::Error::Api {
            http_status, body, ..
        } => {
            assert_eq!(http_status, 400);
            assert_eq!(body["error"]["details"][0]["reason"], "INVALID_FILTER");
        }
        other => panic!("{other}"),
    }
    let (status, body) = s
        .request(
            "GET",
            "/v1/projects/p/operations:watch?snapshot=maybe",
            None,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = s
        .request("POST", "/v1/projects/p/operations:watch", Some("{}"))
        .await;
    assert_eq!(status, 404, "POST with a verb the API lacks");
    let (status, _) = s
        .request("DELETE", "/v1/projects/p/operations:watch", None)
        .await;
    assert_eq!(status, 405);
    s.stop().await;
}

/// Submits, cancels and deletes `id` with `description`.
async fn submit_cancel_delete(s: &TestServer, id: &str, description: &str) {
    s.submit(
        "p",
        json!({"type": "T", "operationId": id, "description": description}),
    )
    .await;
    let path = format!("/v1/projects/p/operations/{id}");
    let (status, _) = s
        .request("POST", &format!("{path}:cancel"), Some("{}"))
        .await;
    assert_eq!(status, 200);
    let (status, _) = s.request("DELETE", &path, None).await;
    assert_eq!(status, 200);
}

/// A filtered watch sends `deleted` only for an operation that matched its filter when it
/// was deleted (one it shows), never for the project's other operations: live, resumed
/// with `Last-Event-ID` (the same events with the same ids), with `snapshot=false`, and
/// over gRPC.
#[tokio::test]
async fn filtered_watch_sends_deleted_only_for_operations_it_matches() {
    use longrun_proto::longrun::v1 as pb;
    use pb::watch_operations_response::Event as E;
    let s = TestServer::start().await;
    let red = "metadata.description = \"red\"";
    let mut w = s.client.watch("p", red, None, "").await.unwrap();
    let synced = until_synced(&mut w).await;
    assert_eq!(summary(&synced), vec![ev("synced", "", "")]);
    let cursor = synced[0].id.clone().unwrap();

    submit_cancel_delete(&s, "a", "red").await;
    submit_cancel_delete(&s, "b", "blue").await;
    // A marker: what comes before it is everything the watcher is sent.
    s.submit(
        "p",
        json!({"type": "T", "operationId": "z", "description": "red"}),
    )
    .await;
    let expected = vec![
        ev("operation", "a", "PENDING"),
        ev("operation", "a", "CANCELLED"),
        ev("deleted", "a", ""),
        ev("operation", "z", "PENDING"),
    ];
    let mut live = Vec::new();
    for _ in 0..expected.len() {
        live.push(next(&mut w).await);
    }
    assert_eq!(summary(&live), expected);

    // Resumed from before all of it: the same events, with the same ids.
    let mut resumed = s.client.watch("p", red, Some(&cursor), "").await.unwrap();
    let replay = until_synced(&mut resumed).await;
    let mut with_synced = expected.clone();
    with_synced.push(ev("synced", "", ""));
    assert_eq!(summary(&replay), with_synced);
    let ids = |events: &[Event]| events.iter().map(|e| e.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&replay[..expected.len()]), ids(&live));

    // The gRPC twin resumed from the same cursor: the same deletes.
    let channel = tonic::transport::Channel::from_shared(s.base.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = pb::operations_client::OperationsClient::new(channel)
        .watch_operations(pb::WatchOperationsRequest {
            parent: "projects/p".into(),
            filter: red.into(),
            last_event_id: cursor.clone(),
            changes_only: false,
        })
        .await
        .unwrap()
        .into_inner();
    let mut deleted = Vec::new();
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), grpc.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match message.event {
            Some(E::Deleted(name)) => deleted.push(name),
            Some(E::Synced(())) => break,
            _ => {}
        }
    }
    assert_eq!(deleted, vec!["projects/p/operations/a".to_string()]);

    // Without a snapshot, a delete of what matches is sent though this stream never sent
    // the operation; one of what does not match is not.
    let mut changes = s
        .client
        .watch("p", red, None, "snapshot=false")
        .await
        .unwrap();
    until_synced(&mut changes).await;
    for id in ["b2", "z"] {
        if id == "b2" {
            s.submit(
                "p",
                json!({"type": "T", "operationId": id, "description": "blue"}),
            )
            .await;
        }
        let path = format!("/v1/projects/p/operations/{id}");
        s.request("POST", &format!("{path}:cancel"), Some("{}"))
            .await;
        s.request("DELETE", &path, None).await;
    }
    assert_eq!(
        summary(&[next(&mut changes).await, next(&mut changes).await]),
        vec![ev("operation", "z", "CANCELLED"), ev("deleted", "z", "")]
    );
    s.stop().await;
}

#[tokio::test]
async fn quiet_stream_sends_keep_alive_comments() {
    let s = TestServer::start().await;
    let mut w = s.client.watch("p", "", None, "").await.unwrap();
    until_synced(&mut w).await;
    let started = std::time::Instant::now();
    // No change happens: the next thing on the stream is a comment, within 15 s.
    let waited = tokio::time::timeout(Duration::from_secs(15), w.next()).await;
    assert!(waited.is_err(), "no event arrives on a quiet stream");
    assert!(w.comments >= 1, "a keep-alive comment within 15 s");
    assert!(started.elapsed() >= Duration::from_secs(14));
    s.stop().await;
}

/// A change made through server A reaches a watcher on server B (one PostgreSQL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_through_one_server_reach_watchers_on_another() {
    let Some(schema) = Schema::create("watch").await else {
        return;
    };
    let (a, b) = (server_on(schema.url()).await, server_on(schema.url()).await);
    a.submit("p", json!({"type": "T", "operationId": "a"}))
        .await;
    // B hears of the submit through its notification: once it has, the snapshot holds it
    // and no later event repeats it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut w = b.client.watch("p", "", None, "").await.unwrap();
    assert_eq!(
        summary(&until_synced(&mut w).await),
        vec![ev("operation", "a", "PENDING"), ev("synced", "", "")]
    );
    let started = std::time::Instant::now();
    a.submit("p", json!({"type": "T", "operationId": "b"}))
        .await;
    assert_eq!(
        summary(&[next(&mut w).await]),
        vec![ev("operation", "b", "PENDING")]
    );
    let latency = started.elapsed();
    // Lease through A: RUNNING reaches B.
    let (_, leased) = a
        .request(
            "POST",
            "/v1/workers/w:lease",
            Some(r#"{"types": ["T"], "waitTimeout": "0s", "maxOperations": 1}"#),
        )
        .await;
    let leased_name = leased["leases"][0]["operation"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let e = next(&mut w).await;
    assert_eq!(
        (
            e.json()["name"].as_str().unwrap(),
            e.json()["metadata"]["state"].as_str().unwrap()
        ),
        (leased_name.as_str(), "RUNNING")
    );
    // Cancel and delete through A.
    let other = if leased_name.ends_with("/a") {
        "b"
    } else {
        "a"
    };
    a.request(
        "POST",
        &format!("/v1/projects/p/operations/{other}:cancel"),
        Some("{}"),
    )
    .await;
    a.request(
        "DELETE",
        &format!("/v1/projects/p/operations/{other}"),
        None,
    )
    .await;
    // Across servers, changes in quick succession may arrive as one (the operation as it
    // then stands), and an operation may be sent again as it stands: what B sees of
    // `other` is its cancel (or not, if the delete overtook it), then its delete.
    let mut seen = Vec::new();
    loop {
        let e = summary(&[next(&mut w).await]).remove(0);
        let last = e.0 == "deleted" && e.1.ends_with(&format!("/{other}"));
        seen.push(e);
        if last {
            break;
        }
        assert!(seen.len() < 10, "{seen:?}");
    }
    for e in &seen {
        if e.1.ends_with(&format!("/{other}")) && e.0 == "operation" {
            assert_eq!(e.2, "CANCELLED", "{seen:?}");
        }
    }
    eprintln!("a submit on A reached the watcher on B in {latency:?}");
    assert!(latency < Duration::from_secs(2), "{latency:?}");
    crate::postgres::finish(schema, [a, b]).await;
}

/// A filtered watcher on server B is sent the delete, made through server A, of an
/// operation it shows, and not of one that never matched its filter (one PostgreSQL). Its
/// project is its own: other tests' schemas notify on the same channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_watch_on_another_server_sends_only_matching_deletes() {
    let Some(schema) = Schema::create("watchdel").await else {
        return;
    };
    let (a, b) = (server_on(schema.url()).await, server_on(schema.url()).await);
    let red = "metadata.description = \"red\"";
    let mut w = b.client.watch("del", red, None, "").await.unwrap();
    until_synced(&mut w).await;
    for (id, colour) in [("a", "red"), ("b", "blue")] {
        a.submit(
            "del",
            json!({"type": "T", "operationId": id, "description": colour}),
        )
        .await;
    }
    assert_eq!(
        summary(&[next(&mut w).await]),
        vec![(
            "operation".to_string(),
            "projects/del/operations/a".to_string(),
            "PENDING".to_string()
        )]
    );
    // B hears of b too (its hub has it), though the watcher is not sent it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for id in ["a", "b"] {
        let path = format!("/v1/projects/del/operations/{id}");
        a.request("POST", &format!("{path}:cancel"), Some("{}"))
            .await;
        a.request("DELETE", &path, None).await;
    }
    a.submit(
        "del",
        json!({"type": "T", "operationId": "z", "description": "red"}),
    )
    .await;
    // Up to the marker z: a's cancel (unless the delete overtook it), a's delete, and
    // nothing of b.
    let mut seen = Vec::new();
    loop {
        let e = summary(&[next(&mut w).await]).remove(0);
        let marker = e.1.ends_with("/z");
        seen.push(e);
        if marker {
            break;
        }
        assert!(seen.len() < 10, "{seen:?}");
    }
    assert!(
        seen.iter().all(|e| !e.1.ends_with("/b")),
        "b never matched: {seen:?}"
    );
    assert!(
        seen.iter()
            .any(|e| e.0 == "deleted" && e.1 == "projects/del/operations/a"),
        "{seen:?}"
    );
    crate::postgres::finish(schema, [a, b]).await;
}

/// The gRPC twin: the same snapshot, `synced`, changes and `deleted`, and resuming with the
/// last id.
#[tokio::test]
async fn grpc_watch_operations() {
    use longrun_proto::longrun::v1 as pb;
    use pb::watch_operations_response::Event as E;
    let s = TestServer::start().await;
    s.submit("p", json!({"type": "T", "operationId": "a"}))
        .await;
    let channel = tonic::transport::Channel::from_shared(s.base.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = pb::operations_client::OperationsClient::new(channel);
    let request = |last: &str| pb::WatchOperationsRequest {
        parent: "projects/p".into(),
        filter: String::new(),
        last_event_id: last.into(),
        changes_only: false,
    };
    let mut stream = client
        .watch_operations(request(""))
        .await
        .unwrap()
        .into_inner();
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
    };
    let first = next().await;
    match &first.event {
        Some(E::Operation(op)) => assert_eq!(op.name, "projects/p/operations/a"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(next().await.event, Some(E::Synced(()))));
    s.request("POST", "/v1/projects/p/operations/a:cancel", Some("{}"))
        .await;
    let cancelled = next().await;
    match &cancelled.event {
        Some(E::Operation(op)) => {
            use longrun_proto::google::longrunning::operation::Result as R;
            assert!(op.done);
            assert!(matches!(&op.result, Some(R::Error(status)) if status.code == 1));
        }
        other => panic!("{other:?}"),
    }
    s.request("DELETE", "/v1/projects/p/operations/a", None)
        .await;
    let deleted = next().await;
    assert_eq!(
        deleted.event,
        Some(E::Deleted("projects/p/operations/a".into()))
    );

    // Resume after the cancel: the delete is replayed, then synced.
    let mut again = client
        .watch_operations(request(&cancelled.id))
        .await
        .unwrap()
        .into_inner();
    let replayed = again.message().await.unwrap().unwrap();
    assert_eq!((replayed.id, replayed.event), (deleted.id, deleted.event));
    assert!(matches!(
        again.message().await.unwrap().unwrap().event,
        Some(E::Synced(()))
    ));

    let bad = client
        .watch_operations(pb::WatchOperationsRequest {
            filter: "state = ".into(),
            ..request("")
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    s.stop().await;
}
