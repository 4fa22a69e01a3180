//! Firing rules on a real SQLite store with an injected clock: fire times, catch-up,
//! overlap policies, pause, and repeated firings that make one operation.

use super::*;
use crate::tests::{Fixture, fixture, project};
use longrun_store::Operations;
use std::sync::atomic::Ordering;

/// Reads a submit body as the server does, for the fields these tests use.
fn decode() -> Decode {
    Arc::new(|body: &serde_json::Value| {
        let object = body.as_object().ok_or("operation must be an object")?;
        for key in object.keys() {
            if !["type", "payload", "priority", "requestId", "operationId"].contains(&key.as_str())
            {
                return Err(format!("unknown field `{key}`"));
            }
        }
        Ok(Submission {
            op_type: body["type"].as_str().unwrap_or_default().to_string(),
            payload: body.get("payload").cloned(),
            priority: body["priority"].as_i64(),
            request_id: body["requestId"].as_str().map(str::to_string),
            operation_id: body["operationId"].as_str().map(str::to_string),
            ..Default::default()
        })
    })
}

fn scheduler(f: &Fixture) -> Scheduler {
    Scheduler::new(f.engine.clone(), f.store.clone(), decode())
}

fn spec(cron: &str, policy: OverlapPolicy) -> Spec {
    Spec {
        cron: cron.into(),
        time_zone: None,
        operation: serde_json::json!({"type": "EXPORT_IMAGE", "payload": {"x": 1}}),
        overlap_policy: Some(policy),
        paused: false,
    }
}

/// Clock at `ms`.
fn set(f: &Fixture, ms: i64) {
    f.clock.0.store(ms, Ordering::SeqCst);
}

