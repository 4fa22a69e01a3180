//! Streams check their caller's credentials again while they run: a watch (REST and gRPC)
//! and the worker's `Work` stream end with the error a new call would get once the token
//! expires or its service account is disabled.

use super::{EE, SECRET, now, own_token, setup};
use longrun_client::Client;
use serde_json::json;
use std::time::{Duration, Instant};

/// Reads the watch until it ends; returns the last event's name and data, and when the
/// stream ended.
async fn until_the_end(client: &Client) -> (String, serde_json::Value) {
    let mut watcher = client.watch("p", "", None, "").await.unwrap();
    let mut last = (String::new(), serde_json::Value::Null);
    while let Some(event) = tokio::time::timeout(Duration::from_secs(15), watcher.next())
        .await
        .expect("the stream outlived its credentials")
        .unwrap()
    {
        last = (event.event.clone(), event.json());
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_ends_when_its_token_expires_or_its_account_is_disabled() {
    let s = setup().await;
    // A token of the server's own, ending in 2 s.
    let expiring = own_token(
        SECRET,
        json!({
            "iss": "longrun", "aud": "longrun", "sub": "writer-sa@p.iam.longrun",
            "key": s.keys["writer-sa"].private_key_id, "scope": EE,
            "iat": now(), "exp": now() + 2,
        }),
    );
    let opened = Instant::now();
    let (event, data) = until_the_end(&s.client(&expiring)).await;
    assert_eq!(event, "error", "{data}");
    assert_eq!(data["error"]["code"], 401, "{data}");
    assert_eq!(
        data["error"]["details"][0]["reason"],
        "ACCESS_TOKEN_EXPIRED"
    );
    assert!(
        opened.elapsed() < Duration::from_secs(10),
        "{:?}",
        opened.elapsed()
    );

    // A service account disabled while it watches.
    let token = s.token("gone-sa").await;
    let watching = {
        let client = s.client(&token);
        tokio::spawn(async move { until_the_end(&client).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    s.disable("gone-sa@p.iam.longrun").await;
    let (event, data) = watching.await.unwrap();
    assert_eq!(event, "error", "{data}");
    assert_eq!(
        data["error"]["details"][0]["reason"],
        "ACCOUNT_STATE_INVALID"
    );
}

fn authorized<T>(token: String, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_streams_end_when_their_token_expires() {
    use longrun_proto::longrun::v1 as pb;
    let s = setup().await;
    let expiring = |sub: &str, key: &str| {
        own_token(
            SECRET,
            json!({
                "iss": "longrun", "aud": "longrun", "sub": sub, "key": key, "scope": EE,
                "iat": now(), "exp": now() + 2,
            }),
        )
    };
    let channel = tonic::transport::Channel::from_shared(s.server.base.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let writer = expiring(
        "writer-sa@p.iam.longrun",
        &s.keys["writer-sa"].private_key_id,
    );
    let mut watch = pb::operations_client::OperationsClient::new(channel.clone())
        .watch_operations(authorized(
            writer,
            pb::WatchOperationsRequest {
                parent: "projects/p".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(15), watch.message())
            .await
            .expect("the watch outlived its token")
        {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the watch ended without a reason"),
            Err(status) => break status,
        }
    };
    assert_eq!(ended.code(), tonic::Code::Unauthenticated, "{ended:?}");

    let worker = expiring(
        "worker-sa@p.iam.longrun",
        &s.keys["worker-sa"].private_key_id,
    );
    let (_calls, outbound) = tokio::sync::mpsc::channel::<pb::WorkRequest>(1);
    let mut work = pb::workers_client::WorkersClient::new(channel)
        .work(authorized(
            worker,
            tokio_stream::wrappers::ReceiverStream::new(outbound),
        ))
        .await
        .unwrap()
        .into_inner();
    let ended = tokio::time::timeout(Duration::from_secs(15), work.message())
        .await
        .expect("the Work stream outlived its token")
        .unwrap_err();
    assert_eq!(ended.code(), tonic::Code::Unauthenticated, "{ended:?}");
}
