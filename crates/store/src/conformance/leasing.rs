//! Conformance: leasing (order, running, export and key limits, projects, fair turns).

use super::*;

pub async fn lease_takes_priority_then_age_within_limits<S: Store>(store: Arc<S>) {
    let submit = async |p: &str, id: &str, ty: &str, priority: i32, created: i64| {
        let mut op = operation(p, id, created);
        op.op_type = ty.into();
        op.priority = priority;
        store
            .insert(NewOperation {
                operation: op,
                payload: serde_json::json!({"id": id}),
                max_queued: 100,
            })
            .await
            .unwrap();
    };
    submit("p", "low-old", "A", 1, 1).await;
    submit("p", "high-new", "A", 9, 5).await;
    submit("p", "high-old", "A", 9, 2).await;
    submit("p", "other-type", "B", 99, 1).await;
    submit("q", "q-mid", "A", 5, 1).await;
    let names = |leased: &[(Operation, serde_json::Value)]| -> Vec<String> {
        leased
            .iter()
            .map(|(op, _)| op.name.id().to_string())
            .collect()
    };
    // Projects take turns; within one, priority then age.
    let first = store.lease(leasing(&["A"], 2, 0, 100)).await.unwrap();
    assert_eq!(names(&first), ["high-old", "q-mid"]);
    let (op, payload) = &first[0];
    assert_eq!(payload, &serde_json::json!({"id": "high-old"}));
    assert_eq!(op.state, State::Running);
    assert_eq!(op.version, 2);
    assert_eq!(store.get(&op.name).await.unwrap().as_ref(), Some(op));
    // p runs one: with a limit of 2 it may run one more, and then none.
    let second = store.lease(leasing(&["A"], 5, 2, 100)).await.unwrap();
    assert_eq!(names(&second), ["high-new"]);
    assert!(
        store
            .lease(leasing(&["A", "B"], 5, 2, 100))
            .await
            .unwrap()
            .is_empty()
    );
    let third = store.lease(leasing(&["A", "B"], 5, 0, 100)).await.unwrap();
    assert_eq!(names(&third), ["other-type", "low-old"]);
    assert!(
        store
            .lease(leasing(&["A", "B"], 5, 0, 100))
            .await
            .unwrap()
            .is_empty()
    );
}
pub async fn lease_keeps_to_the_given_projects<S: Store>(store: Arc<S>) {
    for (p, at) in [("a", 1), ("b", 2), ("c", 3)] {
        created(&*store, operation(p, "x", at)).await;
    }
    let within = |projects: &[&str]| LeaseQuery {
        projects: Some(projects.iter().map(|p| p.to_string()).collect()),
        ..leasing(&["EXPORT_IMAGE"], 10, 0, 100)
    };
    assert!(store.lease(within(&[])).await.unwrap().is_empty());
    let leased = store.lease(within(&["c", "a"])).await.unwrap();
    let mut projects: Vec<String> = leased
        .iter()
        .map(|(op, _)| op.name.project().as_str().to_string())
        .collect();
    projects.sort();
    assert_eq!(projects, ["a", "c"]);
    let rest = store
        .lease(leasing(&["EXPORT_IMAGE"], 10, 0, 100))
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].0.name.project().as_str(), "b");
}
pub async fn lease_caps_exports_per_project<S: Store>(store: Arc<S>) {
    let submit = async |p: &str, id: &str, ty: &str, created: i64| {
        let mut op = operation(p, id, created);
        op.op_type = ty.into();
        created_op(&*store, op).await
    };
    for i in 0..4 {
        submit("p", &format!("e{i}"), "EXPORT_IMAGE", i).await;
        submit("q", &format!("e{i}"), "EXPORT_TABLE", i).await;
    }
    submit("p", "other", "INGEST_IMAGE", 10).await;
    store.set_max_concurrent_exports("p", 2).await.unwrap();
    let capped = |limit| LeaseQuery {
        max_exports: 3,
        ..leasing(
            &["EXPORT_IMAGE", "EXPORT_TABLE", "INGEST_IMAGE"],
            limit,
            0,
            100,
        )
    };
    let leased = store.lease(capped(100)).await.unwrap();
    let mut got: Vec<String> = leased
        .iter()
        .map(|(op, _)| format!("{}/{}", op.name.project().as_str(), op.name.id()))
        .collect();
    got.sort();
    // p: its own cap of 2 exports (not INGEST_, which is no export); q: the plan's 3.
    assert_eq!(got, ["p/e0", "p/e1", "p/other", "q/e0", "q/e1", "q/e2"]);
    assert!(store.lease(capped(100)).await.unwrap().is_empty());
    // An export that ends frees its place.
    let (first, _) = &leased[0];
    let first = store.get(&first.name).await.unwrap().unwrap();
    let ended = store
        .update(done(first.clone(), State::Succeeded, 50))
        .await
        .unwrap();
    let next = store.lease(capped(100)).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].0.name.project(), ended.name.project());
    // 0 = the plan maximum (3): p gets one more; without a cap, every export goes.
    store.set_max_concurrent_exports("p", 0).await.unwrap();
    assert_eq!(store.lease(capped(100)).await.unwrap().len(), 1);
    assert_eq!(
        store
            .lease(leasing(&["EXPORT_IMAGE", "EXPORT_TABLE"], 100, 0, 100))
            .await
            .unwrap()
            .len(),
        1
    );
}
pub async fn lease_takes_turns_across_projects<S: Store>(store: Arc<S>) {
    // a queues 20 (some of high priority), then b, c and d submit one each.
    for i in 0..20 {
        let mut op = operation("a", &format!("a{i:02}"), i);
        op.priority = if i % 2 == 0 { 50 } else { 100 };
        created(&*store, op).await;
    }
    for (p, at) in [("b", 100), ("c", 101), ("d", 102)] {
        created(&*store, operation(p, "x", at)).await;
    }
    let mut order = Vec::new();
    for _ in 0..8 {
        for (op, _) in store
            .lease(leasing(&["EXPORT_IMAGE"], 1, 0, 1000))
            .await
            .unwrap()
        {
            order.push(format!("{}/{}", op.name.project().as_str(), op.name.id()));
        }
    }
    // Every project's one operation starts within one round of the four projects; a's go
    // by priority, then age.
    assert_eq!(
        order,
        [
            "a/a01", "b/x", "c/x", "d/x", "a/a03", "a/a05", "a/a07", "a/a09"
        ]
    );
    // A lease of many takes one per project per round.
    for (p, at) in [("b", 200), ("c", 201)] {
        created(&*store, operation(p, "y", at)).await;
    }
    let many = store
        .lease(leasing(&["EXPORT_IMAGE"], 4, 0, 1000))
        .await
        .unwrap();
    let projects: Vec<String> = many
        .iter()
        .map(|(op, _)| op.name.project().as_str().to_string())
        .collect();
    // The previous lease ended on a: b and c come first, then a again.
    assert_eq!(projects, ["b", "c", "a", "a"]);
}

