//! Conformance: trees of operations (`Trees`): the parent check of an insert, the lease
//! of children only under a RUNNING parent, the cascade recorded by the parent's move, and
//! the cascade's writes.

use super::*;

fn child(id: &str, parent: &Operation, created: i64) -> Operation {
    let mut op = operation("p", id, created);
    op.op_type = "PART".into();
    op.parent = Some(parent.name.clone());
    op.ancestors = parent.ancestors + 1;
    op
}

pub async fn children_need_an_open_parent_and_mark_it<S: Store>(store: Arc<S>) {
    let parent = created(&*store, operation("p", "root", 1)).await;
    assert!(!parent.has_children);
    let first = created(&*store, child("a", &parent, 2)).await;
    assert_eq!(first.parent.as_ref(), Some(&parent.name));
    // The first child marks the parent and bumps its version: a write based on the
    // parent as read before fails.
    let marked = store.get(&parent.name).await.unwrap().unwrap();
    assert!(marked.has_children);
    assert_eq!(marked.version, parent.version + 1);
    assert!(matches!(
        store.update(parent.clone()).await,
        Err(Error::Conflict)
    ));
    // Later children leave it as it is.
    created(&*store, child("b", &parent, 3)).await;
    let again = store.get(&parent.name).await.unwrap().unwrap();
    assert_eq!(again.version, marked.version);
    assert_eq!(store.open_children(&parent.name).await.unwrap(), 2);
    let listed = store
        .list(ListQuery {
            project: project("p"),
            filter: filter::parse(r#"metadata.parent = "projects/p/operations/root""#).unwrap(),
            after: None,
            limit: 10,
            scan_budget: usize::MAX,
        })
        .await
        .unwrap()
        .operations;
    assert_eq!(listed.len(), 2);
    // A missing parent, and a done one: refused, nothing written, in a batch too.
    let ghost = Operation {
        name: Name::new(&project("p"), "ghost").unwrap(),
        ..parent.clone()
    };
    let refused = store.insert(new(child("c", &ghost, 4))).await;
    assert!(
        matches!(refused, Err(Error::ParentClosed(ref n)) if n == &ghost.name),
        "{refused:?}"
    );
    let ended = store
        .update(done(again, State::Succeeded, 5))
        .await
        .unwrap();
    let refused = store
        .insert_batch(vec![
            new(operation("p", "d", 6)),
            new(child("e", &ended, 6)),
        ])
        .await;
    assert!(
        matches!(refused, Err(Error::ParentClosed(_))),
        "{refused:?}"
    );
    for id in ["c", "d", "e"] {
        let name = Name::new(&project("p"), id).unwrap();
        assert_eq!(store.get(&name).await.unwrap(), None, "{id}");
    }
}

pub async fn children_are_leased_only_under_a_running_parent<S: Store>(store: Arc<S>) {
    let mut parent = operation("p", "root", 1);
    parent.op_type = "ROOT".into();
    let parent = created(&*store, parent).await;
    created(&*store, child("a", &parent, 2)).await;
    let lease = |types: &'static [&'static str]| store.lease(leasing(types, 10, 0, 2_000));
    assert!(lease(&["PART"]).await.unwrap().is_empty(), "parent PENDING");
    let leased = lease(&["ROOT"]).await.unwrap();
    assert_eq!(leased.len(), 1);
    let got = lease(&["PART"]).await.unwrap();
    assert_eq!(got.len(), 1, "parent RUNNING");
    // A second child, the parent cancelled (CANCELLING): not leased.
    created(&*store, child("b", &parent, 3)).await;
    let mut cancelling = store.get(&parent.name).await.unwrap().unwrap();
    cancelling.state = State::Cancelling;
    store.update(cancelling).await.unwrap();
    assert!(
        lease(&["PART"]).await.unwrap().is_empty(),
        "parent CANCELLING"
    );
}

pub async fn a_parent_that_closes_records_its_cascade<S: Store>(store: Arc<S>) {
    let lonely = created(&*store, operation("p", "lonely", 1)).await;
    store
        .update(done(lonely, State::Succeeded, 2))
        .await
        .unwrap();
    let parent = created(&*store, operation("p", "root", 3)).await;
    for (i, id) in ["a", "b", "c"].into_iter().enumerate() {
        created(&*store, child(id, &parent, 4 + i as i64)).await;
    }
    assert!(
        store.cascades(10).await.unwrap().is_empty(),
        "none closed with children"
    );
    let parent = store.get(&parent.name).await.unwrap().unwrap();
    let ended = store.update(done(parent, State::Failed, 10)).await.unwrap();
    assert_eq!(
        store.cascades(10).await.unwrap(),
        std::slice::from_ref(&ended.name)
    );
    // The cascade's writes: each open child through `cancel`, `limit` at a time.
    let cancel: Start = Arc::new(|op: Operation| done(op, State::Cancelled, 11));
    let first = store.cascade(&ended.name, 2, cancel.clone()).await.unwrap();
    assert_eq!(first.len(), 2);
    assert!(
        first
            .iter()
            .all(|op| op.state == State::Cancelled && op.version == 2)
    );
    assert_eq!(store.open_children(&ended.name).await.unwrap(), 1);
    let rest = store.cascade(&ended.name, 2, cancel.clone()).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert!(
        store
            .cascade(&ended.name, 2, cancel)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.open_children(&ended.name).await.unwrap(), 0);
    // Recorded until ended, once.
    assert_eq!(
        store.cascades(10).await.unwrap(),
        std::slice::from_ref(&ended.name)
    );
    store.end_cascade(&ended.name).await.unwrap();
    store.end_cascade(&ended.name).await.unwrap();
    assert!(store.cascades(10).await.unwrap().is_empty());
    // A copy of a store brings the cascades under way with it.
    let copied = Operation {
        name: Name::new(&project("p"), "copied").unwrap(),
        ..ended
    };
    store
        .import(vec![(copied.clone(), serde_json::json!({}))])
        .await
        .unwrap();
    assert_eq!(
        store.cascades(10).await.unwrap(),
        std::slice::from_ref(&copied.name)
    );
}
