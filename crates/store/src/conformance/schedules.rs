//! Conformance: schedules (kept whole, listed by name, written with a compare-and-set, found
//! by their next fire time) and the schedule each operation records.

use super::*;
use longrun_types::Schedule;
use longrun_types::schedule::OverlapPolicy;

fn schedule(p: &str, id: &str, next: Option<i64>) -> Schedule {
    Schedule {
        name: Schedule::name_of(&project(p), id),
        cron: "*/5 * * * * *".into(),
        time_zone: "Europe/Paris".into(),
        operation: serde_json::json!({"type": "EXPORT_IMAGE", "payload": {"a": [1, "é"]}}),
        overlap_policy: OverlapPolicy::CancelPrevious,
        paused: next.is_none(),
        next_fire_time: next.map(Timestamp),
        last_fire_time: Some(Timestamp(1_000)),
        last_operation: Some("projects/p/operations/x".into()),
        create_time: Timestamp(500),
        update_time: Timestamp(500),
        version: 0,
    }
}

pub async fn schedules_are_kept_and_listed_by_name<S: Store>(store: Arc<S>) {
    let b = store
        .create_schedule(schedule("p", "b", Some(10_000)))
        .await
        .unwrap()
        .expect("created");
    assert_eq!(b.version, 1);
    assert_eq!(
        b,
        Schedule {
            version: 1,
            ..schedule("p", "b", Some(10_000))
        }
    );
    for (p, id) in [("p", "a"), ("p", "c"), ("q", "a")] {
        assert!(
            store
                .create_schedule(schedule(p, id, None))
                .await
                .unwrap()
                .is_some()
        );
    }
    // A name taken: nothing written.
    let again = Schedule {
        cron: "0 0 * * *".into(),
        ..schedule("p", "b", Some(1))
    };
    assert_eq!(store.create_schedule(again).await.unwrap(), None);
    assert_eq!(
        store.schedule("projects/p/schedules/b").await.unwrap(),
        Some(b.clone())
    );
    assert_eq!(
        store.schedule("projects/p/schedules/z").await.unwrap(),
        None
    );
    let ids = |list: Vec<Schedule>| list.iter().map(|s| s.id().to_string()).collect::<Vec<_>>();
    assert_eq!(
        ids(store.schedules("p", None, 10).await.unwrap()),
        ["a", "b", "c"]
    );
    assert_eq!(
        ids(store.schedules("p", None, 2).await.unwrap()),
        ["a", "b"]
    );
    assert_eq!(
        ids(store
            .schedules("p", Some("projects/p/schedules/b"), 2)
            .await
            .unwrap()),
        ["c"]
    );
    assert_eq!(ids(store.schedules("q", None, 10).await.unwrap()), ["a"]);
    // Across projects, for copying a store.
    let names = |list: Vec<Schedule>| list.into_iter().map(|s| s.name).collect::<Vec<_>>();
    assert_eq!(
        names(store.scan_schedules(None, 10).await.unwrap()),
        [
            "projects/p/schedules/a",
            "projects/p/schedules/b",
            "projects/p/schedules/c",
            "projects/q/schedules/a"
        ]
    );
    assert_eq!(
        names(
            store
                .scan_schedules(Some("projects/p/schedules/b"), 1)
                .await
                .unwrap()
        ),
        ["projects/p/schedules/c"]
    );
    assert!(
        store
            .delete_schedule("projects/p/schedules/b")
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_schedule("projects/p/schedules/b")
            .await
            .unwrap()
    );
    assert_eq!(
        store.schedule("projects/p/schedules/b").await.unwrap(),
        None
    );
    // What no backend can index is refused alike.
    let mut bad = schedule("p", "n", None);
    bad.name = "projects/p/schedules/a\0b".into();
    assert!(matches!(
        store.create_schedule(bad).await,
        Err(Error::InvalidArgument(_))
    ));
}

