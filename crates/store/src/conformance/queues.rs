//! Conformance: queue counts kept through every change, concurrent ones included, and
//! pauses that leases honour.

use super::*;
use crate::{EVERY_TYPE, QueueCounts};

fn typed(p: &str, id: &str, op_type: &str, created: i64) -> Operation {
    let mut op = operation(p, id, created);
    op.op_type = op_type.into();
    op
}

fn counts(pending: u64, running: u64, oldest: Option<i64>) -> QueueCounts {
    QueueCounts {
        pending,
        running,
        oldest_pending: oldest.map(Timestamp),
    }
}

/// (project, type, pending, running) of every queue with work.
async fn listed<S: Store>(store: &S, project: Option<&str>) -> Vec<(String, String, u64, u64)> {
    store
        .queues(project, Timestamp(1_000))
        .await
        .unwrap()
        .into_iter()
        .map(|q| (q.project, q.op_type, q.counts.pending, q.counts.running))
        .collect()
}

fn row(p: &str, t: &str, pending: u64, running: u64) -> (String, String, u64, u64) {
    (p.into(), t.into(), pending, running)
}

pub async fn queue_counts_follow_every_change<S: Store>(store: Arc<S>) {
    let now = Timestamp(1_000);
    assert_eq!(
        store.queue_counts("p", "A", now).await.unwrap(),
        counts(0, 0, None)
    );
    for (id, created_at) in [("a1", 30), ("a2", 10), ("a3", 20)] {
        created(&*store, typed("p", id, "A", created_at)).await;
    }
    created(&*store, typed("p", "b1", "B", 5)).await;
    created(&*store, typed("q", "a1", "A", 7)).await;
    // Scheduled: one due at 15 (older than every unscheduled A but a2), one not due yet.
    let mut due = typed("p", "a4", "A", 40);
    due.schedule_time = Some(Timestamp(15));
    created(&*store, due).await;
    let mut later = typed("p", "a5", "A", 1);
    later.schedule_time = Some(Timestamp(5_000));
    created(&*store, later).await;
    assert_eq!(
        store.queue_counts("p", "A", now).await.unwrap(),
        counts(5, 0, Some(10))
    );
    assert_eq!(
        listed(&*store, None).await,
        [
            row("p", "A", 5, 0),
            row("p", "B", 1, 0),
            row("q", "A", 1, 0)
        ]
    );
    assert_eq!(listed(&*store, Some("q")).await, [row("q", "A", 1, 0)]);

    // Leased in turns across projects and by age: a2, q's a1, a3 (a4, due at 15, was
    // created at 40, after a3)...
    let leased = store.lease(leasing(&["A"], 3, 0, 2_000)).await.unwrap();
    let mut ids: Vec<_> = leased.iter().map(|(op, _)| op.name.to_string()).collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            "projects/p/operations/a2",
            "projects/p/operations/a3",
            "projects/q/operations/a1"
        ]
    );
    assert_eq!(
        store.queue_counts("p", "A", now).await.unwrap(),
        counts(3, 2, Some(15))
    );
    // ... one cancelled (CANCELLING still holds its worker), one done.
    let op = |id: &str| {
        leased
            .iter()
            .find(|(op, _)| op.name.to_string() == id)
            .unwrap()
            .0
            .clone()
    };
    let mut cancelling = op("projects/p/operations/a2");
    let cancelled = Outcome::Error(Status::new(Code::Cancelled, "cancelled"));
    cancelling.apply(Event::Cancel, Some(cancelled), Timestamp(1_000));
    let cancelling = store.update(cancelling).await.unwrap();
    assert_eq!(cancelling.state, State::Cancelling);
    store
        .update(done(
            op("projects/p/operations/a3"),
            State::Succeeded,
            1_000,
        ))
        .await
        .unwrap();
    assert_eq!(
        store.queue_counts("p", "A", now).await.unwrap(),
        counts(3, 1, Some(15))
    );
    // An update that changes no state changes no count.
    let mut progressed = cancelling.clone();
    progressed.progress = 0.5;
    let progressed = store.update(progressed).await.unwrap();
    assert_eq!(
        store.queue_counts("p", "A", now).await.unwrap(),
        counts(3, 1, Some(15))
    );
    // Deleted: a PENDING one and a done one.
    let b1 = store
        .get(&Name::parse("projects/p/operations/b1").unwrap())
        .await
        .unwrap()
        .unwrap();
    store.delete(&b1).await.unwrap();
    assert_eq!(listed(&*store, Some("p")).await, [row("p", "A", 3, 1)]);
    store
        .update(done(progressed, State::Cancelled, 1_100))
        .await
        .unwrap();
    assert_eq!(
        listed(&*store, None).await,
        [row("p", "A", 3, 0), row("q", "A", 0, 1)]
    );
}

