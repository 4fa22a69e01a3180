//! Delayed start (docs/operations.md#delayed-start): leases pass over operations whose
//! `scheduleTime` is still to come and those past their start deadline, `due` finds the
//! start deadlines, `next_scheduled` tells when the next one comes due, and both fields
//! filter lists.

use super::{collect_all, created, leasing, operation};
use crate::{LeaseQuery, Store};
use longrun_types::{Name, Operation, Timestamp, filter};
use std::sync::Arc;

fn scheduled(id: &str, created_at: i64, at: Option<i64>, priority: i32) -> Operation {
    let mut op = operation("p", id, created_at);
    op.op_type = "S".into();
    op.schedule_time = at.map(Timestamp);
    op.priority = priority;
    op
}

fn at(now: i64, limit: usize) -> LeaseQuery {
    LeaseQuery {
        now: Timestamp(now),
        ..leasing(&["S"], limit, 0, now + 1_000)
    }
}

fn ids(leased: &[(Operation, serde_json::Value)]) -> Vec<&str> {
    leased.iter().map(|(op, _)| op.name.id()).collect()
}

pub async fn lease_waits_for_the_schedule_time<S: Store>(store: Arc<S>) {
    // Ahead in lease order, but not due until 500.
    created(&*store, scheduled("later", 1, Some(500), 900)).await;
    created(&*store, scheduled("now", 2, None, 100)).await;
    // Due at 50, and of a higher priority than "now".
    created(&*store, scheduled("due", 3, Some(50), 200)).await;
    assert_eq!(
        store.next_scheduled(Timestamp(10)).await.unwrap(),
        Some(Timestamp(50))
    );
    assert_eq!(
        store.next_scheduled(Timestamp(50)).await.unwrap(),
        Some(Timestamp(500))
    );
    assert_eq!(ids(&store.lease(at(100, 1)).await.unwrap()), ["due"]);
    assert_eq!(ids(&store.lease(at(100, 10)).await.unwrap()), ["now"]);
    assert!(store.lease(at(499, 10)).await.unwrap().is_empty());
    assert_eq!(ids(&store.lease(at(500, 10)).await.unwrap()), ["later"]);
    assert_eq!(store.next_scheduled(Timestamp(0)).await.unwrap(), None);
}

pub async fn start_deadlines_are_due_and_never_leased<S: Store>(store: Arc<S>) {
    // Created at 1, scheduled at 100: must start by 150.
    let mut late = scheduled("late", 1, Some(100), 100);
    late.start_timeout_ms = Some(50);
    created(&*store, late).await;
    // No scheduleTime: must start by 1 + 30.
    let mut quick = scheduled("quick", 1, None, 100);
    quick.start_timeout_ms = Some(30);
    created(&*store, quick).await;
    let names = |ops: Vec<Operation>| {
        let mut ids: Vec<String> = ops.iter().map(|o| o.name.id().to_string()).collect();
        ids.sort();
        ids
    };
    assert!(store.due(Timestamp(31), 10).await.unwrap().is_empty());
    assert_eq!(
        names(store.due(Timestamp(32), 10).await.unwrap()),
        ["quick"]
    );
    assert_eq!(
        names(store.due(Timestamp(151), 10).await.unwrap()),
        ["late", "quick"]
    );
    // Past its start deadline, an operation is not leased (the sweep ends it).
    assert!(store.lease(at(151, 10)).await.unwrap().is_empty());
    // Leased in time, it is no longer due for its start deadline.
    assert_eq!(ids(&store.lease(at(120, 10)).await.unwrap()), ["late"]);
    assert_eq!(
        names(store.due(Timestamp(151), 10).await.unwrap()),
        ["quick"]
    );
}

pub async fn schedule_fields_are_kept_and_filtered<S: Store>(store: Arc<S>) {
    let mut all = Vec::new();
    for i in 0..12i64 {
        let mut op = scheduled(
            &format!("s/{i:02}"),
            1_000 + i,
            (i % 3 != 0).then_some(5_000 + i * 100),
            100,
        );
        op.start_timeout_ms = (i % 4 != 0).then_some(1_000 * i);
        let stored = created(&*store, op.clone()).await;
        assert_eq!(store.get(&op.name).await.unwrap().unwrap(), stored);
        assert_eq!(stored.schedule_time, op.schedule_time);
        assert_eq!(stored.start_timeout_ms, op.start_timeout_ms);
        all.push(stored);
    }
    for text in [
        "metadata.scheduleTime:*",
        "NOT metadata.scheduleTime:*",
        "metadata.scheduleTime >= \"1970-01-01T00:00:05.500Z\"",
        "metadata.startTimeout = 3s",
        "metadata.startTimeout > 4.5s OR metadata.scheduleTime < 1970-01-01T00:00:05.300Z",
        "metadata.startTimeout:*",
        "metadata.waitingReason:*",
        "NOT metadata.waitingReason = QUEUED",
    ] {
        let expr = filter::parse(text).unwrap();
        let mut expected: Vec<&Operation> = all
            .iter()
            .filter(|op| expr.as_ref().is_none_or(|e| e.matches(op)))
            .collect();
        expected.sort_by(|a, b| b.create_time.cmp(&a.create_time).then(a.name.cmp(&b.name)));
        let expected: Vec<Name> = expected.into_iter().map(|o| o.name.clone()).collect();
        assert_eq!(
            collect_all(&*store, "p", expr, 5).await,
            expected,
            "filter {text}"
        );
    }
}
