//! The registration gate (docs/projects.md#registration-gate) over REST and gRPC: an unregistered
//! project gets nothing but cancel; a noncommercial one registered before the cutoff and not
//! verified reads, waits, cancels and deletes but starts nothing; the registry over REST.

use crate::common::{TestServer, envelope};
use longrun_proto::google::longrunning as lro;
use longrun_proto::google::longrunning::operations_client::OperationsClient;
use longrun_proto::google::rpc;
use longrun_proto::longrun::v1::SubmitOperationRequest;
use longrun_proto::longrun::v1::submissions_client::SubmissionsClient;
use prost::Message;
use serde_json::{Value, json};

const HELP: &str = "https://example.test/access";

async fn gated() -> TestServer {
    TestServer::with(|c| {
        c.projects.require_registration = true;
        c.projects.help_url = HELP.into();
    })
    .await
}

/// The 403 of the gate, with its Help link.
fn refused(reason: &str, message: &str, project: &str) -> Value {
    let mut e = envelope(
        403,
        "PERMISSION_DENIED",
        reason,
        message,
        json!({"project": project}),
    );
    e["error"]["details"].as_array_mut().unwrap().push(json!({
        "@type": "type.googleapis.com/google.rpc.Help",
        "links": [{"description": "Earth Engine access and registration", "url": HELP}],
    }));
    e
}

async fn register(s: &TestServer, project: &str, body: Value) -> (u16, Value) {
    s.request(
        "POST",
        &format!("/v1/projects/{project}/registration"),
        Some(&body.to_string()),
    )
    .await
}

async fn update(s: &TestServer, project: &str, body: Value) -> (u16, Value) {
    s.request(
        "PATCH",
        &format!("/v1/projects/{project}/registration"),
        Some(&body.to_string()),
    )
    .await
}

fn not_registered(p: &str) -> Value {
    refused(
        "PROJECT_NOT_REGISTERED",
        &format!("project {p} is not registered; only cancel is allowed"),
        p,
    )
}

fn unverified(p: &str) -> Value {
    refused(
        "ELIGIBILITY_NOT_VERIFIED",
        &format!(
            "project {p} is noncommercial, registered before 2025-04-15, and its eligibility is \
             not verified: it may read, wait for, cancel and delete its operations, but start \
             nothing new"
        ),
        p,
    )
}

#[tokio::test]
async fn an_unregistered_project_may_only_cancel() {
    let s = gated().await;
    let (status, _) = register(&s, "p", json!({"plan": "commercial"})).await;
    assert_eq!(status, 200);
    let op = s
        .submit("p", json!({"type": "T", "operationId": "a"}))
        .await;
    assert_eq!(op["name"], "projects/p/operations/a");
    s.submit("p", json!({"type": "T", "operationId": "b"}))
        .await;
    let (status, _) = s
        .request("DELETE", "/v1/projects/p/registration", None)
        .await;
    assert_eq!(status, 200);
    for (method, path, body) in [
        ("GET", "/v1/projects/p/operations/a", None),
        ("GET", "/v1/projects/p/operations", None),
        ("POST", "/v1/projects/p/operations/a:wait", Some("{}")),
        ("DELETE", "/v1/projects/p/operations/a", None),
        (
            "POST",
            "/v1/projects/p/operations:submit",
            Some("{\"type\": \"T\"}"),
        ),
        ("GET", "/v1/projects/p/config", None),
        ("GET", "/v1/projects/p/algorithms", None),
        ("GET", "/v1/projects/p/assets/x", None),
        (
            "POST",
            "/v1/projects/p/table:export",
            Some("{\"description\": \"d\"}"),
        ),
    ] {
        let answer = s.request(method, path, body).await;
        assert_eq!(answer, (403, not_registered("p")), "{method} {path}");
    }
    // Cancel is never refused; the cancelled operation stays out of reach otherwise.
    let (status, body) = s
        .request("POST", "/v1/projects/p/operations/a:cancel", Some("{}"))
        .await;
    assert_eq!(status, 200, "{body}");
    // Registering again opens everything.
    register(&s, "p", json!({"plan": "commercial"})).await;
    let (status, got) = s.request("GET", "/v1/projects/p/operations/a", None).await;
    assert_eq!(
        (status, &got["metadata"]["state"]),
        (200, &json!("CANCELLED"))
    );
    let (_, config) = s.request("GET", "/v1/projects/p/config", None).await;
    assert_eq!(config["registrationState"], "REGISTERED_COMMERCIALLY");
}