/// Submits an operation of `ty` with `key` (or none) in `p`.
async fn keyed<S: Store>(
    store: &S,
    p: &str,
    id: &str,
    ty: &str,
    key: Option<&str>,
    created: i64,
) -> Operation {
    let mut op = operation(p, id, created);
    op.op_type = ty.into();
    op.concurrency_key = key.map(str::to_string);
    created_op(store, op).await
}

/// `project/id` of each leased operation, sorted.
fn leased_names(leased: &[(Operation, serde_json::Value)]) -> Vec<String> {
    let mut names: Vec<String> = leased
        .iter()
        .map(|(op, _)| format!("{}/{}", op.name.project().as_str(), op.name.id()))
        .collect();
    names.sort();
    names
}

pub async fn lease_limits_each_concurrency_key<S: Store>(store: Arc<S>) {
    // A allows 1 per key, B 2 per key, C has no key_concurrency. k1's operations are the
    // oldest, so they head each queue: the lease must look past them.
    for i in 0..3 {
        keyed(&*store, "p", &format!("a-k1-{i}"), "A", Some("k1"), i).await;
        keyed(&*store, "p", &format!("b-k1-{i}"), "B", Some("k1"), i).await;
    }
    keyed(&*store, "p", "a-k2", "A", Some("k2"), 5).await;
    keyed(&*store, "p", "a-none-0", "A", None, 6).await;
    keyed(&*store, "p", "a-none-1", "A", None, 7).await;
    keyed(&*store, "p", "c-k1-0", "C", Some("k1"), 8).await;
    keyed(&*store, "p", "c-k1-1", "C", Some("k1"), 9).await;
    keyed(&*store, "q", "a-k1-0", "A", Some("k1"), 10).await;
    keyed(&*store, "q", "a-k1-1", "A", Some("k1"), 11).await;
    let limited = |limit| LeaseQuery {
        key_limits: [("A".to_string(), 1), ("B".to_string(), 2)].into(),
        ..leasing(&["A", "B", "C"], limit, 0, 1000)
    };
    let leased = store.lease(limited(100)).await.unwrap();
    // Per (project, type, key): p's A/k1 one, B/k1 two; other keys, unkeyed operations,
    // a type without a limit and another project's same key are not held back.
    assert_eq!(
        leased_names(&leased),
        [
            "p/a-k1-0",
            "p/a-k2",
            "p/a-none-0",
            "p/a-none-1",
            "p/b-k1-0",
            "p/b-k1-1",
            "p/c-k1-0",
            "p/c-k1-1",
            "q/a-k1-0"
        ]
    );
    assert!(store.lease(limited(100)).await.unwrap().is_empty());
    let held = |id: &str| Name::new(&project("p"), id).unwrap();
    for id in ["a-k1-1", "a-k1-2", "b-k1-2"] {
        let op = store.get(&held(id)).await.unwrap().unwrap();
        assert_eq!(op.state, State::Pending);
        assert_eq!(op.concurrency_key.as_deref(), Some("k1"));
    }
    let ended = |id: &str| {
        let store = store.clone();
        let name = held(id);
        async move {
            let op = store.get(&name).await.unwrap().unwrap();
            store.update(done(op, State::Succeeded, 500)).await.unwrap()
        }
    };
    // CANCELLING still counts: p's A/k1 stays at its limit.
    let running = store.get(&held("a-k1-0")).await.unwrap().unwrap();
    let mut cancelling = running.clone();
    cancelling.move_to(State::Cancelling, None, Timestamp(400));
    store.update(cancelling).await.unwrap();
    assert!(store.lease(limited(100)).await.unwrap().is_empty());
    // Its end lets the next of the key go, and only one.
    ended("a-k1-0").await;
    let next = store.lease(limited(100)).await.unwrap();
    assert_eq!(leased_names(&next), ["p/a-k1-1"]);
    // An end of B/k1 frees one place of its two.
    ended("b-k1-0").await;
    let next = store.lease(limited(100)).await.unwrap();
    assert_eq!(leased_names(&next), ["p/b-k1-2"]);
    // A lease without key limits is not held (0 = unlimited).
    let unlimited = store
        .lease(LeaseQuery {
            key_limits: [("A".to_string(), 0)].into(),
            ..leasing(&["A"], 100, 0, 1000)
        })
        .await
        .unwrap();
    assert_eq!(leased_names(&unlimited), ["p/a-k1-2", "q/a-k1-1"]);
}

