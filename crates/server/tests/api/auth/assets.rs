//! The asset registry is permission-checked like operations: on the project in the path,
//! before the asset is looked up, and on a move's or copy's destination project too.

use super::{setup, status_of};
use serde_json::json;

#[tokio::test]
async fn assets_need_the_project_permission_before_existence() {
    let s = setup().await;
    let writer = s.client(&s.token("writer-sa").await);
    let nobody = s.client(&s.token("nobody-sa").await);
    let worker = s.client(&s.token("worker-sa").await);
    let create = Some(json!({"type": "FOLDER"}).to_string());
    let (status, body, _) =
        status_of(&writer, "POST", "/v1/projects/p/assets?assetId=f", &create).await;
    assert_eq!(status, 200, "{body}");
    for (method, path, body) in [
        ("GET", "/v1/projects/p/assets/f", None),
        ("GET", "/v1/projects/p/assets/missing", None),
        ("GET", "/v1/projects/p:listAssets", None),
        ("GET", "/v1/projects/p/assets/f:listAssets", None),
        ("POST", "/v1/projects/p/assets?assetId=g", create.clone()),
        ("DELETE", "/v1/projects/p/assets/f", None),
        ("PATCH", "/v1/projects/p/assets/f", Some("{}".to_string())),
        (
            "POST",
            "/v1/projects/p/assets/f:getIamPolicy",
            Some("{}".to_string()),
        ),
    ] {
        // No binding, and a role without asset permissions: 403 whether or not it exists.
        for client in [&nobody, &worker] {
            let (status, error, _) = status_of(client, method, path, &body).await;
            assert_eq!(status, 403, "{method} {path}: {error}");
            assert_eq!(
                error["error"]["details"][0]["reason"],
                "IAM_PERMISSION_DENIED"
            );
        }
    }
    // A move or copy into a project where the caller may not create: 403.
    let to_q = Some(json!({"destinationName": "projects/q/assets/f"}).to_string());
    for verb in ["move", "copy"] {
        let path = format!("/v1/projects/p/assets/f:{verb}");
        let (status, error, _) = status_of(&writer, "POST", &path, &to_q).await;
        assert_eq!(status, 403, "{verb}: {error}");
    }
    let (status, policy, _) = status_of(
        &writer,
        "POST",
        "/v1/projects/p/assets/f:getIamPolicy",
        &Some("{}".into()),
    )
    .await;
    assert_eq!(status, 200);
    let roles: Vec<&str> = policy["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["roles/editor", "roles/owner", "roles/viewer"]);
}