pub async fn queue_counts_are_exact_under_concurrent_changes<S: Store>(store: Arc<S>) {
    // Four submitters, two leasers and a canceller at once.
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..4 {
        let store = store.clone();
        tasks.spawn(async move {
            for i in 0..50 {
                let op = typed("p", &format!("w{w}-{i}"), ["A", "B"][i % 2], i as i64);
                created(&*store, op).await;
            }
        });
    }
    for _ in 0..2 {
        let store = store.clone();
        tasks.spawn(async move {
            for _ in 0..20 {
                let leased = store
                    .lease(leasing(&["A", "B"], 3, 0, 2_000))
                    .await
                    .unwrap();
                for (op, _) in leased.into_iter().step_by(2) {
                    store
                        .update(done(op, State::Succeeded, 1_000))
                        .await
                        .unwrap();
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    // What the counts say is what the operations are.
    let all = store
        .list(ListQuery {
            project: project("p"),
            filter: None,
            after: None,
            limit: 1_000,
            scan_budget: usize::MAX,
        })
        .await
        .unwrap()
        .operations;
    assert_eq!(all.len(), 200);
    for t in ["A", "B"] {
        let of = |state: State| {
            all.iter()
                .filter(|op| op.op_type == t && op.state == state)
                .count() as u64
        };
        let got = store.queue_counts("p", t, Timestamp(1_000)).await.unwrap();
        assert_eq!(
            (got.pending, got.running),
            (of(State::Pending), of(State::Running)),
            "queue {t}"
        );
    }
}

pub async fn paused_queues_are_not_leased<S: Store>(store: Arc<S>) {
    for (p, id, t) in [("p", "a", "A"), ("p", "b", "B"), ("q", "a", "A")] {
        created(&*store, typed(p, id, t, 1)).await;
    }
    store.set_queue_paused("p", "A", true).await.unwrap();
    // Idempotent.
    store.set_queue_paused("p", "A", true).await.unwrap();
    let ids = |leased: Vec<(Operation, serde_json::Value)>| {
        let mut ids: Vec<_> = leased.iter().map(|(op, _)| op.name.to_string()).collect();
        ids.sort();
        ids
    };
    let lease = || store.lease(leasing(&["A", "B"], 10, 0, 2_000));
    assert_eq!(
        ids(lease().await.unwrap()),
        ["projects/p/operations/b", "projects/q/operations/a"]
    );
    created(&*store, typed("p", "b2", "B", 2)).await;
    store.set_queue_paused("p", EVERY_TYPE, true).await.unwrap();
    assert_eq!(
        store.paused_queues(None).await.unwrap(),
        [("p".into(), "-".into()), ("p".into(), "A".into())]
    );
    assert!(lease().await.unwrap().is_empty());
    // A's own pause goes; the project's still holds it.
    store.set_queue_paused("p", "A", false).await.unwrap();
    assert!(lease().await.unwrap().is_empty());
    store.set_queue_paused("q", "B", true).await.unwrap();
    assert_eq!(
        store.paused_queues(Some("p")).await.unwrap(),
        [("p".into(), "-".into())]
    );
    // Resuming every type removes every pause of the project, and no other's.
    store.set_queue_paused("p", "A", true).await.unwrap();
    store
        .set_queue_paused("p", EVERY_TYPE, false)
        .await
        .unwrap();
    assert_eq!(
        store.paused_queues(None).await.unwrap(),
        [("q".into(), "B".into())]
    );
    assert_eq!(
        ids(lease().await.unwrap()),
        ["projects/p/operations/a", "projects/p/operations/b2"]
    );
}

/// The counts by (project, type, state) the store keeps: what every stored operation is,
/// through inserts (batches and imports too), updates that change the state or not, and
/// deletes.
pub async fn state_counts_follow_every_change<S: Store>(store: Arc<S>) {
    async fn expected<S: Store>(store: &S) -> Vec<(String, String, State, u64)> {
        let mut counts = std::collections::BTreeMap::new();
        for p in ["p", "q"] {
            let all = store
                .list(ListQuery::unbounded(project(p), None, 1_000))
                .await
                .unwrap()
                .operations;
            for op in all {
                *counts
                    .entry((p.to_string(), op.op_type.clone(), op.state.as_str()))
                    .or_insert(0u64) += 1;
            }
        }
        counts
            .into_iter()
            .map(|((p, t, s), n)| (p, t, s.parse().unwrap(), n))
            .collect()
    }
    async fn kept<S: Store>(store: &S) -> Vec<(String, String, State, u64)> {
        let mut kept: Vec<_> = store
            .state_counts()
            .await
            .unwrap()
            .into_iter()
            .map(|c| (c.project, c.op_type, c.state, c.count))
            .collect();
        kept.sort_by(|a, b| (&a.0, &a.1, a.2.as_str()).cmp(&(&b.0, &b.1, b.2.as_str())));
        kept
    }
    assert_eq!(kept(&*store).await, []);
    let mut ops = Vec::new();
    for i in 0..12 {
        let t = ["A", "B"][i % 2];
        ops.push(
            created(
                &*store,
                typed(["p", "q"][i % 3 / 2], &format!("o{i}"), t, i as i64),
            )
            .await,
        );
    }
    // A batch, and an import of a done operation.
    store
        .insert_batch(vec![
            new(typed("p", "batch1", "C", 50)),
            new(typed("p", "batch2", "C", 51)),
        ])
        .await
        .unwrap();
    let imported = done(typed("q", "imported", "A", 60), State::Succeeded, 70);
    store
        .import(vec![(imported, serde_json::json!({}))])
        .await
        .unwrap();
    assert_eq!(kept(&*store).await, expected(&*store).await);
    // Through RUNNING to each end, a heartbeat-like write that keeps the state, a delete.
    for (i, op) in ops.iter_mut().enumerate().take(8) {
        let mut running = op.clone();
        running.move_to(State::Running, None, Timestamp(100));
        *op = store.update(running).await.unwrap();
        let same = op.clone();
        *op = store.update(same).await.unwrap();
        if i % 4 != 0 {
            let end = [State::Succeeded, State::Failed, State::Cancelled][i % 3];
            *op = store.update(done(op.clone(), end, 200)).await.unwrap();
        }
    }
    store.delete(&ops[1]).await.unwrap();
    assert_eq!(kept(&*store).await, expected(&*store).await);
    assert!(kept(&*store).await.len() >= 6);
}
