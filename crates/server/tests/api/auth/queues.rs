//! Queues are permission-checked on their project: get and list with get's permission,
//! pause and resume with the admin role's `longrun.queues.update` (docs/queues.md).

use super::{IDP, now, setup, status_of};
use serde_json::json;

#[tokio::test]
async fn queues_are_read_by_a_viewer_and_paused_by_an_admin() {
    let s = setup().await;
    let admin = s.client(&s.token("admin-sa").await);
    let writer = s.client(&s.token("writer-sa").await);
    let nobody = s.client(&s.token("nobody-sa").await);
    let viewer = s.client(&s.idp.sign(&json!({
        "iss": IDP, "aud": "longrun", "email": "viewer@example.com",
        "scope": super::EE, "exp": now() + 600,
    })));
    let call = |c, method: &'static str, path: &'static str| async move {
        let body = (method == "POST").then(|| "{}".to_string());
        status_of(c, method, path, &body).await
    };
    for client in [&viewer, &writer, &admin] {
        for path in ["/v1/projects/p/queues/T", "/v1/projects/p/queues"] {
            let (status, body, _) = call(client, "GET", path).await;
            assert_eq!(status, 200, "{path}: {body}");
        }
    }
    for client in [&viewer, &writer, &nobody] {
        for path in [
            "/v1/projects/p/queues/T:pause",
            "/v1/projects/p/queues/-:resume",
        ] {
            let (status, error, _) = call(client, "POST", path).await;
            assert_eq!(status, 403, "{path}: {error}");
            assert_eq!(
                error["error"]["details"][0]["reason"],
                "IAM_PERMISSION_DENIED"
            );
        }
    }
    let (status, _, _) = call(&nobody, "GET", "/v1/projects/p/queues/T").await;
    assert_eq!(status, 403);
    let (status, body, _) = call(&admin, "POST", "/v1/projects/p/queues/T:pause").await;
    assert_eq!((status, &body["state"]), (200, &json!("PAUSED")), "{body}");
    // The admin of p is nothing on q.
    let (status, _, _) = call(&admin, "POST", "/v1/projects/q/queues/T:pause").await;
    assert_eq!(status, 403);
}
