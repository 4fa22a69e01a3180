//! Every REST method, for the tests that try each one with every bad credential.

/// Every REST method on project `project`: (what, method, path, body).
pub(super) fn methods(project: &str) -> Vec<(&'static str, &'static str, String, Option<String>)> {
    let op = format!("/v1/projects/{project}/operations/x");
    vec![
        ("get", "GET", op.clone(), None),
        (
            "list",
            "GET",
            format!("/v1/projects/{project}/operations"),
            None,
        ),
        ("cancel", "POST", format!("{op}:cancel"), Some("{}".into())),
        ("delete", "DELETE", op.clone(), None),
        (
            "wait",
            "POST",
            format!("{op}:wait"),
            Some(r#"{"timeout":"0s"}"#.into()),
        ),
        (
            "submit",
            "POST",
            format!("/v1/projects/{project}/operations:submit"),
            Some(r#"{"type":"T"}"#.into()),
        ),
        (
            "batch submit",
            "POST",
            format!("/v1/projects/{project}/operations:batchSubmit"),
            Some(r#"{"requests":[{"type":"T"}]}"#.into()),
        ),
        (
            "lease",
            "POST",
            "/v1/workers/w:lease".into(),
            Some(r#"{"types":["NONE"],"waitTimeout":"0s"}"#.into()),
        ),
        (
            "heartbeat",
            "POST",
            format!("{op}:heartbeat"),
            Some(r#"{"leaseId":"l"}"#.into()),
        ),
        (
            "complete",
            "POST",
            format!("{op}:complete"),
            Some(r#"{"leaseId":"l","response":{}}"#.into()),
        ),
        (
            "release",
            "POST",
            format!("{op}:release"),
            Some(r#"{"leaseId":"l"}"#.into()),
        ),
        (
            "output",
            "GET",
            format!("/v1/operationOutputs/projects/{project}/operations/x"),
            None,
        ),
        (
            "table export",
            "POST",
            format!("/v1/projects/{project}/table:export"),
            Some(r#"{"description":"d"}"#.into()),
        ),
        (
            "list accounts",
            "GET",
            format!("/v1/projects/{project}/serviceAccounts"),
            None,
        ),
        (
            "create account",
            "POST",
            format!("/v1/projects/{project}/serviceAccounts"),
            Some(r#"{"accountId":"someone","keyId":"ab","publicKeyPem":"x"}"#.into()),
        ),
        (
            "disable account",
            "POST",
            format!(
                "/v1/projects/{project}/serviceAccounts/writer-sa@{project}.iam.longrun:disable"
            ),
            Some("{}".into()),
        ),
        (
            "delete account",
            "DELETE",
            format!("/v1/projects/{project}/serviceAccounts/writer-sa@{project}.iam.longrun"),
            None,
        ),
        (
            "get queue",
            "GET",
            format!("/v1/projects/{project}/queues/T"),
            None,
        ),
        (
            "list queues",
            "GET",
            format!("/v1/projects/{project}/queues"),
            None,
        ),
        (
            "pause queue",
            "POST",
            format!("/v1/projects/{project}/queues/T:pause"),
            Some("{}".into()),
        ),
        (
            "resume queue",
            "POST",
            format!("/v1/projects/{project}/queues/T:resume"),
            Some("{}".into()),
        ),
    ]
}
