//! Conformance: leasing (order, running and export limits, projects, fair turns).

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