pub async fn lease_limits_keys_with_turns_across_projects<S: Store>(store: Arc<S>) {
    // a's queue is all one key, at most 1 running; b and c have unkeyed work. Leases of
    // one each: a gives one, then its held key does not stall the turns of the others.
    for i in 0..5 {
        keyed(&*store, "a", &format!("x{i}"), "A", Some("k"), i).await;
    }
    keyed(&*store, "b", "y0", "A", None, 10).await;
    keyed(&*store, "b", "y1", "A", None, 11).await;
    keyed(&*store, "c", "z0", "A", Some("k"), 12).await;
    let one = LeaseQuery {
        key_limits: [("A".to_string(), 1)].into(),
        ..leasing(&["A"], 1, 0, 1000)
    };
    let mut order = Vec::new();
    for _ in 0..6 {
        order.extend(leased_names(&store.lease(one.clone()).await.unwrap()));
    }
    assert_eq!(order, ["a/x0", "b/y0", "c/z0", "b/y1"]);
    // Two keyed leases in one call take no more than the key's limit.
    keyed(&*store, "d", "w0", "A", Some("k"), 20).await;
    keyed(&*store, "d", "w1", "A", Some("k"), 21).await;
    let two = LeaseQuery {
        key_limits: [("A".to_string(), 1)].into(),
        ..leasing(&["A"], 10, 0, 1000)
    };
    assert_eq!(leased_names(&store.lease(two).await.unwrap()), ["d/w0"]);
}

