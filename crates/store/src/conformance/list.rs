//! Conformance: list pages (in order, without skips or repeats, within a scan budget) and
//! every filter against the reference semantics.

use super::*;

pub(super) async fn collect_all<S: Store>(
    store: &S,
    p: &str,
    filter: Option<filter::Expr>,
    page: usize,
) -> Vec<Name> {
    collect_within(store, p, filter, page, usize::MAX).await.0
}

/// Every operation `filter` keeps, `page` at a time, each page examining at most `budget`
/// rows and going on where the last one stopped; also how many pages were short of `page`
/// though more followed.
pub(super) async fn collect_within<S: Store>(
    store: &S,
    p: &str,
    filter: Option<filter::Expr>,
    page: usize,
    budget: usize,
) -> (Vec<Name>, usize) {
    let mut seen = Vec::new();
    let mut short = 0;
    let mut after = None;
    loop {
        let listed = store
            .list(ListQuery {
                project: project(p),
                filter: filter.clone(),
                after: after.clone(),
                limit: page,
                scan_budget: budget,
            })
            .await
            .unwrap();
        let ops = listed.operations;
        assert!(ops.len() <= page);
        let full = ops.len() == page;
        if let Some(resume) = listed.resume {
            assert!(!full, "a full page needs no resume");
            if let Some(last) = ops.last() {
                assert!(
                    (std::cmp::Reverse(last.create_time), &last.name)
                        <= (std::cmp::Reverse(resume.create_time), &resume.name),
                    "the resume point is at or after the page's last operation"
                );
            }
            short += 1;
            seen.extend(ops.into_iter().map(|o| o.name));
            after = Some(resume);
            continue;
        }
        let Some(last) = ops.last() else { break };
        after = Some(Cursor {
            create_time: last.create_time,
            name: last.name.clone(),
        });
        seen.extend(ops.into_iter().map(|o| o.name));
        if !full {
            break;
        }
    }
    (seen, short)
}
pub async fn list_pages_in_order_without_skips_or_repeats<S: Store>(store: Arc<S>) {
    // Ties on create time are ordered by name.
    let mut expected = Vec::new();
    for i in 0..57 {
        let op = created(
            &*store,
            operation("p", &format!("op{:02}", i), (i / 3) as i64),
        )
        .await;
        expected.push((std::cmp::Reverse(op.create_time), op.name));
    }
    created(&*store, operation("other", "op00", 1)).await;
    expected.sort();
    let expected: Vec<Name> = expected.into_iter().map(|(_, n)| n).collect();
    for page in [1, 5, 10, 57, 100] {
        assert_eq!(
            collect_all(&*store, "p", None, page).await,
            expected,
            "page {page}"
        );
    }
    // Inserts while paging land before the cursor: the pages never repeat or skip.
    let mut seen = Vec::new();
    let mut after = None;
    let mut newer = 1000;
    loop {
        let ops = store
            .list(ListQuery {
                project: project("p"),
                filter: None,
                after: after.clone(),
                limit: 10,
                scan_budget: usize::MAX,
            })
            .await
            .unwrap()
            .operations;
        created(&*store, operation("p", &format!("new{newer}"), newer)).await;
        newer += 1;
        let Some(last) = ops.last() else { break };
        after = Some(Cursor {
            create_time: last.create_time,
            name: last.name.clone(),
        });
        seen.extend(ops.into_iter().map(|o| o.name));
    }
    assert_eq!(seen, expected);
}
pub async fn list_filters_agree_with_the_reference_semantics<S: Store>(store: Arc<S>) {
    let states = [
        State::Pending,
        State::Running,
        State::Cancelling,
        State::Succeeded,
        State::Failed,
        State::Cancelled,
    ];
    let mut all = Vec::new();
    for i in 0..48i64 {
        let mut op = operation("p", &format!("f/{i:02}"), 1_000 + i * 10);
        op.op_type = ["EXPORT_IMAGE", "INGEST_TABLE", "EXPORT_VIDEO"][i as usize % 3].into();
        op.description = ["nightly export", "", "a_b%c*", "Nightly EXPORT"][i as usize % 4].into();
        op.priority = (i * 37 % 200) as i32;
        op.concurrency_key =
            [Some("k1"), None, Some("k2"), Some("k1*x"), None][i as usize % 5].map(str::to_string);
        op.retry_of = [Some("f/00"), None, Some("f/01"), None][i as usize % 4]
            .map(|id| Name::new(&project("p"), id).unwrap());
        let mut op = created(&*store, op).await;
        let state = states[i as usize % 6];
        if state != State::Pending {
            op.attempt = 1 + (i % 3) as i32;
            op.start_time = Some(Timestamp(2_000 + i));
            op.move_to(State::Running, None, Timestamp(2_000 + i));
            op = match state {
                State::Running => op,
                State::Cancelling => {
                    op.move_to(State::Cancelling, None, Timestamp(3_000 + i));
                    op
                }
                s => done(op, s, 3_000 + i),
            };
            op = store.update(op).await.unwrap();
        }
        all.push(op);
    }
    let filters = [
        "done = true",
        "done != true",
        "metadata.state = RUNNING",
        "metadata.state != CANCELLED AND metadata.priority >= 100",
        "metadata.type = EXPORT_IMAGE OR metadata.type = EXPORT_VIDEO",
        "metadata.description = \"nightly*\"",
        "metadata.description = \"*export\"",
        "metadata.description = \"*EXPORT*\"",
        "metadata.description = \"a_b%c\\*\"",
        "metadata.description != \"*export*\"",
        "metadata.description:*",
        "NOT metadata.description:*",
        "metadata.startTime:*",
        "metadata.startTime >= \"1970-01-01T00:00:02.020Z\"",
        "metadata.endTime < 1970-01-01T00:00:03.030Z",
        "metadata.createTime > 1970-01-01T00:00:01.200Z AND -done = true",
        "error.code = 1",
        "error.code != 1",
        "NOT error.code = 1",
        "error.code:*",
        "metadata.attempt > 1 OR metadata.priority < 20",
        "name = \"projects/p/operations/f/07\"",
        "name > \"projects/p/operations/f/40\"",
        "name = \"*/f/1*\"",
        "(metadata.state = PENDING OR metadata.state = FAILED) AND metadata.type:INGEST_TABLE",
        "metadata.updateTime <= 1970-01-01T00:00:02.030Z",
        "metadata.concurrencyKey = k1",
        "metadata.concurrencyKey != k1 AND done = false",
        "metadata.concurrencyKey = \"k1*\"",
        "metadata.concurrencyKey:*",
        "NOT metadata.concurrencyKey:*",
        "metadata.concurrencyKey > k1",
        "metadata.retryOf = \"projects/p/operations/f/00\"",
        "metadata.retryOf != \"projects/p/operations/f/00\" AND done = true",
        "metadata.retryOf = \"*/f/0*\"",
        "metadata.retryOf:*",
        "NOT metadata.retryOf:*",
        // Words of descriptions, through the full-text index.
        "metadata.description:nightly",
        "metadata.description:\"export NIGHTLY\"",
        "metadata.description:\"night*\"",
        "metadata.description:b",
        "metadata.description:exp",
        "metadata.description:nightly AND metadata.type = EXPORT_IMAGE",
        "NOT metadata.description:export",
        "metadata.description:nightly OR metadata.state = RUNNING",
        // Each index a page may walk, and merges of them.
        "metadata.type = EXPORT_IMAGE",
        "metadata.state = RUNNING OR metadata.state = CANCELLING",
        "done = false AND metadata.priority > 50",
        "metadata.endTime > 1970-01-01T00:00:03.020Z",
        "metadata.createTime <= 1970-01-01T00:00:01.300Z AND metadata.type = INGEST_TABLE",
        "metadata.concurrencyKey = k2 OR metadata.retryOf = \"projects/p/operations/f/01\"",
    ];
    let mut sizes = HashSet::new();
    for text in filters {
        let expr = filter::parse(text).unwrap();
        let mut expected: Vec<&Operation> = all
            .iter()
            .filter(|op| expr.as_ref().is_none_or(|e| e.matches(op)))
            .collect();
        expected.sort_by(|a, b| b.create_time.cmp(&a.create_time).then(a.name.cmp(&b.name)));
        let expected: Vec<Name> = expected.into_iter().map(|o| o.name.clone()).collect();
        let got = collect_all(&*store, "p", expr.clone(), 7).await;
        assert_eq!(got, expected, "filter {text}");
        // A page that may examine only 5 rows answers short and goes on where it stopped:
        // the same operations, in the same order, whichever index the filter walks.
        let (bounded, short) = collect_within(&*store, "p", expr, 7, 5).await;
        assert_eq!(bounded, expected, "filter {text} within a budget of 5");
        if expected.len() < all.len() && text != "metadata.description:exp" {
            assert!(
                short > 0 || expected.len() <= 5,
                "filter {text}: no short page"
            );
        }
        sizes.insert(got.len());
    }
    // The data set is rich enough for the filters to select different subsets.
    assert!(sizes.len() > 8, "{sizes:?}");
}
/// A name filter written with the id as typed (non-ASCII letters unencoded, or encoded in
/// lower case) selects the operation whose canonical name percent-encodes it, for `=`,
/// `:` and the wildcard forms, as the reference semantics say.
pub async fn name_filters_match_ids_as_typed<S: Store>(store: Arc<S>) {
    let cafe = created(&*store, operation("p", "café", 1)).await;
    let deep = created(&*store, operation("p", "exports/été/1", 2)).await;
    let plain = created(&*store, operation("p", "plain", 3)).await;
    assert_eq!(cafe.name.as_str(), "projects/p/operations/caf%C3%A9");
    let cases = [
        ("name = \"projects/p/operations/café\"", vec![&cafe]),
        ("name = \"projects/p/operations/caf%c3%a9\"", vec![&cafe]),
        ("name : \"projects/p/operations/café\"", vec![&cafe]),
        ("name = \"*é\"", vec![&cafe]),
        (
            "name = \"projects/p/operations/exports/été/*\"",
            vec![&deep],
        ),
        ("name : \"*été*\"", vec![&deep]),
        (
            "name != \"projects/p/operations/café\"",
            vec![&plain, &deep],
        ),
    ];
    for (text, expected) in cases {
        let expr = filter::parse(text).unwrap();
        let expected: Vec<Name> = expected.into_iter().map(|o| o.name.clone()).collect();
        let reference: Vec<Name> = [&plain, &deep, &cafe]
            .into_iter()
            .filter(|op| expr.as_ref().is_none_or(|e| e.matches(op)))
            .map(|op| op.name.clone())
            .collect();
        assert_eq!(reference, expected, "reference semantics of {text}");
        assert_eq!(
            collect_all(&*store, "p", expr, 10).await,
            expected,
            "filter {text}"
        );
    }
}
