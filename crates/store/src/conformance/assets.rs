//! Conformance: the Earth Engine emulator's asset registry.

use super::*;

fn asset(name: &str, asset_type: &str) -> crate::Asset {
    let parent = match name.rsplit_once('/') {
        Some((parent, _)) if parent.ends_with("/assets") => {
            parent.trim_end_matches("/assets").to_string()
        }
        Some((parent, _)) => parent.to_string(),
        None => panic!("{name}"),
    };
    crate::Asset {
        name: name.into(),
        parent,
        asset_type: asset_type.into(),
        record: serde_json::json!({"type": asset_type, "properties": {"k": name}}),
    }
}
pub async fn assets_keep_to_their_folders<S: Store>(store: Arc<S>) {
    use crate::AssetWrite::*;
    let put = |a: crate::Asset, overwrite: bool| {
        let store = store.clone();
        async move { store.put_asset(a, overwrite).await.unwrap() }
    };
    // A child needs its folder; a top-level asset needs only its project.
    assert_eq!(
        put(asset("projects/p/assets/f/img", "IMAGE"), false).await,
        NoParent
    );
    assert_eq!(
        put(asset("projects/p/assets/f", "FOLDER"), false).await,
        Done
    );
    assert_eq!(
        put(asset("projects/p/assets/f", "FOLDER"), false).await,
        Exists
    );
    assert_eq!(
        put(asset("projects/p/assets/f/img", "IMAGE"), false).await,
        Done
    );
    assert_eq!(
        put(asset("projects/p/assets/f", "FOLDER"), true).await,
        NotEmpty
    );
    let got = store
        .asset("projects/p/assets/f/img")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, asset("projects/p/assets/f/img", "IMAGE"));
    assert_eq!(
        store.asset("projects/p/assets/nothing").await.unwrap(),
        None
    );
    // Overwrite replaces the record.
    let mut changed = asset("projects/p/assets/f/img", "IMAGE");
    changed.record = serde_json::json!({"type": "IMAGE", "properties": {"k": "new"}});
    assert_eq!(put(changed.clone(), true).await, Done);
    assert_eq!(store.asset(&changed.name).await.unwrap().unwrap(), changed);
    // Pages of children in bytewise name order; names with `_` and `-` are literal.
    for id in ["b_1", "a", "b-2", "c", "B"] {
        assert_eq!(
            put(asset(&format!("projects/p/assets/f/{id}"), "TABLE"), false).await,
            Done
        );
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .assets("projects/p/assets/f", after.as_deref(), 2)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        after = Some(page.last().unwrap().name.clone());
        seen.extend(
            page.into_iter()
                .map(|a| a.name.rsplit('/').next().unwrap().to_string()),
        );
    }
    assert_eq!(seen, ["B", "a", "b-2", "b_1", "c", "img"]);
    let top = store.assets("projects/p", None, 100).await.unwrap();
    assert_eq!(
        top.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
        ["projects/p/assets/f"]
    );
    assert!(
        store
            .assets("projects/other", None, 100)
            .await
            .unwrap()
            .is_empty()
    );
    // A folder goes only when empty.
    assert_eq!(
        store.delete_asset("projects/p/assets/f").await.unwrap(),
        NotEmpty
    );
    for id in ["b_1", "a", "b-2", "c", "B", "img"] {
        assert_eq!(
            store
                .delete_asset(&format!("projects/p/assets/f/{id}"))
                .await
                .unwrap(),
            Done
        );
    }
    assert_eq!(
        store.delete_asset("projects/p/assets/f/img").await.unwrap(),
        NotFound
    );
    assert_eq!(
        store.delete_asset("projects/p/assets/f").await.unwrap(),
        Done
    );
    assert_eq!(store.asset("projects/p/assets/f").await.unwrap(), None);
}
pub async fn assets_move_with_their_contents<S: Store>(store: Arc<S>) {
    use crate::AssetWrite::*;
    for (name, t) in [
        ("projects/p/assets/a", "FOLDER"),
        ("projects/p/assets/a/c", "IMAGE_COLLECTION"),
        ("projects/p/assets/a/c/i1", "IMAGE"),
        ("projects/p/assets/a0", "TABLE"),
        ("projects/p/assets/a.b", "TABLE"),
        ("projects/p/assets/dest", "FOLDER"),
    ] {
        assert_eq!(store.put_asset(asset(name, t), false).await.unwrap(), Done);
    }
    assert_eq!(
        store
            .move_asset(
                "projects/p/assets/missing",
                "projects/p/assets/x",
                "projects/p"
            )
            .await
            .unwrap(),
        NotFound
    );
    assert_eq!(
        store
            .move_asset("projects/p/assets/a", "projects/p/assets/a0", "projects/p")
            .await
            .unwrap(),
        Exists
    );
    assert_eq!(
        store
            .move_asset(
                "projects/p/assets/a",
                "projects/p/assets/no/x",
                "projects/p/assets/no"
            )
            .await
            .unwrap(),
        NoParent
    );
    assert_eq!(
        store
            .move_asset(
                "projects/p/assets/a",
                "projects/p/assets/dest/a2",
                "projects/p/assets/dest"
            )
            .await
            .unwrap(),
        Done
    );
    // The subtree moved; neighbours whose names only start alike stayed.
    assert_eq!(store.asset("projects/p/assets/a").await.unwrap(), None);
    let moved = store
        .asset("projects/p/assets/dest/a2/c/i1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(moved.parent, "projects/p/assets/dest/a2/c");
    assert_eq!(
        moved.record,
        asset("projects/p/assets/a/c/i1", "IMAGE").record
    );
    let moved = store
        .asset("projects/p/assets/dest/a2")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(moved.parent, "projects/p/assets/dest");
    assert!(store.asset("projects/p/assets/a0").await.unwrap().is_some());
    assert!(
        store
            .asset("projects/p/assets/a.b")
            .await
            .unwrap()
            .is_some()
    );
    let children = store
        .assets("projects/p/assets/dest/a2", None, 10)
        .await
        .unwrap();
    assert_eq!(children.len(), 1);
    assert_eq!(children[0].name, "projects/p/assets/dest/a2/c");
    // A scan sees every project's assets, each parent before what it holds.
    assert_eq!(
        store
            .put_asset(asset("projects/o/assets/x", "FOLDER"), false)
            .await
            .unwrap(),
        Done
    );
    let mut scanned = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.scan_assets(after.as_deref(), 2).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.name.clone());
        scanned.extend(page.into_iter().map(|a| a.name));
    }
    assert_eq!(
        scanned,
        [
            "projects/o/assets/x",
            "projects/p/assets/a.b",
            "projects/p/assets/a0",
            "projects/p/assets/dest",
            "projects/p/assets/dest/a2",
            "projects/p/assets/dest/a2/c",
            "projects/p/assets/dest/a2/c/i1",
        ]
    );
}
/// Ids and names past their limits are refused alike (`Error::TooLong`, nothing written),
/// and the longest values allowed are stored whole: an operation with a 256-byte project,
/// type, request id and concurrency key and a 1,024-byte name, and a 512-byte asset id in
/// a 256-byte project (PostgreSQL's index rows hold them).
pub async fn values_past_their_limits_are_refused_alike<S: Store>(store: Arc<S>) {
    use longrun_types::limits;
    let too_long = |r: crate::Result<()>, field: &str, what: &str| match r {
        Err(Error::TooLong(t)) => assert_eq!(t.field, field, "{what}"),
        other => panic!("{what}: expected TooLong, got {other:?}"),
    };
    let p = "p".repeat(limits::PROJECT_ID);
    let prefix = format!("projects/{p}/operations/");
    let mut longest = operation(&p, &"i".repeat(limits::OPERATION_NAME - prefix.len()), 1);
    longest.op_type = "t".repeat(limits::TYPE);
    longest.request_id = Some("r".repeat(limits::REQUEST_ID));
    longest.concurrency_key = Some("k".repeat(limits::CONCURRENCY_KEY));
    let stored = created(&*store, longest.clone()).await;
    assert_eq!(store.get(&longest.name).await.unwrap(), Some(stored));

    for (field, change) in [
        (
            "metadata.type",
            (|op: &mut Operation| op.op_type = "t".repeat(257)) as fn(&mut Operation),
        ),
        ("requestId", |op| op.request_id = Some("r".repeat(257))),
        ("concurrencyKey", |op| {
            op.concurrency_key = Some("k".repeat(257))
        }),
        ("metadata.description", |op| {
            op.description = "d".repeat(64 * 1024 + 1)
        }),
    ] {
        let mut op = operation("p", field, 1);
        change(&mut op);
        too_long(
            store.insert(new(op.clone())).await.map(drop),
            field,
            "insert",
        );
        assert_eq!(store.get(&op.name).await.unwrap(), None, "{field} written");
    }
    too_long(
        store
            .lease(leasing(&["T", &"t".repeat(257)], 1, 0, 100))
            .await
            .map(drop),
        "types[1]",
        "lease",
    );

    let folder = format!("projects/{p}/assets/{}", "f".repeat(255));
    let leaf = format!("{folder}/{}", "a".repeat(256));
    for (name, kind) in [(&folder, "FOLDER"), (&leaf, "IMAGE_COLLECTION")] {
        assert_eq!(
            store.put_asset(asset(name, kind), false).await.unwrap(),
            crate::AssetWrite::Done
        );
    }
    assert_eq!(store.asset(&leaf).await.unwrap().unwrap().name, leaf);
    too_long(
        store
            .put_asset(asset(&format!("{leaf}x"), "IMAGE"), false)
            .await
            .map(drop),
        "name",
        "put",
    );
    // A move that would lengthen an id under it past the limit moves nothing.
    let to = format!("projects/{p}/assets/{}", "d".repeat(300));
    assert_eq!(
        store
            .move_asset(&folder, &to, &format!("projects/{p}"))
            .await
            .unwrap(),
        crate::AssetWrite::TooLong
    );
    assert!(store.asset(&leaf).await.unwrap().is_some());
    assert!(store.asset(&to).await.unwrap().is_none());
    let short = format!("projects/{p}/assets/{}", "d".repeat(255));
    assert_eq!(
        store
            .move_asset(&folder, &short, &format!("projects/{p}"))
            .await
            .unwrap(),
        crate::AssetWrite::Done
    );
}
