//! Conformance: inserting, reading, updating, deleting, expiring, scanning and importing
//! operations, and the values every backend must hold or refuse alike (listing: `list`).

use super::*;

pub async fn insert_then_get_returns_the_whole_record<S: Store>(store: Arc<S>) {
    let mut op = operation("p", "exports/2026/a%2Fb", 1_000);
    op.description = "d\u{e9}scription \"quoted\"".into();
    op.priority = 7;
    op.destination_uris = vec!["file:///x".into()];
    op.request_id = Some("r1".into());
    let stored = created(&*store, op.clone()).await;
    assert_eq!(stored.version, 1);
    op.version = 1;
    assert_eq!(stored, op);
    assert_eq!(store.get(&op.name).await.unwrap(), Some(op));
    let missing = Name::new(&project("p"), "nope").unwrap();
    assert_eq!(store.get(&missing).await.unwrap(), None);
}
pub async fn request_ids_deduplicate_per_project<S: Store>(store: Arc<S>) {
    let mut a = operation("p", "a", 1);
    a.request_id = Some("same".into());
    let first = created(&*store, a).await;
    let mut b = operation("p", "b", 2);
    b.request_id = Some("same".into());
    assert_eq!(
        store.insert(new(b)).await.unwrap(),
        Inserted::Existing(first)
    );
    assert_eq!(
        store
            .get(&Name::new(&project("p"), "b").unwrap())
            .await
            .unwrap(),
        None
    );
    let mut other = operation("q", "b", 3);
    other.request_id = Some("same".into());
    created(&*store, other).await;
}
pub async fn names_are_unique<S: Store>(store: Arc<S>) {
    created(&*store, operation("p", "x", 1)).await;
    match store.insert(new(operation("p", "x", 2))).await {
        Err(Error::AlreadyExists(name)) => assert_eq!(name.as_str(), "projects/p/operations/x"),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
}
pub async fn queue_limit_counts_pending_operations<S: Store>(store: Arc<S>) {
    let limited = |op| NewOperation {
        operation: op,
        payload: serde_json::Value::Null,
        max_queued: 2,
    };
    let first = created(&*store, operation("p", "1", 1)).await;
    created(&*store, operation("p", "2", 2)).await;
    match store.insert(limited(operation("p", "3", 3))).await {
        Err(Error::QueueFull { limit: 2 }) => {}
        other => panic!("expected QueueFull, got {other:?}"),
    }
    // Another project has its own queue.
    assert!(matches!(
        store.insert(limited(operation("q", "3", 3))).await.unwrap(),
        Inserted::Created(_)
    ));
    // Ending one pending operation makes room.
    store
        .update(done(first, State::Cancelled, 5))
        .await
        .unwrap();
    assert!(matches!(
        store.insert(limited(operation("p", "3", 6))).await.unwrap(),
        Inserted::Created(_)
    ));
}
pub async fn queue_limit_counts_operations_put_back_by_a_retry<S: Store>(store: Arc<S>) {
    let limited = |op| NewOperation {
        max_queued: 3,
        ..new(op)
    };
    for i in 0..3 {
        let inserted = store
            .insert(limited(operation("p", &format!("{i}"), i)))
            .await;
        assert!(matches!(inserted, Ok(Inserted::Created(_))), "{inserted:?}");
    }
    let leased = store
        .lease(leasing(&["EXPORT_IMAGE"], 2, 0, 100))
        .await
        .unwrap();
    assert_eq!(leased.len(), 2);
    // One PENDING: room for one more.
    let inserted = store.insert(limited(operation("p", "3", 3))).await;
    assert!(matches!(inserted, Ok(Inserted::Created(_))), "{inserted:?}");
    // Both leased operations go back to the queue: four PENDING, over the limit of three.
    for (mut op, _) in leased {
        op.move_to(State::Pending, None, Timestamp(50));
        store.update(op).await.unwrap();
    }
    match store.insert(limited(operation("p", "4", 4))).await {
        Err(Error::QueueFull { limit: 3 }) => {}
        other => panic!("expected QueueFull, got {other:?}"),
    }
}
/// Inserts racing each other (a backend may gather them into one transaction) still each
/// get the outcome they would get one at a time.
pub async fn concurrent_inserts_keep_every_insert_rule<S: Store + 'static>(store: Arc<S>) {
    let race = |inserts: Vec<NewOperation>| {
        let store = store.clone();
        async move {
            let tasks: Vec<_> = inserts
                .into_iter()
                .map(|n| {
                    let store = store.clone();
                    tokio::spawn(async move { store.insert(n).await })
                })
                .collect();
            let mut outcomes = Vec::new();
            for task in tasks {
                outcomes.push(task.await.unwrap());
            }
            outcomes
        }
    };
    // 40 distinct operations into a queue of 10: exactly 10 get in.
    let limited = (0..40)
        .map(|i| NewOperation {
            max_queued: 10,
            ..new(operation("limited", &format!("op{i}"), i))
        })
        .collect();
    let outcomes = race(limited).await;
    let created = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(Inserted::Created(_))))
        .count();
    let full = outcomes
        .iter()
        .filter(|o| matches!(o, Err(Error::QueueFull { limit: 10 })))
        .count();
    assert_eq!((created, full), (10, 30), "{outcomes:?}");

    // 20 submits of one request id under different names: one operation, returned to all.
    let retried = (0..20)
        .map(|i| {
            let mut op = operation("dedupe", &format!("op{i}"), i);
            op.request_id = Some("once".into());
            new(op)
        })
        .collect();
    let outcomes = race(retried).await;
    let mut kept = HashSet::new();
    let mut fresh = 0;
    for outcome in outcomes {
        match outcome.unwrap() {
            Inserted::Created(op) => {
                fresh += 1;
                kept.insert(op.name);
            }
            Inserted::Existing(op) => {
                kept.insert(op.name);
            }
        }
    }
    assert_eq!((fresh, kept.len()), (1, 1));

    // 10 inserts of one name: one wins, the others find it taken.
    let same = (0..10).map(|i| new(operation("named", "x", i))).collect();
    let outcomes = race(same).await;
    let won = outcomes.iter().filter(|o| o.is_ok()).count();
    let taken = outcomes
        .iter()
        .filter(|o| matches!(o, Err(Error::AlreadyExists(_))))
        .count();
    assert_eq!((won, taken), (1, 9), "{outcomes:?}");
}
pub async fn update_is_a_compare_and_set<S: Store>(store: Arc<S>) {
    let op = created(&*store, operation("p", "x", 1)).await;
    let mut running = op.clone();
    running.move_to(State::Running, None, Timestamp(2));
    running.start_time = Some(Timestamp(2));
    let stored = store.update(running.clone()).await.unwrap();
    assert_eq!(stored.version, 2);
    assert_eq!(stored.state, State::Running);
    // A writer still holding version 1 loses.
    let stale = done(op, State::Cancelled, 3);
    assert!(matches!(store.update(stale).await, Err(Error::Conflict)));
    assert_eq!(store.get(&stored.name).await.unwrap(), Some(stored));
    let ghost = operation("p", "ghost", 1);
    assert!(matches!(store.update(ghost).await, Err(Error::NotFound)));
}
pub async fn concurrent_updates_have_exactly_one_winner<S: Store>(store: Arc<S>) {
    for round in 0..20 {
        let op = created(&*store, operation("p", &format!("race{round}"), round)).await;
        let mut tasks = Vec::new();
        for (i, state) in [
            State::Cancelled,
            State::Running,
            State::Failed,
            State::Cancelled,
        ]
        .into_iter()
        .enumerate()
        {
            let store = store.clone();
            let mut attempt = op.clone();
            attempt.move_to(state, None, Timestamp(100 + i as i64));
            tasks.push(tokio::spawn(async move {
                store.update(attempt).await.map(|o| o.state)
            }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                Ok(state) => winners.push(state),
                Err(Error::Conflict) => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        let stored = store.get(&op.name).await.unwrap().unwrap();
        assert_eq!(stored.state, winners[0]);
        assert_eq!(stored.version, 2);
    }
}
pub async fn delete_is_a_compare_and_set<S: Store>(store: Arc<S>) {
    let op = created(&*store, operation("p", "x", 1)).await;
    let stale = Operation {
        version: 7,
        ..op.clone()
    };
    assert!(matches!(store.delete(&stale).await, Err(Error::Conflict)));
    store.delete(&op).await.unwrap();
    assert_eq!(store.get(&op.name).await.unwrap(), None);
    assert!(matches!(store.delete(&op).await, Err(Error::NotFound)));
}
/// The operation a retry retries is kept with it, never changed by an update, copied by a
/// scan and an import, and filtered on with the name as typed (as `name` literals are).
pub async fn retries_are_kept_and_filtered<S: Store>(store: Arc<S>) {
    let original = created(&*store, operation("p", "café", 1)).await;
    let original = store
        .update(done(original, State::Failed, 2))
        .await
        .unwrap();
    let mut retry = operation("p", "retry", 3);
    retry.retry_of = Some(original.name.clone());
    let retry = created(&*store, retry).await;
    created(&*store, operation("p", "other", 4)).await;
    assert_eq!(store.get(&retry.name).await.unwrap().as_ref(), Some(&retry));
    let mut running = retry.clone();
    running.move_to(State::Running, None, Timestamp(5));
    let running = store.update(running).await.unwrap();
    assert_eq!(running.retry_of.as_ref(), Some(&original.name));
    let ids = |text: &'static str| {
        let store = store.clone();
        async move {
            let expr = filter::parse(text).unwrap();
            let names = collect_all(&*store, "p", expr, 10).await;
            names.iter().map(|n| n.id().to_string()).collect::<Vec<_>>()
        }
    };
    for text in [
        "metadata.retryOf = \"projects/p/operations/café\"",
        "metadata.retryOf = \"projects/p/operations/caf%c3%a9\"",
        "metadata.retryOf : \"*é\"",
        "metadata.retryOf:*",
    ] {
        assert_eq!(ids(text).await, ["retry"], "{text}");
    }
    assert_eq!(
        ids("NOT metadata.retryOf:*").await,
        ["other", "caf%C3%A9"],
        "newest first"
    );
    let scanned = store.scan(None, 10).await.unwrap();
    for (op, _) in &scanned {
        store.delete(op).await.unwrap();
    }
    store.import(scanned).await.unwrap();
    assert_eq!(
        store.get(&retry.name).await.unwrap().as_ref(),
        Some(&running)
    );
    assert_eq!(
        ids("metadata.retryOf = \"projects/p/operations/café\"").await,
        ["retry"]
    );
}
pub async fn expire_removes_only_old_done_operations<S: Store>(store: Arc<S>) {
    let old = created(&*store, operation("p", "old", 1)).await;
    let old = store.update(done(old, State::Succeeded, 10)).await.unwrap();
    let recent = created(&*store, operation("p", "recent", 2)).await;
    let recent = store.update(done(recent, State::Failed, 50)).await.unwrap();
    let pending = created(&*store, operation("p", "pending", 3)).await;
    let expired = store.expire(Timestamp(20), 100).await.unwrap();
    // The record as it stood is returned, not only its name.
    assert_eq!(expired, std::slice::from_ref(&old));
    assert_eq!(store.get(&old.name).await.unwrap(), None);
    assert_eq!(store.get(&recent.name).await.unwrap(), Some(recent));
    assert_eq!(store.get(&pending.name).await.unwrap(), Some(pending));
    let mut names = HashSet::new();
    for i in 0..5 {
        let op = created(&*store, operation("p", &format!("batch{i}"), 4)).await;
        names.insert(
            store
                .update(done(op, State::Cancelled, 5))
                .await
                .unwrap()
                .name,
        );
    }
    let mut expired: HashSet<Name> = store
        .expire(Timestamp(20), 3)
        .await
        .unwrap()
        .into_iter()
        .map(|op| op.name)
        .collect();
    assert_eq!(expired.len(), 3);
    let rest = store.expire(Timestamp(20), 3).await.unwrap();
    assert_eq!(rest.len(), 2);
    expired.extend(rest.into_iter().map(|op| op.name));
    assert_eq!(expired, names);
    for name in names {
        assert_eq!(store.get(&name).await.unwrap(), None);
    }
}
pub async fn payload_is_kept_apart<S: Store>(store: Arc<S>) {
    let op = operation("p", "x", 1);
    let payload = serde_json::json!({"seconds": 5, "nested": {"a": [1, 2, "three"]}});
    store
        .insert(NewOperation {
            operation: op.clone(),
            payload: payload.clone(),
            max_queued: 10,
        })
        .await
        .unwrap();
    assert_eq!(store.payload(&op.name).await.unwrap(), Some(payload));
    let missing = Name::new(&project("p"), "missing").unwrap();
    assert_eq!(store.payload(&missing).await.unwrap(), None);
}
pub async fn due_finds_expired_leases_and_passed_deadlines<S: Store>(store: Arc<S>) {
    let mut timed = operation("p", "timed", 1);
    timed.deadline = Some(Timestamp(50));
    created(&*store, timed).await;
    let mut late = operation("p", "late", 1);
    late.deadline = Some(Timestamp(500));
    created(&*store, late).await;
    let mut leased = operation("p", "leased", 1);
    leased.op_type = "L".into();
    created(&*store, leased).await;
    store.lease(leasing(&["L"], 1, 0, 40)).await.unwrap();
    let mut finished = operation("p", "finished", 1);
    finished.deadline = Some(Timestamp(10));
    let finished = created(&*store, finished).await;
    store
        .update(done(finished, State::Succeeded, 5))
        .await
        .unwrap();

    let ids = |ops: Vec<Operation>| {
        let mut ids: Vec<String> = ops.iter().map(|o| o.name.id().to_string()).collect();
        ids.sort();
        ids
    };
    assert!(store.due(Timestamp(30), 10).await.unwrap().is_empty());
    assert_eq!(ids(store.due(Timestamp(41), 10).await.unwrap()), ["leased"]);
    assert_eq!(
        ids(store.due(Timestamp(51), 10).await.unwrap()),
        ["leased", "timed"]
    );
    assert_eq!(store.due(Timestamp(1000), 1).await.unwrap().len(), 1);
}
pub async fn scan_then_import_copies_every_operation<S: Store>(store: Arc<S>) {
    let mut originals = Vec::new();
    for (i, p) in ["a", "b", "c"].iter().cycle().take(25).enumerate() {
        let mut op = operation(p, &format!("op/{i:02}"), i as i64);
        op.request_id = Some(format!("req-{i}"));
        let payload = serde_json::json!({"i": i});
        store
            .insert(NewOperation {
                operation: op.clone(),
                payload: payload.clone(),
                max_queued: 100,
            })
            .await
            .unwrap();
        let mut stored = store.get(&op.name).await.unwrap().unwrap();
        if i % 2 == 0 {
            stored = store
                .update(done(stored, State::Cancelled, 100 + i as i64))
                .await
                .unwrap();
        }
        originals.push((stored, payload));
    }
    originals.sort_by(|x, y| x.0.name.cmp(&y.0.name));
    let mut scanned = Vec::new();
    let mut after: Option<Name> = None;
    loop {
        let page = store.scan(after.as_ref(), 7).await.unwrap();
        let Some((last, _)) = page.last() else { break };
        after = Some(last.name.clone());
        scanned.extend(page);
    }
    assert_eq!(scanned, originals);
    // Importing into the same store collides; deleting and importing restores them exactly.
    assert!(matches!(
        store.import(scanned[..2].to_vec()).await,
        Err(Error::AlreadyExists(_))
    ));
    for (op, _) in &scanned {
        store.delete(op).await.unwrap();
    }
    store.import(scanned.clone()).await.unwrap();
    for (op, payload) in &scanned {
        assert_eq!(store.get(&op.name).await.unwrap().as_ref(), Some(op));
        assert_eq!(
            store.payload(&op.name).await.unwrap().as_ref(),
            Some(payload)
        );
    }
    // Request ids and queue counts came along.
    let mut again = operation("b", "again", 1);
    again.request_id = Some("req-1".into());
    assert!(matches!(
        store.insert(new(again)).await.unwrap(),
        Inserted::Existing(_)
    ));
    let limited = NewOperation {
        operation: operation("b", "extra", 1),
        payload: serde_json::Value::Null,
        max_queued: 4,
    };
    assert!(matches!(
        store.insert(limited).await,
        Err(Error::QueueFull { limit: 4 })
    ));
}
/// U+0000 in an indexed text field: PostgreSQL's `text` cannot hold it, so every backend
/// refuses it the same way, and writes nothing.
pub async fn text_no_backend_can_index_is_refused_alike<S: Store>(store: Arc<S>) {
    let refused = |r: crate::Result<()>, what: &str| match r {
        Err(Error::InvalidArgument(m)) => assert!(m.contains("U+0000"), "{what}: {m}"),
        other => panic!("{what}: expected InvalidArgument, got {other:?}"),
    };
    let mut nul_description = operation("p", "a", 1);
    nul_description.description = "x\0y".into();
    let mut nul_type = operation("p", "b", 1);
    nul_type.op_type = "T\0".into();
    let mut nul_request = operation("p", "c", 1);
    nul_request.request_id = Some("\0".into());
    for op in [nul_description, nul_type, nul_request] {
        let name = op.name.clone();
        refused(store.insert(new(op.clone())).await.map(drop), "insert");
        refused(
            store.import(vec![(op, serde_json::json!({}))]).await,
            "import",
        );
        assert_eq!(store.get(&name).await.unwrap(), None, "{name} was written");
    }

    let stored = created(&*store, operation("p", "d", 1)).await;
    let mut changed = stored.clone();
    changed.description = "\0".into();
    refused(store.update(changed).await.map(drop), "update");
    assert_eq!(store.get(&stored.name).await.unwrap(), Some(stored));

    refused(
        store
            .lease(leasing(&["EXPORT_IMAGE", "X\0"], 10, 0, 100))
            .await
            .map(drop),
        "lease",
    );
    let account = ServiceAccount {
        email: "a@p.iam.longrun".into(),
        project: "p".into(),
        key_id: "k\0".into(),
        public_key_pem: "pem".into(),
        disabled: false,
        create_time: Timestamp(1),
    };
    refused(
        store.create_account(account).await.map(drop),
        "create_account",
    );
    assert!(store.accounts().await.unwrap().is_empty());
}
/// Values at the edges of what the API accepts come back exactly as written, on every
/// backend: the longest type, request id and name, a 64 KiB description, every other
/// control character, characters outside the BMP, and U+0000 where it is only in the
/// record or the payload (JSON escapes it there).
pub async fn awkward_values_round_trip_exactly<S: Store>(store: Arc<S>) {
    let controls: String = (1u8..0x20).map(char::from).collect();
    let long_id = "i".repeat(longrun_types::name::MAX_NAME_LEN - "projects/p/operations/".len());
    let mut op = operation("p", &long_id, 1);
    op.op_type = "\u{1F680}".repeat(64); // 256 bytes
    op.description = format!("{controls}\u{FFFF}\u{10FFFF}{}", "d".repeat(64 * 1024 - 40));
    op.request_id = Some(format!("{controls}{}", "r".repeat(256 - 31)));
    op.script_uri = "a\0b".into();
    op.priority = 9999;
    let payload = serde_json::json!({"nul": "a\0b", "big": i64::MAX, "neg": i64::MIN, "f": 1.5});
    store
        .insert(NewOperation {
            operation: op.clone(),
            payload: payload.clone(),
            max_queued: 10,
        })
        .await
        .unwrap();
    op.version = 1;
    assert_eq!(store.get(&op.name).await.unwrap().as_ref(), Some(&op));
    assert_eq!(store.payload(&op.name).await.unwrap(), Some(payload));
    let mut failed = op.clone();
    let status = Status::new(Code::Internal, "boom \0 \u{1F4A5}");
    failed.move_to(State::Failed, Some(Outcome::Error(status)), Timestamp(5));
    let failed = store.update(failed).await.unwrap();
    assert_eq!(store.get(&op.name).await.unwrap(), Some(failed));
    let query = |text: &str| ListQuery {
        project: project("p"),
        filter: filter::parse(text).unwrap(),
        after: None,
        limit: 10,
        scan_budget: usize::MAX,
    };
    let by_type = format!("metadata.type = \"{}\"", op.op_type);
    assert_eq!(
        store.list(query(&by_type)).await.unwrap().operations.len(),
        1
    );
    assert_eq!(
        store
            .list(query("metadata.description = \"*\u{10FFFF}d*\""))
            .await
            .unwrap()
            .operations
            .len(),
        1
    );
}