/// The ids of the operations of schedule `name`, sorted.
async fn started(f: &Fixture, name: &str) -> Vec<String> {
    let filter = format!("metadata.schedule = \"{name}\"");
    let mut ids: Vec<String> = f
        .engine
        .list(&project(), &filter, 1000, "")
        .await
        .unwrap()
        .operations
        .iter()
        .map(|op| op.name.id().to_string())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn each_fire_time_starts_one_operation_even_when_fired_twice() {
    let f = fixture(|_| {});
    let s = scheduler(&f);
    set(&f, 1_000_000); // 1970-01-01T00:16:40Z
    let created = s
        .create(
            &project(),
            Some("tick"),
            spec("*/10 * * * * *", OverlapPolicy::Allow),
        )
        .await
        .unwrap();
    assert_eq!(created.next_fire_time, Some(Timestamp(1_010_000)));
    assert_eq!(s.fire_due(Timestamp(1_009_999)).await.unwrap(), 0);
    set(&f, 1_010_000);
    assert_eq!(s.fire_due(Timestamp(1_010_000)).await.unwrap(), 1);
    let after = s.get(&created.name).await.unwrap();
    assert_eq!(after.last_fire_time, Some(Timestamp(1_010_000)));
    assert_eq!(after.next_fire_time, Some(Timestamp(1_020_000)));
    // A second server that read the schedule before the advance fires the same time:
    // its submit returns the operation made, and its advance loses.
    assert!(!s.fire(created.clone(), Timestamp(1_010_000)).await.unwrap());
    // A crash between submit and advance: the next pass repeats the submit harmlessly.
    s.submit(&after, &project(), Timestamp(1_020_000))
        .await
        .unwrap();
    set(&f, 1_020_000);
    assert_eq!(s.fire_due(Timestamp(1_020_000)).await.unwrap(), 1);
    assert_eq!(
        started(&f, &created.name).await,
        ["tick-19700101T001650Z", "tick-19700101T001700Z"]
    );
    let op = f
        .engine
        .get(&Name::parse("projects/p/operations/tick-19700101T001650Z").unwrap())
        .await
        .unwrap();
    assert_eq!(op.schedule.as_deref(), Some("projects/p/schedules/tick"));
    assert_eq!(op.request_id.as_deref(), Some("schedules/tick/1010000"));
    assert_eq!(
        f.store.payload(&op.name).await.unwrap(),
        Some(serde_json::json!({"x": 1}))
    );
}

#[tokio::test]
async fn only_the_latest_missed_fire_time_is_caught_up() {
    let f = fixture(|_| {});
    let s = scheduler(&f);
    let created = s
        .create(
            &project(),
            Some("m"),
            spec("*/10 * * * * *", OverlapPolicy::Allow),
        )
        .await
        .unwrap();
    // No server ran from 1_010_000 to 1_075_000: six fire times went by.
    set(&f, 1_075_000);
    assert_eq!(s.fire_due(Timestamp(1_075_000)).await.unwrap(), 1);
    assert_eq!(started(&f, &created.name).await, ["m-19700101T001750Z"]);
    let after = s.get(&created.name).await.unwrap();
    assert_eq!(after.last_fire_time, Some(Timestamp(1_070_000)));
    assert_eq!(after.next_fire_time, Some(Timestamp(1_080_000)));
}

#[tokio::test]
async fn skip_passes_over_a_fire_time_while_the_previous_operation_runs() {
    let f = fixture(|_| {});
    let s = scheduler(&f);
    let created = s
        .create(
            &project(),
            Some("s"),
            spec("*/10 * * * * *", OverlapPolicy::Skip),
        )
        .await
        .unwrap();
    set(&f, 1_010_000);
    s.fire_due(Timestamp(1_010_000)).await.unwrap();
    set(&f, 1_020_000);
    assert_eq!(s.fire_due(Timestamp(1_020_000)).await.unwrap(), 1);
    // The first is still PENDING: the second fire time passed, nothing submitted.
    assert_eq!(started(&f, &created.name).await, ["s-19700101T001650Z"]);
    let after = s.get(&created.name).await.unwrap();
    assert_eq!(after.last_fire_time, Some(Timestamp(1_020_000)));
    // Once it is done, the next fire time submits.
    let first = Name::parse("projects/p/operations/s-19700101T001650Z").unwrap();
    f.engine.cancel(&first, "me").await.unwrap();
    set(&f, 1_030_000);
    s.fire_due(Timestamp(1_030_000)).await.unwrap();
    assert_eq!(
        started(&f, &created.name).await,
        ["s-19700101T001650Z", "s-19700101T001710Z"]
    );
}

#[tokio::test]
async fn cancel_previous_cancels_then_submits() {
    let f = fixture(|_| {});
    let s = scheduler(&f);
    let created = s
        .create(
            &project(),
            Some("c"),
            spec("*/10 * * * * *", OverlapPolicy::CancelPrevious),
        )
        .await
        .unwrap();
    set(&f, 1_010_000);
    s.fire_due(Timestamp(1_010_000)).await.unwrap();
    set(&f, 1_020_000);
    s.fire_due(Timestamp(1_020_000)).await.unwrap();
    let first = f
        .engine
        .get(&Name::parse("projects/p/operations/c-19700101T001650Z").unwrap())
        .await
        .unwrap();
    assert_eq!(first.state, longrun_types::State::Cancelled);
    assert_eq!(
        first.cancel.map(|c| c.principal).as_deref(),
        Some(created.name.as_str())
    );
    assert_eq!(
        started(&f, &created.name).await,
        ["c-19700101T001650Z", "c-19700101T001700Z"]
    );
}

#[tokio::test]
async fn a_paused_schedule_does_not_fire_and_resumes_from_now() {
    let f = fixture(|_| {});
    let s = scheduler(&f);
    let created = s
        .create(
            &project(),
            Some("p"),
            spec("*/10 * * * * *", OverlapPolicy::Allow),
        )
        .await
        .unwrap();
    let paused = s
        .update(
            &created.name,
            Patch {
                paused: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((paused.paused, paused.next_fire_time), (true, None));
    set(&f, 1_100_000);
    assert_eq!(s.fire_due(Timestamp(1_100_000)).await.unwrap(), 0);
    let resumed = s
        .update(
            &created.name,
            Patch {
                paused: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(resumed.next_fire_time, Some(Timestamp(1_110_000)));
    assert!(started(&f, &created.name).await.is_empty());
}

#[tokio::test]
async fn what_submit_would_refuse_is_refused_naming_the_field() {
    let f = fixture(|_| {});
    let s = scheduler(&f);
    let refused = |spec: Spec| {
        let s = s.clone();
        async move {
            match s.create(&project(), Some("x"), spec).await {
                Err(Error::InvalidArgument { message, .. }) => message,
                other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
            }
        }
    };
    let base = spec("0 3 * * *", OverlapPolicy::Skip);
    assert!(
        refused(Spec {
            cron: "0 3 * *".into(),
            ..base.clone()
        })
        .await
        .contains("cron")
    );
    assert!(
        refused(Spec {
            time_zone: Some("Nowhere/City".into()),
            ..base.clone()
        })
        .await
        .contains("timeZone")
    );
    for (operation, word) in [
        (serde_json::json!({"type": ""}), "type is required"),
        (
            serde_json::json!({"type": "T", "priority": 10_000}),
            "priority",
        ),
        (
            serde_json::json!({"type": "T", "operationId": "a"}),
            "operationId",
        ),
        (
            serde_json::json!({"type": "T", "requestId": "a"}),
            "requestId",
        ),
        (serde_json::json!({"type": "T", "bogus": 1}), "bogus"),
    ] {
        let message = refused(Spec {
            operation,
            ..base.clone()
        })
        .await;
        assert!(
            message.starts_with("operation") && message.contains(word),
            "{message}"
        );
    }
    s.create(&project(), Some("x"), base.clone()).await.unwrap();
    assert!(matches!(
        s.create(&project(), Some("x"), base).await,
        Err(Error::ScheduleExists(_))
    ));
}

#[tokio::test]
async fn lists_page_in_name_order() {
    let f = fixture(|_| {});
    let s = scheduler(&f);
    for id in ["c", "a", "b"] {
        s.create(&project(), Some(id), spec("0 3 * * *", OverlapPolicy::Skip))
            .await
            .unwrap();
    }
    let first = s.list(&project(), 2, "").await.unwrap();
    let ids = |page: &Page| {
        page.schedules
            .iter()
            .map(|s| s.id().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&first), ["a", "b"]);
    let token = first.next_page_token.unwrap();
    let second = s.list(&project(), 2, &token).await.unwrap();
    assert_eq!(ids(&second), ["c"]);
    assert!(second.next_page_token.is_none());
    let other = Project::parse("q").unwrap();
    assert!(matches!(
        s.list(&other, 2, &token).await,
        Err(Error::InvalidArgument {
            reason: "INVALID_PAGE_TOKEN",
            ..
        })
    ));
}
