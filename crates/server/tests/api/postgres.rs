//! The server on the PostgreSQL store: the core flows over HTTP. Needs
//! `LONGRUN_TEST_DATABASE_URL`; without it the test prints a notice and passes as skipped.

use crate::common::TestServer;
use longrun_server::config::StoreKind;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_list_cancel_wait_lease_on_postgres() {
    let Ok(url) = std::env::var("LONGRUN_TEST_DATABASE_URL") else {
        eprintln!("skipped: set LONGRUN_TEST_DATABASE_URL to run the server on PostgreSQL");
        return;
    };
    let schema = format!("longrun_api_{}", std::process::id());
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        ))
        .await
        .unwrap();
    let separator = if url.contains('?') { '&' } else { '?' };
    let scoped = format!("{url}{separator}options=-c%20search_path%3D{schema}");
    let s = TestServer::with(|c| {
        c.store = StoreKind::Postgres;
        c.database_url = Some(scoped);
    })
    .await;

    for i in 0..7 {
        s.submit("p", json!({"type": "T", "operationId": format!("op{i}")}))
            .await;
    }
    let page = s.client.list("p", "done = false", 5, "").await.unwrap();
    assert_eq!(page["operations"].as_array().unwrap().len(), 5);
    let rest = s
        .client
        .list(
            "p",
            "done = false",
            5,
            page["nextPageToken"].as_str().unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(rest["operations"].as_array().unwrap().len(), 2);
    assert!(rest.get("nextPageToken").is_none());

    let (status, _) = s
        .request("POST", "/v1/projects/p/operations/op0:cancel", Some("{}"))
        .await;
    assert_eq!(status, 200);
    let (_, op) = s
        .request(
            "POST",
            "/v1/projects/p/operations/op0:wait",
            Some(r#"{"timeout": "1s"}"#),
        )
        .await;
    assert_eq!(
        (op["metadata"]["state"].clone(), op["error"]["code"].clone()),
        (json!("CANCELLED"), json!(1))
    );

    let (_, leased) = s
        .request(
            "POST",
            "/v1/workers/w:lease",
            Some(r#"{"types": ["T"], "waitTimeout": "0s"}"#),
        )
        .await;
    let lease_id = leased["leases"][0]["leaseId"].as_str().unwrap().to_string();
    assert_eq!(
        leased["leases"][0]["operation"]["name"],
        "projects/p/operations/op1"
    );
    let done = json!({"leaseId": lease_id, "response": {"ok": true}}).to_string();
    let (status, op) = s
        .request(
            "POST",
            "/v1/projects/p/operations/op1:complete",
            Some(&done),
        )
        .await;
    assert_eq!(
        (status, op["metadata"]["state"].clone()),
        (200, json!("SUCCEEDED"))
    );

    s.stop().await;
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}