pub async fn schedule_updates_are_a_compare_and_set<S: Store>(store: Arc<S>) {
    let first = store
        .create_schedule(schedule("p", "s", Some(10_000)))
        .await
        .unwrap()
        .unwrap();
    let mut next = first.clone();
    next.next_fire_time = Some(Timestamp(15_000));
    next.last_fire_time = Some(Timestamp(10_000));
    let stored = store.update_schedule(next.clone()).await.unwrap();
    assert_eq!(stored.version, 2);
    assert_eq!(
        store.schedule(&first.name).await.unwrap(),
        Some(stored.clone())
    );
    // Based on the old version: refused, nothing written.
    assert!(matches!(
        store.update_schedule(first.clone()).await,
        Err(Error::Conflict)
    ));
    // Many writers from one version: exactly one wins.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (store, mut s) = (store.clone(), stored.clone());
        s.last_operation = Some(format!("projects/p/operations/{i}"));
        tasks.push(tokio::spawn(async move { store.update_schedule(s).await }));
    }
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(s) => {
                won += 1;
                assert_eq!(s.version, 3);
            }
            Err(Error::Conflict) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(won, 1);
    store.delete_schedule(&first.name).await.unwrap();
    assert!(matches!(
        store.update_schedule(stored).await,
        Err(Error::NotFound)
    ));
}

pub async fn due_schedules_come_by_next_fire_time<S: Store>(store: Arc<S>) {
    assert_eq!(store.next_fire_time().await.unwrap(), None);
    for (p, id, next) in [
        ("p", "late", Some(30_000)),
        ("q", "early", Some(10_000)),
        ("p", "mid", Some(20_000)),
        ("p", "paused", None),
    ] {
        store.create_schedule(schedule(p, id, next)).await.unwrap();
    }
    assert_eq!(
        store.next_fire_time().await.unwrap(),
        Some(Timestamp(10_000))
    );
    let ids = |list: Vec<Schedule>| list.iter().map(|s| s.id().to_string()).collect::<Vec<_>>();
    assert!(
        store
            .due_schedules(Timestamp(9_999), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        ids(store.due_schedules(Timestamp(20_000), 10).await.unwrap()),
        ["early", "mid"]
    );
    assert_eq!(
        ids(store.due_schedules(Timestamp(99_000), 2).await.unwrap()),
        ["early", "mid"]
    );
    // Advancing one moves it out of the due ones.
    let early = store
        .schedule("projects/q/schedules/early")
        .await
        .unwrap()
        .unwrap();
    store
        .update_schedule(Schedule {
            next_fire_time: Some(Timestamp(40_000)),
            ..early
        })
        .await
        .unwrap();
    assert_eq!(
        store.next_fire_time().await.unwrap(),
        Some(Timestamp(20_000))
    );
    assert_eq!(
        ids(store.due_schedules(Timestamp(99_000), 10).await.unwrap()),
        ["mid", "late", "early"]
    );
}

pub async fn operations_keep_their_schedule_and_filter_by_it<S: Store>(store: Arc<S>) {
    let mut first = operation("p", "s-1", 1);
    first.schedule = Some("projects/p/schedules/nightly".into());
    let first = created(&*store, first).await;
    let mut other = operation("p", "s-2", 2);
    other.schedule = Some("projects/p/schedules/hourly".into());
    created(&*store, other).await;
    created(&*store, operation("p", "none", 3)).await;
    assert_eq!(store.get(&first.name).await.unwrap().as_ref(), Some(&first));
    let list = |text: &str| {
        let store = store.clone();
        let filter = filter::parse(text).unwrap();
        async move {
            let query = ListQuery {
                project: project("p"),
                filter,
                after: None,
                limit: 10,
                scan_budget: usize::MAX,
            };
            let mut ids: Vec<String> = store
                .list(query)
                .await
                .unwrap()
                .operations
                .iter()
                .map(|op| op.name.id().to_string())
                .collect();
            ids.sort();
            ids
        }
    };
    assert_eq!(
        list("metadata.schedule = \"projects/p/schedules/nightly\"").await,
        ["s-1"]
    );
    assert_eq!(list("metadata.schedule:*").await, ["s-1", "s-2"]);
    assert_eq!(list("NOT metadata.schedule:*").await, ["none"]);
    // Kept through an update and a copy.
    let mut running = first.clone();
    running.apply(Event::Lease, None, Timestamp(5));
    store.update(running).await.unwrap();
    let scanned = store.scan(None, 10).await.unwrap();
    for (op, _) in &scanned {
        store.delete(op).await.unwrap();
    }
    store.import(scanned).await.unwrap();
    assert_eq!(
        list("metadata.schedule = \"projects/p/schedules/nightly\"").await,
        ["s-1"]
    );
}
