//! Service accounts managed over REST by a member holding roles/longrun.serviceAccountAdmin.

use super::{EE, assertion, create_key, now, setup};
use longrun_client::Client;
use longrun_types::Timestamp;
use serde_json::{Value, json};

#[tokio::test]
async fn service_accounts_are_managed_over_rest_by_their_admin() {
    let s = setup().await;
    let keys_admin = s.client(&s.token("keys-admin").await);
    let writer = s.client(&s.token("writer-sa").await);
    let status = |r: &Result<Value, longrun_client::Error>| match r {
        Ok(_) => 200,
        Err(longrun_client::Error::Api { http_status, .. }) => *http_status,
        Err(e) => panic!("{e}"),
    };
    let (account, mut key) = create_key("made-remote", "p", "", Timestamp::now()).unwrap();
    key.token_uri = s.token_uri();
    let create = json!({
        "accountId": "made-remote", "keyId": account.key_id, "publicKeyPem": account.public_key_pem,
    });
    let accounts = "/v1/projects/p/serviceAccounts";
    let post = |client: &Client, path: &str, body: Value| {
        let (client, path) = (client.clone(), path.to_string());
        async move { client.call(http::Method::POST, &path, Some(&body)).await }
    };
    // Operations roles do not manage accounts.
    assert_eq!(status(&post(&writer, accounts, create.clone()).await), 403);
    let made = post(&keys_admin, accounts, create.clone()).await.unwrap();
    assert_eq!(made["email"], "made-remote@p.iam.longrun");
    assert_eq!(made["disabled"], false);
    assert!(made.get("publicKeyPem").is_none() && made.get("private_key").is_none());
    assert_eq!(
        status(&post(&keys_admin, accounts, create.clone()).await),
        409
    );
    for bad in [
        json!({"accountId": "Bad Name", "keyId": "ab", "publicKeyPem": account.public_key_pem}),
        json!({"accountId": "made-other", "keyId": "not hex", "publicKeyPem": account.public_key_pem}),
        json!({"accountId": "made-other", "keyId": "ab", "publicKeyPem": "-----BEGIN PUBLIC KEY-----"}),
        json!({"accountId": "made-other", "keyId": "ab", "publicKeyPem": account.public_key_pem, "privateKey": "x"}),
    ] {
        assert_eq!(
            status(&post(&keys_admin, accounts, bad.clone()).await),
            400,
            "{bad}"
        );
    }
    let listed = keys_admin
        .call(http::Method::GET, accounts, None)
        .await
        .unwrap();
    let emails: Vec<&str> = listed["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["email"].as_str().unwrap())
        .collect();
    assert!(emails.contains(&"made-remote@p.iam.longrun"), "{listed}");
    assert!(emails.iter().all(|e| e.ends_with("@p.iam.longrun")));
    // The new account's own key gets tokens until it is disabled, and again once enabled.
    let grant = || async {
        let claims = json!({"iss": key.client_email, "aud": s.token_uri(), "scope": EE, "iat": now(), "exp": now() + 600});
        s.exchange(&assertion(&key, claims)).await
    };
    assert_eq!(grant().await.0, 200);
    let one = "/v1/projects/p/serviceAccounts/made-remote@p.iam.longrun";
    let disabled = post(&keys_admin, &format!("{one}:disable"), json!({}))
        .await
        .unwrap();
    assert_eq!(disabled["disabled"], true);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(grant().await.0, 400);
    post(&keys_admin, &format!("{one}:enable"), json!({}))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(grant().await.0, 200);
    // An account of another project is not found through this one's path.
    let elsewhere = "/v1/projects/p/serviceAccounts/made-remote@q.iam.longrun";
    assert_eq!(
        status(&keys_admin.call(http::Method::DELETE, elsewhere, None).await),
        404
    );
    assert_eq!(
        status(&keys_admin.call(http::Method::DELETE, one, None).await),
        200
    );
    assert_eq!(
        status(&keys_admin.call(http::Method::DELETE, one, None).await),
        404
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(grant().await.0, 400);
}
