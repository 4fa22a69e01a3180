//! Conformance: inserts in batches, all or nothing.

use super::*;

pub async fn insert_batch_is_all_or_nothing<S: Store>(store: Arc<S>) {
    let with_request = |id: &str, request: &str| {
        let mut op = operation("p", id, 1);
        op.request_id = Some(request.into());
        new(op)
    };
    let names = |inserted: &[Inserted]| {
        inserted
            .iter()
            .map(|i| match i {
                Inserted::Created(op) => format!("created {}", op.name.id()),
                Inserted::Existing(op) => format!("existing {}", op.name.id()),
            })
            .collect::<Vec<_>>()
    };
    // A request id repeated within the batch answers the first.
    let first = store
        .insert_batch(vec![
            with_request("a", "ra"),
            new(operation("p", "b", 2)),
            with_request("c", "ra"),
        ])
        .await
        .unwrap();
    assert_eq!(names(&first), ["created a", "created b", "existing a"]);
    // A taken name anywhere: nothing of the batch is written.
    let taken = store
        .insert_batch(vec![
            new(operation("p", "d", 3)),
            with_request("e", "ra"),
            new(operation("p", "b", 4)),
        ])
        .await;
    assert!(
        matches!(taken, Err(Error::AlreadyExists(ref n)) if n.id() == "b"),
        "{taken:?}"
    );
    let missing = Name::new(&project("p"), "d").unwrap();
    assert_eq!(store.get(&missing).await.unwrap(), None);
    // The queue limit counts the batch: 2 PENDING, a limit of 4, a batch of 3.
    let limited = |id: &str| NewOperation {
        max_queued: 4,
        ..new(operation("p", id, 5))
    };
    let full = store
        .insert_batch(vec![limited("f"), limited("g"), limited("h")])
        .await;
    assert!(
        matches!(full, Err(Error::QueueFull { limit: 4 })),
        "{full:?}"
    );
    for id in ["f", "g"] {
        let name = Name::new(&project("p"), id).unwrap();
        assert_eq!(store.get(&name).await.unwrap(), None, "{id}");
    }
    let fits = store
        .insert_batch(vec![limited("f"), limited("g")])
        .await
        .unwrap();
    assert_eq!(names(&fits), ["created f", "created g"]);
    assert!(store.insert_batch(vec![]).await.unwrap().is_empty());
}
