//! Leases, heartbeats, completions and the sweep, on a real store with a manual clock.

use crate::tests::{fixture, project, submission};
use crate::{Clock, Error, LeaseRequest, Report, Submission, TaskType};
use longrun_types::operation::{Outcome, Status};
use longrun_types::{Code, State};
use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn request(types: &[&str], max: usize) -> LeaseRequest {
    LeaseRequest {
        worker: "w1".into(),
        types: types.iter().map(|t| t.to_string()).collect(),
        max_operations: max,
        wait: Duration::ZERO,
        lease_duration: Duration::from_secs(60),
        projects: None,
    }
}

fn lease_id(op: &longrun_types::Operation) -> String {
    op.lease.as_ref().unwrap().id.clone()
}

#[tokio::test]
async fn leases_by_priority_and_fences_by_lease_id() {
    let f = fixture(|_| {});
    for (id, priority) in [("low", 1), ("high", 500), ("mid", 100)] {
        let s = Submission {
            priority: Some(priority),
            payload: Some(json!({"id": id})),
            ..submission(id)
        };
        f.engine.submit(&project(), s).await.unwrap();
    }
    let leased = f.engine.lease(request(&["EXPORT_IMAGE"], 2)).await.unwrap();
    let ids: Vec<&str> = leased.iter().map(|(op, _)| op.name.id()).collect();
    assert_eq!(ids, ["high", "mid"]);
    let (op, payload) = &leased[0];
    assert_eq!(payload, &json!({"id": "high"}));
    assert_eq!(op.state, State::Running);
    assert_eq!(op.start_time, Some(f.clock.now()));
    assert_eq!(op.attempt, 1);
    let lease = op.lease.clone().unwrap();
    assert_eq!(lease.worker, "w1");

    let stale = f
        .engine
        .heartbeat(&op.name, "not-the-lease", Report::default(), None)
        .await;
    assert!(matches!(stale, Err(Error::LeaseNotHeld { .. })));
    let beat = f
        .engine
        .heartbeat(
            &op.name,
            &lease.id,
            Report {
                progress: Some(0.5),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    assert!(!beat.cancel_requested);
    let done = f
        .engine
        .complete(&op.name, &lease.id, Ok(json!({"rows": 3})))
        .await
        .unwrap();
    assert_eq!(done.state, State::Succeeded);
    assert_eq!(done.progress, 0.5);
    assert_eq!(
        done.outcome,
        Some(Outcome::Response(
            json!({"@type": "type.googleapis.com/google.protobuf.Struct", "value": {"rows": 3}})
        ))
    );
    let late = f
        .engine
        .complete(&op.name, &lease.id, Err(Status::new(Code::Internal, "x")))
        .await;
    assert!(matches!(late, Err(Error::LeaseNotHeld { .. })));
    assert_eq!(f.engine.get(&op.name).await.unwrap(), done);
    assert!(
        f.engine
            .lease(request(&["EXPORT_IMAGE"], 5))
            .await
            .unwrap()
            .len()
            == 1
    );
    assert!(f.engine.lease(request(&[], 1)).await.is_err());
    assert!(f.engine.lease(request(&["T"], 0)).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_of_running_wakes_a_waiting_heartbeat_at_once() {
    let f = fixture(|_| {});
    let op = f.start(f.submit("a").await).await;
    let id = lease_id(&op);
    let waiting = {
        let engine = f.engine.clone();
        let (name, id) = (op.name.clone(), id.clone());
        tokio::spawn(async move {
            let beat = engine
                .heartbeat(&name, &id, Report::default(), Some(Duration::from_secs(20)))
                .await;
            (beat, Instant::now())
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let cancelled_at = Instant::now();
    let cancelling = f.engine.cancel(&op.name, "user:a").await.unwrap();
    assert_eq!(cancelling.state, State::Cancelling);
    let (beat, returned_at) = waiting.await.unwrap();
    assert!(beat.unwrap().cancel_requested);
    assert!(returned_at.duration_since(cancelled_at) < Duration::from_secs(1));
    // The worker acknowledges: CANCELLED with its status.
    let done = f
        .engine
        .complete(&op.name, &id, Err(Status::new(Code::Cancelled, "stopped")))
        .await
        .unwrap();
    assert_eq!(done.state, State::Cancelled);
    assert_eq!(done.error_code(), Some(1));
}

#[tokio::test]
async fn a_result_reported_while_cancelling_stands() {
    let f = fixture(|_| {});
    let op = f.start(f.submit("ok").await).await;
    f.engine.cancel(&op.name, "").await.unwrap();
    let done = f
        .engine
        .complete(
            &op.name,
            &lease_id(&op),
            Ok(json!({"@type": "t/x", "a": 1})),
        )
        .await
        .unwrap();
    assert_eq!(done.state, State::Succeeded);
    assert_eq!(
        done.outcome,
        Some(Outcome::Response(json!({"@type": "t/x", "a": 1})))
    );
    let op = f.start(f.submit("bad").await).await;
    f.engine.cancel(&op.name, "").await.unwrap();
    let done = f
        .engine
        .complete(
            &op.name,
            &lease_id(&op),
            Err(Status::new(Code::Internal, "boom")),
        )
        .await
        .unwrap();
    assert_eq!((done.state, done.error_code()), (State::Failed, Some(13)));
}

#[tokio::test]
async fn a_worker_that_ignores_cancel_loses_its_lease_after_the_grace() {
    let f = fixture(|o| {
        o.task_types.insert(
            "EXPORT_IMAGE".into(),
            TaskType {
                cancel_grace: Duration::from_secs(5),
                ..TaskType::default()
            },
        );
    });
    let op = f.start(f.submit("a").await).await;
    let id = lease_id(&op);
    let cancelling = f.engine.cancel(&op.name, "").await.unwrap();
    assert_eq!(
        cancelling.lease.unwrap().expire_time,
        f.clock.now().plus_millis(5_000)
    );
    // Heartbeats cannot extend the lease past the grace.
    let beat = f
        .engine
        .heartbeat(&op.name, &id, Report::default(), None)
        .await
        .unwrap();
    assert!(beat.cancel_requested);
    assert_eq!(beat.lease_expire_time, f.clock.now().plus_millis(5_000));
    f.clock.0.fetch_add(4_000, Ordering::SeqCst);
    f.engine.sweep().await.unwrap();
    assert_eq!(
        f.engine.get(&op.name).await.unwrap().state,
        State::Cancelling
    );
    f.clock.0.fetch_add(1_001, Ordering::SeqCst);
    f.engine.sweep().await.unwrap();
    let done = f.engine.get(&op.name).await.unwrap();
    assert_eq!((done.state, done.error_code()), (State::Cancelled, Some(1)));
    let late = f.engine.complete(&op.name, &id, Ok(json!({}))).await;
    assert!(matches!(late, Err(Error::LeaseNotHeld { .. })));
    assert_eq!(f.engine.get(&op.name).await.unwrap(), done);
}

#[tokio::test]
async fn lapsed_leases_are_retried_then_failed() {
    let f = fixture(|_| {});
    let s = Submission {
        max_attempts: Some(2),
        ..submission("a")
    };
    let op = f.engine.submit(&project(), s).await.unwrap();
    let first = f.start(op).await;
    f.clock.0.fetch_add(60_001, Ordering::SeqCst);
    assert_eq!(f.engine.sweep().await.unwrap(), 1);
    let requeued = f.engine.get(&first.name).await.unwrap();
    assert_eq!(
        (requeued.state, requeued.attempt, requeued.lease.clone()),
        (State::Pending, 2, None)
    );
    let second = f.start(requeued).await;
    assert_eq!(
        second.start_time, first.start_time,
        "startTime is the first start"
    );
    // The first worker's lease is gone.
    let stale = f
        .engine
        .heartbeat(&first.name, &lease_id(&first), Report::default(), None)
        .await;
    assert!(matches!(stale, Err(Error::LeaseNotHeld { .. })));
    f.clock.0.fetch_add(60_001, Ordering::SeqCst);
    f.engine.sweep().await.unwrap();
    let failed = f.engine.get(&first.name).await.unwrap();
    assert_eq!(
        (failed.state, failed.error_code()),
        (State::Failed, Some(14))
    );
}

#[tokio::test]
async fn a_release_requeues_without_spending_an_attempt() {
    let f = fixture(|_| {});
    let s = Submission {
        max_attempts: Some(1),
        ..submission("a")
    };
    let op = f.engine.submit(&project(), s).await.unwrap();
    // Released three times (three deploys) with one attempt allowed: each start is counted,
    // none is spent.
    let mut op = op;
    for start in 1..=3 {
        let running = f.start(op).await;
        assert_eq!(running.attempt, start);
        let released = f
            .engine
            .release(&running.name, &lease_id(&running))
            .await
            .unwrap();
        assert_eq!(
            (
                released.state,
                released.lease.clone(),
                released.outcome.clone()
            ),
            (State::Pending, None, None)
        );
        // The released lease is gone.
        let stale = f.engine.release(&running.name, &lease_id(&running)).await;
        assert!(matches!(stale, Err(Error::LeaseNotHeld { .. })));
        op = released;
    }
    // The one attempt it has is still there: a lapsed lease now spends it.
    let running = f.start(op).await;
    assert_eq!(running.attempt, 4);
    f.clock.0.fetch_add(60_001, Ordering::SeqCst);
    f.engine.sweep().await.unwrap();
    let failed = f.engine.get(&running.name).await.unwrap();
    assert_eq!(
        (failed.state, failed.error_code()),
        (State::Failed, Some(14))
    );

    // A release of a CANCELLING operation ends it CANCELLED: its work stopped.
    let op = f.engine.submit(&project(), submission("b")).await.unwrap();
    let running = f.start(op).await;
    f.engine.cancel(&running.name, "user:alice").await.unwrap();
    let ended = f
        .engine
        .release(&running.name, &lease_id(&running))
        .await
        .unwrap();
    assert_eq!(
        (ended.state, ended.error_code()),
        (State::Cancelled, Some(1))
    );
}

#[tokio::test]
async fn unavailable_is_retried_other_errors_are_final() {
    let f = fixture(|_| {});
    let op = f.start(f.submit("a").await).await;
    let retried = f
        .engine
        .complete(
            &op.name,
            &lease_id(&op),
            Err(Status::new(Code::Unavailable, "try again")),
        )
        .await
        .unwrap();
    assert_eq!((retried.state, retried.attempt), (State::Pending, 2));
    let op = f.start(retried).await;
    let failed = f
        .engine
        .complete(
            &op.name,
            &lease_id(&op),
            Err(Status::new(Code::InvalidArgument, "bad input")),
        )
        .await
        .unwrap();
    assert_eq!(
        (failed.state, failed.error_code()),
        (State::Failed, Some(3))
    );
}

#[tokio::test]
async fn timeouts_fail_with_deadline_exceeded_or_end_a_cancel() {
    let f = fixture(|o| {
        o.task_types.insert(
            "EXPORT_IMAGE".into(),
            TaskType {
                timeout: Some(Duration::from_secs(100)),
                ..TaskType::default()
            },
        );
    });
    let short = Submission {
        timeout: Some(Duration::from_secs(10)),
        ..submission("short")
    };
    let short = f.engine.submit(&project(), short).await.unwrap();
    assert_eq!(short.deadline, Some(f.clock.now().plus_millis(10_000)));
    let long = Submission {
        timeout: Some(Duration::from_secs(1000)),
        ..submission("long")
    };
    let long = f.engine.submit(&project(), long).await.unwrap();
    assert_eq!(
        long.deadline,
        Some(f.clock.now().plus_millis(100_000)),
        "the type's timeout caps it"
    );
    f.clock.0.fetch_add(10_001, Ordering::SeqCst);
    f.engine.sweep().await.unwrap();
    let failed = f.engine.get(&short.name).await.unwrap();
    assert_eq!(
        (failed.state, failed.error_code()),
        (State::Failed, Some(4))
    );
    let running = f.start(long).await;
    f.engine.cancel(&running.name, "").await.unwrap();
    f.clock.0.fetch_add(90_000, Ordering::SeqCst);
    f.engine.sweep().await.unwrap();
    let ended = f.engine.get(&running.name).await.unwrap();
    assert_eq!(
        (ended.state, ended.error_code()),
        (State::Cancelled, Some(1))
    );
}

#[tokio::test]
async fn types_that_cannot_be_cancelled_are_left_alone() {
    let f = fixture(|o| {
        o.task_types.insert(
            "EXPORT_IMAGE".into(),
            TaskType {
                cancellable: false,
                ..TaskType::default()
            },
        );
    });
    let op = f.submit("a").await;
    assert!(matches!(
        f.engine.cancel(&op.name, "").await,
        Err(Error::Unimplemented(_))
    ));
    assert_eq!(f.engine.get(&op.name).await.unwrap(), op);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_lease_is_woken_by_a_submit() {
    let f = fixture(|_| {});
    let engine = f.engine.clone();
    let waiting = tokio::spawn(async move {
        let mut r = request(&["EXPORT_IMAGE"], 1);
        r.wait = Duration::from_secs(20);
        (engine.lease(r).await, Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let submitted_at = Instant::now();
    f.submit("a").await;
    let (leased, returned_at) = waiting.await.unwrap();
    assert_eq!(leased.unwrap().len(), 1);
    assert!(returned_at.duration_since(submitted_at) < Duration::from_secs(1));
}

/// Cancel against a worker that either finishes or acknowledges, with scheduling jitter:
/// every round ends in exactly one terminal state that the rules of section 3.3 allow, and
/// nothing changes after done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_versus_complete_race_1000_rounds() {
    let f = fixture(|_| {});
    let mut seed = 7u64;
    let mut jitter = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as usize % 16
    };
    let (mut succeeded, mut cancelled) = (0, 0);
    for round in 0..1000 {
        let op = f.start(f.submit(&format!("r{round}")).await).await;
        let id = lease_id(&op);
        let (a, b) = (jitter(), jitter());
        let canceller = {
            let engine = f.engine.clone();
            let name = op.name.clone();
            tokio::spawn(async move {
                for _ in 0..a {
                    tokio::task::yield_now().await;
                }
                engine.cancel(&name, "").await.unwrap()
            })
        };
        let worker = {
            let engine = f.engine.clone();
            let name = op.name.clone();
            tokio::spawn(async move {
                for _ in 0..b {
                    tokio::task::yield_now().await;
                }
                let beat = engine
                    .heartbeat(&name, &id, Report::default(), None)
                    .await
                    .unwrap();
                let result = if beat.cancel_requested {
                    Err(Status::new(Code::Cancelled, "acknowledged"))
                } else {
                    Ok(json!({"done": true}))
                };
                (
                    beat.cancel_requested,
                    engine.complete(&name, &id, result).await.unwrap(),
                )
            })
        };
        canceller.await.unwrap();
        let (saw_cancel, completed) = worker.await.unwrap();
        let stored = f.engine.get(&op.name).await.unwrap();
        assert!(stored.done(), "round {round}");
        assert_eq!(
            stored, completed,
            "round {round}: the completion is the last write"
        );
        match stored.state {
            State::Succeeded => {
                assert!(!saw_cancel);
                succeeded += 1;
            }
            State::Cancelled => {
                assert!(saw_cancel);
                cancelled += 1;
            }
            other => panic!("round {round}: {other:?}"),
        }
        // Nothing changes after done.
        assert_eq!(f.engine.cancel(&op.name, "").await.unwrap(), stored);
        assert!(
            f.engine
                .complete(&op.name, &lease_id(&op), Ok(json!({})))
                .await
                .is_err()
        );
    }
    assert_eq!(succeeded + cancelled, 1000);
    println!("race: {succeeded} succeeded, {cancelled} cancelled");
}