#[tokio::test]
async fn an_unverified_noncommercial_project_keeps_its_work_but_starts_nothing() {
    let s = gated().await;
    register(
        &s,
        "n",
        json!({"plan": "noncommercial", "registeredOn": "2024-01-02", "eligibility": "verified"}),
    )
    .await;
    s.submit("n", json!({"type": "T", "operationId": "a"}))
        .await;
    s.submit("n", json!({"type": "T", "operationId": "b"}))
        .await;
    let (status, entry) = update(&s, "n", json!({"eligibility": "unverified"})).await;
    assert_eq!(status, 200, "{entry}");
    assert_eq!(
        entry,
        json!({"project": "n", "plan": "noncommercial", "registeredOn": "2024-01-02", "eligibility": "unverified"})
    );
    for (method, path, body) in [
        (
            "POST",
            "/v1/projects/n/operations:submit",
            Some("{\"type\": \"T\"}"),
        ),
        (
            "POST",
            "/v1/projects/n/table:export",
            Some("{\"description\": \"d\"}"),
        ),
    ] {
        let answer = s.request(method, path, body).await;
        assert_eq!(answer, (403, unverified("n")), "{method} {path}");
    }
    let (status, _) = s.request("GET", "/v1/projects/n/operations/a", None).await;
    assert_eq!(status, 200);
    let (status, page) = s.request("GET", "/v1/projects/n/operations", None).await;
    assert_eq!(
        (status, page["operations"].as_array().unwrap().len()),
        (200, 2)
    );
    let (status, _) = s
        .request("POST", "/v1/projects/n/operations/a:cancel", Some("{}"))
        .await;
    assert_eq!(status, 200);
    let (status, _) = s
        .request(
            "POST",
            "/v1/projects/n/operations/a:wait",
            Some("{\"timeout\": \"1s\"}"),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = s
        .request("DELETE", "/v1/projects/n/operations/a", None)
        .await;
    assert_eq!(status, 200);
    let (_, config) = s.request("GET", "/v1/projects/n/config", None).await;
    assert_eq!(config["registrationState"], "REGISTERED_NOT_COMMERCIALLY");
    // Verified, or registered on the cutoff day itself (not strictly before): may start.
    update(&s, "n", json!({"eligibility": "verified"})).await;
    s.submit("n", json!({"type": "T"})).await;
    register(
        &s,
        "late",
        json!({"plan": "noncommercial", "registeredOn": "2025-04-15"}),
    )
    .await;
    s.submit("late", json!({"type": "T"})).await;
    register(
        &s,
        "early",
        json!({"plan": "noncommercial", "registeredOn": "2025-04-14"}),
    )
    .await;
    let answer = s
        .request(
            "POST",
            "/v1/projects/early/operations:submit",
            Some("{\"type\": \"T\"}"),
        )
        .await;
    assert_eq!(answer, (403, unverified("early")));
}

#[tokio::test]
async fn the_gate_over_grpc() {
    let s = gated().await;
    register(
        &s,
        "n",
        json!({"plan": "noncommercial", "registeredOn": "2020-05-05"}),
    )
    .await;
    let channel = tonic::transport::Channel::from_shared(s.base.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let details = |status: &tonic::Status| {
        let details = rpc::Status::decode(status.details()).unwrap();
        let info = rpc::ErrorInfo::decode(details.details[0].value.as_slice()).unwrap();
        assert_eq!(
            details.details[1].type_url,
            "type.googleapis.com/google.rpc.Help"
        );
        let help = rpc::Help::decode(details.details[1].value.as_slice()).unwrap();
        (info.reason, help.links[0].url.clone())
    };
    for (project, reason) in [
        ("p", "PROJECT_NOT_REGISTERED"),
        ("n", "ELIGIBILITY_NOT_VERIFIED"),
    ] {
        let refused = SubmissionsClient::new(channel.clone())
            .submit_operation(SubmitOperationRequest {
                parent: format!("projects/{project}"),
                r#type: "T".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{project}");
        assert_eq!(details(&refused), (reason.to_string(), HELP.to_string()));
    }
    let listed = OperationsClient::new(channel.clone())
        .list_operations(lro::ListOperationsRequest {
            name: "projects/p".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        details(&listed),
        ("PROJECT_NOT_REGISTERED".to_string(), HELP.to_string())
    );
    // The unverified project lists; the cancel of an unregistered project's operation is
    // not refused by the gate (the operation does not exist: NOT_FOUND, not 403).
    OperationsClient::new(channel.clone())
        .list_operations(lro::ListOperationsRequest {
            name: "projects/n".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let cancel = OperationsClient::new(channel.clone())
        .cancel_operation(lro::CancelOperationRequest {
            name: "projects/p/operations/none".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(cancel.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn the_registry_over_rest() {
    let s = TestServer::start().await;
    let (status, error) = s.request("GET", "/v1/projects/p/registration", None).await;
    assert_eq!(status, 404, "{error}");
    assert_eq!(
        error["error"]["details"][0]["reason"],
        "PROJECT_NOT_REGISTERED"
    );
    let (status, entry) = register(
        &s,
        "p",
        json!({"plan": "noncommercial", "registeredOn": "2024-03-04"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        entry,
        json!({"project": "p", "plan": "noncommercial", "registeredOn": "2024-03-04", "eligibility": "unverified"})
    );
    let (status, _) = register(&s, "p", json!({"plan": "commercial"})).await;
    assert_eq!(status, 409);
    let (_, today) = register(&s, "a", json!({"plan": "commercial"})).await;
    assert_eq!(today["registeredOn"].as_str().unwrap().len(), 10);
    for (body, reason) in [
        (json!({}), "INVALID_PLAN"),
        (json!({"plan": "free"}), "INVALID_PLAN"),
        (
            json!({"plan": "commercial", "registeredOn": "2024-02-30"}),
            "INVALID_DATE",
        ),
        (
            json!({"plan": "commercial", "eligibility": "maybe"}),
            "INVALID_ELIGIBILITY",
        ),
    ] {
        let (status, error) = register(&s, "z", body.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(error["error"]["details"][0]["reason"], reason, "{body}");
    }
    let (status, _) = update(&s, "z", json!({"plan": "commercial"})).await;
    assert_eq!(status, 404);
    let (status, list) = s.request("GET", "/v1/projectRegistrations", None).await;
    assert_eq!(status, 200);
    let projects: Vec<&str> = list["registrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["project"].as_str().unwrap())
        .collect();
    assert_eq!(projects, ["a", "p"]);
    let (status, _) = s
        .request("DELETE", "/v1/projects/p/registration", None)
        .await;
    assert_eq!(status, 200);
    let (status, _) = s
        .request("DELETE", "/v1/projects/p/registration", None)
        .await;
    assert_eq!(status, 404);
}

/// A schedule's firings pass the gate as submits do: once its project is unregistered, its
/// fire times pass without starting anything; registered again, it starts work again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedule_firings_pass_the_gate() {
    let s = gated().await;
    let (status, _) = register(&s, "p", json!({"plan": "commercial"})).await;
    assert_eq!(status, 200);
    let body = json!({"scheduleId": "tick", "cron": "* * * * * *", "overlapPolicy": "ALLOW",
                      "operation": {"type": "TICK"}});
    let (status, created) = s
        .request("POST", "/v1/projects/p/schedules", Some(&body.to_string()))
        .await;
    assert_eq!(status, 200, "{created}");
    let started = || async {
        let (_, page) = s.request("GET", "/v1/projects/p/operations", None).await;
        page["operations"].as_array().map_or(0, Vec::len)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while started().await == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the schedule never fired"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (status, _) = s
        .request("DELETE", "/v1/projects/p/registration", None)
        .await;
    assert_eq!(status, 200);
    // A firing already past the gate may still land; reads are refused meanwhile too, so
    // the gap is read afterwards, from the operations' create times.
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let gap_from = longrun_types::Timestamp::now();
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let gap_to = longrun_types::Timestamp::now();
    let (status, _) = register(&s, "p", json!({"plan": "commercial"})).await;
    assert_eq!(status, 200);
    let created_in_gap = || async {
        let (_, page) = s.request("GET", "/v1/projects/p/operations", None).await;
        let times: Vec<longrun_types::Timestamp> = page["operations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|op| {
                longrun_types::Timestamp::parse(op["metadata"]["createTime"].as_str().unwrap())
                    .unwrap()
            })
            .collect();
        let after = times.iter().filter(|t| **t > gap_to).count();
        let within = times
            .iter()
            .filter(|t| **t > gap_from && **t <= gap_to)
            .count();
        (within, after)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (within, after) = created_in_gap().await;
        assert_eq!(within, 0, "an unregistered project's schedule started work");
        if after > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the schedule did not fire again"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    s.stop().await;
}
