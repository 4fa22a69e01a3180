//! The project config is permission-checked on its project: get with the viewer role,
//! update with the admin role (docs/projects.md#project-config).

use super::{IDP, now, setup, status_of};
use serde_json::json;

#[tokio::test]
async fn config_get_needs_a_viewer_and_update_an_admin() {
    let s = setup().await;
    let admin = s.client(&s.token("admin-sa").await);
    let writer = s.client(&s.token("writer-sa").await);
    let nobody = s.client(&s.token("nobody-sa").await);
    let worker = s.client(&s.token("worker-sa").await);
    let viewer = s.client(&s.idp.sign(&json!({
        "iss": IDP, "aud": "longrun", "email": "viewer@example.com",
        "scope": super::EE, "exp": now() + 600,
    })));
    let get = |c| async move { status_of(c, "GET", "/v1alpha/projects/p/config", &None).await };
    let patch = |c, n: u64| async move {
        let body = Some(json!({"maxConcurrentExports": n}).to_string());
        let path = "/v1alpha/projects/p/config?updateMask=max_concurrent_exports";
        status_of(c, "PATCH", path, &body).await
    };
    for client in [&viewer, &writer, &admin] {
        let (status, body, _) = get(client).await;
        assert_eq!(status, 200, "{body}");
    }
    for client in [&nobody, &worker] {
        let (status, error, _) = get(client).await;
        assert_eq!(status, 403, "{error}");
        assert_eq!(
            error["error"]["details"][0]["reason"],
            "IAM_PERMISSION_DENIED"
        );
    }
    for client in [&viewer, &writer, &nobody, &worker] {
        let (status, error, _) = patch(client, 3).await;
        assert_eq!(status, 403, "{error}");
        assert_eq!(
            error["error"]["details"][0]["reason"],
            "IAM_PERMISSION_DENIED"
        );
    }
    let (status, body, _) = patch(&admin, 3).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["maxConcurrentExports"], 3);
    // The admin of p is nothing on q.
    let (status, _, _) = status_of(&admin, "GET", "/v1alpha/projects/q/config", &None).await;
    assert_eq!(status, 403);
}