pub async fn concurrency_keys_are_kept_and_filtered<S: Store>(store: Arc<S>) {
    let first = keyed(&*store, "p", "k-0", "A", Some("k"), 1).await;
    keyed(&*store, "p", "k-1", "A", Some("k"), 2).await;
    keyed(&*store, "p", "none", "A", None, 3).await;
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
    assert_eq!(list("metadata.concurrencyKey = k").await, ["k-0", "k-1"]);
    assert_eq!(list("NOT metadata.concurrencyKey:*").await, ["none"]);
    // A key no backend can index is refused, and nothing is written.
    let mut bad = operation("p", "bad", 4);
    bad.concurrency_key = Some("a\0b".into());
    match store.insert(new(bad)).await {
        Err(Error::InvalidArgument(message)) => assert!(message.contains("concurrencyKey")),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    // Copied whole: after a scan and an import the key still limits leases.
    let scanned = store.scan(None, 10).await.unwrap();
    for (op, _) in &scanned {
        store.delete(op).await.unwrap();
    }
    store.import(scanned).await.unwrap();
    let limited = LeaseQuery {
        key_limits: [("A".to_string(), 1)].into(),
        ..leasing(&["A"], 10, 0, 1000)
    };
    let leased = store.lease(limited.clone()).await.unwrap();
    assert_eq!(leased_names(&leased), ["p/k-0", "p/none"]);
    assert_eq!(leased[0].0.concurrency_key.as_deref(), Some("k"));
    // Updates keep it (the leased operation, then its end).
    let running = store.get(&first.name).await.unwrap().unwrap();
    assert_eq!(running.concurrency_key.as_deref(), Some("k"));
    assert!(store.lease(limited.clone()).await.unwrap().is_empty());
    store
        .update(done(running, State::Failed, 50))
        .await
        .unwrap();
    assert_eq!(
        leased_names(&store.lease(limited).await.unwrap()),
        ["p/k-1"]
    );
}

pub async fn concurrent_leases_keep_key_limits<S: Store>(store: Arc<S>) {
    // Five projects, two keys each, limit 1: concurrent leases (walking the projects from
    // different places) take exactly one of each key, and none fails.
    for p in ["a", "b", "c", "d", "e"] {
        for i in 0..6 {
            let key = if i % 2 == 0 { "even" } else { "odd" };
            keyed(&*store, p, &format!("{key}-{i}"), "A", Some(key), i).await;
        }
    }
    let query = LeaseQuery {
        key_limits: [("A".to_string(), 1)].into(),
        ..leasing(&["A"], 3, 0, 1000)
    };
    let mut takers = Vec::new();
    for _ in 0..6 {
        let (store, query) = (store.clone(), query.clone());
        takers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..5 {
                got.extend(store.lease(query.clone()).await.unwrap());
            }
            got
        }));
    }
    let mut all = Vec::new();
    for taker in takers {
        all.extend(taker.await.unwrap());
    }
    // Whatever a lease passed over (another lease held the project) goes now.
    all.extend(
        store
            .lease(LeaseQuery {
                limit: 100,
                ..query.clone()
            })
            .await
            .unwrap(),
    );
    let mut groups: Vec<String> = all
        .iter()
        .map(|(op, _)| {
            format!(
                "{}/{}",
                op.name.project().as_str(),
                op.concurrency_key.as_deref().unwrap()
            )
        })
        .collect();
    groups.sort();
    let expected: Vec<String> = ["a", "b", "c", "d", "e"]
        .iter()
        .flat_map(|p| [format!("{p}/even"), format!("{p}/odd")])
        .collect();
    assert_eq!(groups, expected);
}

