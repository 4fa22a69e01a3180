//! list: order, full pages, tokens bound to parent and filter, filters, limits.

use crate::common::TestServer;
use longrun_testkit::postgres::Schema;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

async fn submit_many(s: &TestServer, project: &str, count: usize, prefix: &str) {
    let mut tasks = Vec::new();
    for worker in 0..16 {
        let client = s.client.clone();
        let project = project.to_string();
        let prefix = prefix.to_string();
        tasks.push(tokio::spawn(async move {
            for i in (worker..count).step_by(16) {
                let body = json!({"type": "T", "operationId": format!("{prefix}{i:05}"), "priority": i % 50});
                client.submit(&project, &body).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

fn names(page: &Value) -> Vec<String> {
    page["operations"]
        .as_array()
        .map(|ops| {
            ops.iter()
                .map(|o| o["name"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// (createTime descending, name ascending) holds across the whole list.
fn assert_ordered(ops: &[Value]) {
    for pair in ops.windows(2) {
        let key = |o: &Value| {
            (
                std::cmp::Reverse(o["metadata"]["createTime"].as_str().unwrap().to_string()),
                o["name"].as_str().unwrap().to_string(),
            )
        };
        assert!(
            key(&pair[0]) < key(&pair[1]),
            "out of order: {} then {}",
            pair[0]["name"],
            pair[1]["name"]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_1200_operations_while_others_are_inserted() {
    let s = TestServer::start().await;
    submit_many(&s, "p", 1200, "op").await;
    let originals: HashSet<String> = (0..1200)
        .map(|i| format!("projects/p/operations/op{i:05}"))
        .collect();

    let stop = Arc::new(AtomicBool::new(false));
    let inserter = {
        let client = s.client.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                client
                    .submit("p", &json!({"type": "T", "operationId": format!("new{n}")}))
                    .await
                    .unwrap();
                n += 1;
            }
            n
        })
    };
    let mut all = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = s.client.list("p", "", 500, &token).await.unwrap();
        pages += 1;
        let ops = page["operations"].as_array().cloned().unwrap_or_default();
        let next = page["nextPageToken"].as_str().map(str::to_string);
        if next.is_some() {
            assert_eq!(ops.len(), 500, "only the last page may be short");
        }
        all.extend(ops);
        match next {
            Some(next) => token = next,
            None => break,
        }
    }
    stop.store(true, Ordering::SeqCst);
    let inserted = inserter.await.unwrap();
    assert!(inserted > 0, "inserts ran during the listing");
    assert!(pages >= 3);
    assert_ordered(&all);
    let listed: Vec<String> = all
        .iter()
        .map(|o| o["name"].as_str().unwrap().to_string())
        .collect();
    let unique: HashSet<&String> = listed.iter().collect();
    assert_eq!(unique.len(), listed.len(), "an operation was repeated");
    for name in &originals {
        assert!(unique.contains(name), "{name} was skipped");
    }
    assert!(
        listed
            .iter()
            .all(|n| originals.contains(n) || n.contains("/operations/new"))
    );

    // Each listed operation is exactly what get returns.
    for op in all.iter().step_by(97) {
        let path = format!("/v1/{}", op["name"].as_str().unwrap());
        let (status, got) = s.request("GET", &path, None).await;
        assert_eq!((status, &got), (200, op));
    }
}

#[tokio::test]
async fn page_sizes_defaults_clamps_and_refusals() {
    let s = TestServer::start().await;
    submit_many(&s, "p", 1005, "op").await;
    let count = |page: &Value| page["operations"].as_array().map_or(0, Vec::len);
    let (status, page) = s.request("GET", "/v1/projects/p/operations", None).await;
    assert_eq!((status, count(&page)), (200, 100));
    let (_, page) = s
        .request("GET", "/v1/projects/p/operations?pageSize=5000", None)
        .await;
    assert_eq!(count(&page), 1000);
    let (_, page) = s
        .request(
            "GET",
            "/v1/projects/p/operations?page_size=7&alt=json&prettyPrint=false&$.xgafv=2",
            None,
        )
        .await;
    assert_eq!(count(&page), 7);
    let (_, page) = s
        .request("GET", "/v1/projects/p/operations?pageSize=0", None)
        .await;
    assert_eq!(count(&page), 100);
    for (query, status, reason) in [
        ("pageSize=-1", 400, "INVALID_PAGE_SIZE"),
        ("pageSize=ten", 400, "INVALID_PAGE_SIZE"),
        ("returnPartialSuccess=true", 501, "NOT_SUPPORTED"),
        ("colour=red", 400, "UNKNOWN_PARAMETER"),
        ("pageToken=garbage", 400, "INVALID_PAGE_TOKEN"),
    ] {
        let (got, body) = s
            .request("GET", &format!("/v1/projects/p/operations?{query}"), None)
            .await;
        assert_eq!(got, status, "{query}: {body}");
        assert_eq!(body["error"]["code"], status);
        assert_eq!(body["error"]["details"][0]["reason"], reason, "{query}");
    }
    let (status, _) = s
        .request(
            "GET",
            "/v1/projects/p/operations?returnPartialSuccess=false",
            None,
        )
        .await;
    assert_eq!(status, 200);
    // An empty project lists as {}.
    let (status, body) = s
        .request("GET", "/v1/projects/empty/operations", None)
        .await;
    assert_eq!((status, body), (200, json!({})));
}

#[tokio::test]
async fn tokens_are_bound_to_parent_and_filter_and_tamper_evident() {
    let s = TestServer::start().await;
    submit_many(&s, "p", 30, "op").await;
    submit_many(&s, "q", 30, "op").await;
    let page = s.client.list("p", "done = false", 10, "").await.unwrap();
    let token = page["nextPageToken"].as_str().unwrap().to_string();
    assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    let second = s
        .client
        .list("p", "done = false", 10, &token)
        .await
        .unwrap();
    assert_eq!(names(&second).len(), 10);
    assert!(names(&second).iter().all(|n| !names(&page).contains(n)));
    // A changed page size is honoured.
    let bigger = s
        .client
        .list("p", "done = false", 15, &token)
        .await
        .unwrap();
    assert_eq!(names(&bigger).len(), 15);
    for (project, filter) in [("q", "done = false"), ("p", ""), ("p", "done = true")] {
        let err = s
            .client
            .list(project, filter, 10, &token)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("INVALID_ARGUMENT"), "{err}");
    }
    let mut altered = token.clone().into_bytes();
    let last = altered.len() - 1;
    altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
    let err = s
        .client
        .list(
            "p",
            "done = false",
            10,
            std::str::from_utf8(&altered).unwrap(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("INVALID_ARGUMENT"), "{err}");
}

#[tokio::test]
async fn filters_select_and_bad_filters_say_where() {
    let s = TestServer::start().await;
    for i in 0..6 {
        s.submit(
            "p",
            json!({"type": if i % 2 == 0 { "EXPORT_IMAGE" } else { "INGEST_TABLE" },
                             "operationId": format!("f{i}"), "description": format!("nightly {i}"),
                             "priority": i * 10}),
        )
        .await;
    }
    s.request("POST", "/v1/projects/p/operations/f1:cancel", Some("{}"))
        .await;
    s.request("POST", "/v1/projects/p/operations/f2:cancel", Some("{}"))
        .await;
    let cases = [
        ("metadata.state = CANCELLED", vec!["f1", "f2"]),
        ("done = true AND metadata.type = EXPORT_IMAGE", vec!["f2"]),
        (
            "metadata.type = INGEST_TABLE OR metadata.priority >= 40",
            vec!["f1", "f3", "f4", "f5"],
        ),
        (
            "NOT done = true AND metadata.priority < 40",
            vec!["f0", "f3"],
        ),
        ("metadata.description = \"*ly 5\"", vec!["f5"]),
        ("error.code = 1", vec!["f1", "f2"]),
        ("-error.code:* metadata.priority > 30", vec!["f4", "f5"]),
        ("name = \"projects/p/operations/f3\"", vec!["f3"]),
        (
            "metadata.createTime > \"2000-01-01T00:00:00Z\" AND metadata.endTime:*",
            vec!["f1", "f2"],
        ),
    ];
    for (filter, expected) in cases {
        let page = s.client.list("p", filter, 100, "").await.unwrap();
        let mut got: Vec<String> = names(&page)
            .into_iter()
            .map(|n| n.rsplit('/').next().unwrap().to_string())
            .collect();
        got.sort();
        assert_eq!(got, expected, "filter {filter}");
    }
    let (status, body) = s
        .request(
            "GET",
            "/v1/projects/p/operations?filter=metadata.state%20%3D%20SLEEPING",
            None,
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["status"], "INVALID_ARGUMENT");
    assert_eq!(body["error"]["details"][0]["reason"], "INVALID_FILTER");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("position 17") && message.contains("SLEEPING"),
        "{message}"
    );
}

/// The names a filter selects in project `p`, over REST.
async fn selected(s: &TestServer, filter: &str) -> Vec<String> {
    let filter: String = form_urlencoded::byte_serialize(filter.as_bytes()).collect();
    let (status, page) = s
        .request(
            "GET",
            &format!("/v1/projects/p/operations?filter={filter}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let mut names = names(&page);
    names.sort();
    names
}

/// Name filters written with the id as the user submitted it (non-ASCII letters, spaces,
/// unencoded, or encoded in lower case) find the operation whose canonical name
/// percent-encodes it: for `=`, `!=`, `:` and the wildcard forms.
async fn name_filters_take_ids_as_typed(s: &TestServer) {
    for id in ["café", "exports/été/n°1", "a b", "plain"] {
        s.submit("p", json!({"type": "T", "operationId": id})).await;
    }
    let cafe = "projects/p/operations/caf%C3%A9".to_string();
    let ete = "projects/p/operations/exports/%C3%A9t%C3%A9/n%C2%B01".to_string();
    let space = "projects/p/operations/a%20b".to_string();
    let plain = "projects/p/operations/plain".to_string();
    let cases: Vec<(&str, Vec<&String>)> = vec![
        ("name = \"projects/p/operations/café\"", vec![&cafe]),
        ("name = \"projects/p/operations/caf%c3%a9\"", vec![&cafe]),
        ("name = \"projects/p/operations/caf%C3%A9\"", vec![&cafe]),
        ("name : \"projects/p/operations/café\"", vec![&cafe]),
        ("name = \"projects/p/operations/a b\"", vec![&space]),
        ("name = \"*é\"", vec![&cafe]),
        ("name = \"projects/p/operations/exports/été/*\"", vec![&ete]),
        ("name : \"*été*\"", vec![&ete]),
        ("name = \"*n°1\"", vec![&ete]),
        (
            "name != \"projects/p/operations/café\"",
            vec![&space, &ete, &plain],
        ),
        ("NOT name = \"*é*\"", vec![&space, &plain]),
    ];
    for (filter, expected) in cases {
        let mut expected: Vec<String> = expected.into_iter().cloned().collect();
        expected.sort();
        assert_eq!(selected(s, filter).await, expected, "{filter}");
    }
}

#[tokio::test]
async fn name_filters_take_ids_as_typed_on_sqlite() {
    let s = TestServer::start().await;
    name_filters_take_ids_as_typed(&s).await;
    s.stop().await;
}

#[tokio::test]
async fn name_filters_take_ids_as_typed_on_postgres() {
    let Some(schema) = Schema::create("namefilter").await else {
        return;
    };
    let s = crate::postgres::server_on(schema.url()).await;
    name_filters_take_ids_as_typed(&s).await;
    crate::postgres::finish(schema, [s]).await;
}

/// Every page of `filter` over REST, `page_size` at a time: the operations' names in the
/// order served, and how many pages were short of `page_size` with a token after them.
async fn walk(s: &TestServer, filter: &str, page_size: usize) -> (Vec<String>, usize) {
    let filter: String = form_urlencoded::byte_serialize(filter.as_bytes()).collect();
    let (mut all, mut short, mut token) = (Vec::new(), 0, String::new());
    loop {
        let (status, page) = s
            .request(
                "GET",
                &format!(
                    "/v1/projects/p/operations?filter={filter}&pageSize={page_size}&pageToken={token}"
                ),
                None,
            )
            .await;
        assert_eq!(status, 200, "{page}");
        let served = names(&page);
        match page["nextPageToken"].as_str() {
            Some(next) => {
                short += usize::from(served.len() < page_size);
                all.extend(served);
                token = next.to_string();
            }
            None => {
                all.extend(served);
                return (all, short);
            }
        }
    }
}

/// With `[list] scan_budget = 50`, a filter no index answers examines 50 operations a page:
/// its pages are short and go on where they stopped, and walking them all gives every match
/// once, in order. Filters an index answers (a type, words of the description) find their
/// few operations among 600 in one page.
async fn pages_stay_within_the_scan_budget(s: &TestServer) {
    for i in 0..600 {
        let rare = i % 200 == 0;
        let body = json!({
            "type": if rare { "RARE" } else { "T" },
            "operationId": format!("op{i:04}"),
            "priority": i % 50,
            "description": if rare { format!("nightly needle {i}") } else { format!("plain {i}") },
        });
        s.submit("p", body).await;
    }
    let expected = |keep: &dyn Fn(usize) -> bool| -> Vec<String> {
        (0..600)
            .rev()
            .filter(|i| keep(*i))
            .map(|i| format!("projects/p/operations/op{i:04}"))
            .collect()
    };
    // Not indexed: 12 of 600 match, at most 50 examined a page.
    let (served, short) = walk(s, "metadata.priority = 7", 100).await;
    assert_eq!(served, expected(&|i| i % 50 == 7));
    assert!(short >= 10, "{short} short pages");
    // Indexed: one page each, nothing else examined.
    for filter in [
        "metadata.type = RARE",
        "metadata.description:needle",
        "metadata.description:\"NIGHTLY need*\"",
        "metadata.description:needle AND metadata.priority = 0",
    ] {
        let (served, short) = walk(s, filter, 100).await;
        assert_eq!(served, expected(&|i| i % 200 == 0), "{filter}");
        assert_eq!(short, 0, "{filter}");
    }
    // A word is a whole word: `need` is no word of `needle`.
    assert_eq!(
        walk(s, "metadata.description:need", 100).await.0,
        Vec::<String>::new()
    );
    // An indexed term with a filter of its own: the budget counts the index's rows.
    let (served, _) = walk(s, "metadata.type = T AND metadata.priority = 7", 5).await;
    assert_eq!(served, expected(&|i| i % 50 == 7 && i % 200 != 0));
    // A leading wildcard cannot be looked up by words.
    let (status, body) = s
        .request(
            "GET",
            "/v1/projects/p/operations?filter=metadata.description%3A%22*dle%22",
            None,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["details"][0]["reason"], "INVALID_FILTER");
}

#[tokio::test]
async fn pages_stay_within_the_scan_budget_on_sqlite() {
    let s = TestServer::with(|c| c.list.scan_budget = 50).await;
    pages_stay_within_the_scan_budget(&s).await;
    s.stop().await;
}

#[tokio::test]
async fn pages_stay_within_the_scan_budget_on_postgres() {
    let Some(schema) = Schema::create("scanbudget").await else {
        return;
    };
    let s = crate::postgres::server_with(schema.url(), |c| c.list.scan_budget = 50).await;
    pages_stay_within_the_scan_budget(&s).await;
    crate::postgres::finish(schema, [s]).await;
}