/// `Leasing::running` counts what a lease's limits count: a project's RUNNING and
/// CANCELLING operations, its exports among them, those of one type and key, and the
/// project's own export cap; PENDING and done operations, and other projects', are not
/// counted.
pub async fn running_counts_what_leases_are_limited_by<S: Store>(store: Arc<S>) {
    let store = &*store;
    keyed(store, "p", "ingest", "INGEST_IMAGE", Some("k"), 1).await;
    keyed(store, "p", "a", "EXPORT_IMAGE", Some("k"), 2).await;
    keyed(store, "p", "b", "EXPORT_IMAGE", Some("k"), 3).await;
    keyed(store, "p", "c", "EXPORT_IMAGE", None, 4).await;
    keyed(store, "p", "d", "EXPORT_TABLE", Some("k"), 5).await;
    keyed(store, "q", "x", "EXPORT_IMAGE", Some("k"), 6).await;
    let none = crate::Running::default();
    assert_eq!(
        store.running("p", "EXPORT_IMAGE", Some("k")).await.unwrap(),
        none
    );
    let types = ["EXPORT_IMAGE", "EXPORT_TABLE", "INGEST_IMAGE"];
    let leased = store.lease(leasing(&types, 100, 0, 1_000)).await.unwrap();
    assert_eq!(leased.len(), 6);
    let leased = |id: &str| {
        let (op, _) = leased
            .iter()
            .find(|(op, _)| op.name.project().as_str() == "p" && op.name.id() == id)
            .unwrap();
        op.clone()
    };
    let mut b = leased("b");
    let cancelled = Outcome::Error(Status::new(Code::Cancelled, "cancelled"));
    b.apply(Event::Cancel, Some(cancelled), Timestamp(1_000));
    assert_eq!(store.update(b).await.unwrap().state, State::Cancelling);
    store
        .update(done(leased("c"), State::Succeeded, 1_000))
        .await
        .unwrap();
    keyed(store, "p", "e", "EXPORT_IMAGE", Some("k"), 7).await;

    let running = store.running("p", "EXPORT_IMAGE", Some("k")).await.unwrap();
    let expected = crate::Running {
        all: 4,
        exports: 3,
        keyed: 2,
        own_export_cap: 0,
    };
    assert_eq!(running, expected);
    store.set_max_concurrent_exports("p", 5).await.unwrap();
    let unkeyed = store.running("p", "EXPORT_IMAGE", None).await.unwrap();
    let expected = crate::Running {
        keyed: 0,
        own_export_cap: 5,
        ..expected
    };
    assert_eq!(unkeyed, expected);
    let other_type = store.running("p", "EXPORT_TABLE", Some("k")).await.unwrap();
    assert_eq!(other_type.keyed, 1);
    let q = store.running("q", "EXPORT_IMAGE", Some("k")).await.unwrap();
    let expected = crate::Running {
        all: 1,
        exports: 1,
        keyed: 1,
        own_export_cap: 0,
    };
    assert_eq!(q, expected);
}
