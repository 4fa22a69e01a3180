//! Schedules (docs/schedules.md) over REST and gRPC on both stores: create, get, list,
//! patch (pause and resume), delete and their validation; a schedule firing every second
//! whose operations carry `metadata.schedule`; the overlap policies.

use crate::common::{TestServer, envelope, is_timestamp};
use crate::postgres::{finish, server_on};
use longrun_testkit::postgres::Schema;
use serde_json::{Value, json};
use std::time::Duration;

const SCHEDULES: &str = "/v1/projects/p/schedules";

async fn create(s: &TestServer, body: Value) -> (u16, Value) {
    s.request("POST", SCHEDULES, Some(&body.to_string())).await
}

/// The operations a schedule started, oldest first.
async fn started(s: &TestServer, schedule: &str) -> Vec<Value> {
    let filter = format!("metadata.schedule = \"{schedule}\"");
    let path = format!(
        "/v1/projects/p/operations?pageSize=1000&filter={}",
        form_urlencoded::byte_serialize(filter.as_bytes()).collect::<String>()
    );
    let (status, page) = s.request("GET", &path, None).await;
    assert_eq!(status, 200, "{page}");
    let mut ops = page["operations"].as_array().cloned().unwrap_or_default();
    ops.reverse();
    ops
}

async fn crud_and_validation(s: &TestServer) {
    let operation = json!({"type": "EXPORT_IMAGE", "description": "nightly", "payload": {"a": 1}});
    let (status, created) = create(
        s,
        json!({"scheduleId": "nightly", "cron": "0 3 * * *", "timeZone": "Europe/Paris",
               "operation": operation}),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    for field in ["nextFireTime", "createTime", "updateTime"] {
        assert!(is_timestamp(&created[field]), "{field}: {created}");
    }
    let mut expected = json!({
        "name": "projects/p/schedules/nightly",
        "cron": "0 3 * * *",
        "timeZone": "Europe/Paris",
        "operation": operation,
        "overlapPolicy": "SKIP",
        "paused": false,
    });
    for field in ["nextFireTime", "createTime", "updateTime"] {
        expected[field] = created[field].clone();
    }
    assert_eq!(created, expected);
    // 03:00 in Paris is 01:00 or 02:00 UTC.
    let next = created["nextFireTime"].as_str().unwrap();
    assert!(
        next.ends_with("T01:00:00.000Z") || next.ends_with("T02:00:00.000Z"),
        "{next}"
    );

    let (status, again) = s
        .request(
            "GET",
            &format!("/v1/{}", "projects/p/schedules/nightly"),
            None,
        )
        .await;
    assert_eq!((status, &again), (200, &created));
    let (status, taken) = create(
        s,
        json!({"scheduleId": "nightly", "cron": "0 3 * * *", "operation": operation}),
    )
    .await;
    assert_eq!(
        (status, taken),
        (
            409,
            envelope(
                409,
                "ALREADY_EXISTS",
                "SCHEDULE_ALREADY_EXISTS",
                "schedule projects/p/schedules/nightly already exists",
                json!({"name": "projects/p/schedules/nightly"})
            )
        )
    );
    // No id: one is made up; six fields take seconds; UTC by default.
    let (status, made) = create(
        s,
        json!({"cron": "*/30 * * * * *", "operation": {"type": "T"},
                                          "overlapPolicy": "ALLOW", "paused": true}),
    )
    .await;
    assert_eq!(status, 200, "{made}");
    let id = made["name"]
        .as_str()
        .unwrap()
        .strip_prefix("projects/p/schedules/")
        .unwrap();
    assert_eq!(id.len(), 24, "{made}");
    assert_eq!(
        (made["timeZone"].as_str(), made["paused"].as_bool()),
        (Some("UTC"), Some(true))
    );
    assert!(made.get("nextFireTime").is_none(), "paused: {made}");

    // List: name order, paged.
    let (status, first) = s
        .request("GET", &format!("{SCHEDULES}?pageSize=1"), None)
        .await;
    assert_eq!(status, 200);
    let first_name = first["schedules"][0]["name"].as_str().unwrap().to_string();
    let token = first["nextPageToken"].as_str().unwrap();
    let (_, second) = s
        .request(
            "GET",
            &format!("{SCHEDULES}?page_size=1&pageToken={token}"),
            None,
        )
        .await;
    let second_name = second["schedules"][0]["name"].as_str().unwrap().to_string();
    assert!(first_name < second_name, "{first_name} {second_name}");
    assert!(second.get("nextPageToken").is_none(), "{second}");
    let (status, bad) = s
        .request(
            "GET",
            &format!("/v1/projects/q/schedules?pageToken={token}"),
            None,
        )
        .await;
    assert_eq!(
        (status, bad["error"]["details"][0]["reason"].as_str()),
        (400, Some("INVALID_PAGE_TOKEN"))
    );

    // Pause and resume are PATCHes of `paused`.
    let path = "/v1/projects/p/schedules/nightly";
    let (status, paused) = s
        .request(
            "PATCH",
            &format!("{path}?updateMask=paused"),
            Some(r#"{"paused": true}"#),
        )
        .await;
    assert_eq!(status, 200, "{paused}");
    assert_eq!(paused["paused"], true);
    assert!(paused.get("nextFireTime").is_none(), "{paused}");
    let (_, resumed) = s
        .request(
            "PATCH",
            &format!("{path}?updateMask=paused"),
            Some(r#"{"paused": false}"#),
        )
        .await;
    assert_eq!(resumed["nextFireTime"], created["nextFireTime"]);
    let (status, changed) = s
        .request(
            "PATCH",
            &format!("{path}?updateMask=cron,overlapPolicy"),
            Some(r#"{"cron": "0 4 * * *", "overlapPolicy": "CANCEL_PREVIOUS", "paused": true}"#),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(
        (
            &changed["cron"],
            &changed["overlapPolicy"],
            &changed["paused"]
        ),
        (
            &json!("0 4 * * *"),
            &json!("CANCEL_PREVIOUS"),
            &json!(false)
        )
    );
    // What a get returns can be written back.
    let (status, _) = s.request("PATCH", path, Some(&changed.to_string())).await;
    assert_eq!(status, 200);

    // Validation: 400 naming the field.
    let refused = |status: u16, body: &Value, field: &str| {
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["status"], "INVALID_ARGUMENT", "{body}");
        assert_eq!(
            body["error"]["details"][0]["metadata"]["field"], field,
            "{body}"
        );
    };
    for (body, field) in [
        (
            json!({"cron": "0 3 * *", "operation": {"type": "T"}}),
            "cron",
        ),
        (
            json!({"cron": "0 3 * * * * *", "operation": {"type": "T"}}),
            "cron",
        ),
        (
            json!({"cron": "banana", "operation": {"type": "T"}}),
            "cron",
        ),
        (json!({"operation": {"type": "T"}}), "cron"),
        (
            json!({"cron": "0 3 * * *", "timeZone": "Mars/Base", "operation": {"type": "T"}}),
            "timeZone",
        ),
        (json!({"cron": "0 3 * * *"}), "operation"),
        (
            json!({"cron": "0 3 * * *", "operation": {"type": ""}}),
            "operation",
        ),
        (
            json!({"cron": "0 3 * * *", "operation": {"type": "T", "priority": 10000}}),
            "operation",
        ),
        (
            json!({"cron": "0 3 * * *", "operation": {"type": "T", "requestId": "r"}}),
            "operation",
        ),
        (
            json!({"cron": "0 3 * * *", "operation": {"type": "T", "operationId": "o"}}),
            "operation",
        ),
        (
            json!({"cron": "0 3 * * *", "operation": {"type": "T", "bogus": 1}}),
            "operation",
        ),
        (
            json!({"cron": "0 3 * * *", "operation": {"type": "T"}, "overlapPolicy": "SOMETIMES"}),
            "overlapPolicy",
        ),
        (
            json!({"cron": "0 3 * * *", "operation": {"type": "T"}, "color": "red"}),
            "color",
        ),
    ] {
        let (status, answer) = create(s, body.clone()).await;
        refused(status, &answer, field);
    }
    let (status, answer) = s
        .request(
            "PATCH",
            &format!("{path}?updateMask=cron"),
            Some(r#"{"cron": "nope"}"#),
        )
        .await;
    refused(status, &answer, "cron");
    let (status, answer) = s
        .request("PATCH", &format!("{path}?updateMask=name"), Some("{}"))
        .await;
    refused(status, &answer, "updateMask");
    let (status, answer) = s
        .request(
            "POST",
            SCHEDULES,
            Some(
                &json!({"scheduleId": "a/b", "cron": "0 3 * * *", "operation": {"type": "T"}})
                    .to_string(),
            ),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    let (status, _) = s.request("PUT", path, Some("{}")).await;
    assert_eq!(status, 405);

    // Delete; then it is gone.
    let (status, answer) = s.request("DELETE", path, None).await;
    assert_eq!((status, answer), (200, json!({})));
    let missing = envelope(
        404,
        "NOT_FOUND",
        "SCHEDULE_NOT_FOUND",
        "schedule projects/p/schedules/nightly not found",
        json!({"name": "projects/p/schedules/nightly"}),
    );
    assert_eq!(s.request("GET", path, None).await, (404, missing.clone()));
    assert_eq!(
        s.request("DELETE", path, None).await,
        (404, missing.clone())
    );
    assert_eq!(
        s.request("PATCH", &format!("{path}?updateMask=paused"), Some("{}"))
            .await,
        (404, missing)
    );
}

#[tokio::test]
async fn crud_and_validation_over_rest() {
    let s = TestServer::start().await;
    crud_and_validation(&s).await;
    s.stop().await;
    let Some(schema) = Schema::create("schedules_crud").await else {
        return;
    };
    let s = server_on(schema.url()).await;
    crud_and_validation(&s).await;
    finish(schema, [s]).await;
}

/// Waits until `done` holds of the schedule's operations, or fails after `within`.
async fn until(
    s: &TestServer,
    schedule: &str,
    within: Duration,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let started_at = std::time::Instant::now();
    loop {
        let ops = started(s, schedule).await;
        if done(&ops) {
            return ops;
        }
        assert!(
            started_at.elapsed() < within,
            "not yet after {within:?}: {ops:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn fires_every_second(s: &TestServer) {
    let (status, created) = create(
        s,
        json!({"scheduleId": "tick", "cron": "* * * * * *", "overlapPolicy": "ALLOW",
               "operation": {"type": "TICK", "payload": {"n": 1}}}),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let name = "projects/p/schedules/tick";
    let ops = until(s, name, Duration::from_secs(10), |ops| ops.len() >= 3).await;
    let mut fire_times = Vec::new();
    for op in &ops {
        assert_eq!(op["metadata"]["schedule"], name, "{op}");
        assert_eq!(op["metadata"]["type"], "TICK");
        // The id names the fire time: a whole second.
        let id = op["name"]
            .as_str()
            .unwrap()
            .strip_prefix("projects/p/operations/tick-")
            .unwrap();
        assert_eq!(id.len(), 16, "{id}");
        fire_times.push(id.to_string());
    }
    let mut distinct = fire_times.clone();
    distinct.dedup();
    assert_eq!(distinct, fire_times, "one operation per fire time");
    // Paused: no more.
    let (status, _) = s
        .request(
            "PATCH",
            "/v1/projects/p/schedules/tick?updateMask=paused",
            Some(r#"{"paused": true}"#),
        )
        .await;
    assert_eq!(status, 200);
    let before = started(s, name).await.len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(started(s, name).await.len(), before);
    let (_, schedule) = s
        .request("GET", "/v1/projects/p/schedules/tick", None)
        .await;
    assert!(is_timestamp(&schedule["lastFireTime"]), "{schedule}");
    assert!(
        schedule["lastOperation"]
            .as_str()
            .unwrap()
            .starts_with("projects/p/operations/tick-")
    );
}

#[tokio::test]
async fn a_schedule_firing_every_second_starts_operations_that_name_it() {
    let s = TestServer::start().await;
    fires_every_second(&s).await;
    s.stop().await;
    let Some(schema) = Schema::create("schedules_tick").await else {
        return;
    };
    let s = server_on(schema.url()).await;
    fires_every_second(&s).await;
    finish(schema, [s]).await;
}

#[tokio::test]
async fn overlap_policies() {
    let s = TestServer::start().await;
    // SKIP: the first operation waits PENDING (no worker), so later fire times pass.
    let (status, _) = create(
        &s,
        json!({"scheduleId": "skip", "cron": "* * * * * *", "operation": {"type": "SKIPPED"}}),
    )
    .await;
    assert_eq!(status, 200);
    // CANCEL_PREVIOUS: each firing cancels the one before.
    let (status, _) = create(
        &s,
        json!({"scheduleId": "cancel", "cron": "* * * * * *",
        "overlapPolicy": "CANCEL_PREVIOUS", "operation": {"type": "CANCELLED_EACH"}}),
    )
    .await;
    assert_eq!(status, 200);
    let cancelling = until(
        &s,
        "projects/p/schedules/cancel",
        Duration::from_secs(10),
        |ops| ops.len() >= 3,
    )
    .await;
    let (_, skip) = s
        .request("GET", "/v1/projects/p/schedules/skip", None)
        .await;
    let skipped = started(&s, "projects/p/schedules/skip").await;
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_ne!(skip["lastFireTime"], skipped[0]["metadata"]["createTime"]);
    assert_eq!(skip["lastOperation"], skipped[0]["name"]);
    let cancelling = started(&s, "projects/p/schedules/cancel")
        .await
        .into_iter()
        .filter(|op| cancelling.iter().any(|c| c["name"] == op["name"]))
        .collect::<Vec<_>>();
    for op in &cancelling[..cancelling.len() - 1] {
        assert_eq!(op["metadata"]["state"], "CANCELLED", "{op}");
    }
    // Once SKIP's operation is done, the next fire time submits again.
    let name = skipped[0]["name"].as_str().unwrap();
    let (status, _) = s.request("POST", &format!("/v1/{name}:cancel"), None).await;
    assert_eq!(status, 200);
    until(
        &s,
        "projects/p/schedules/skip",
        Duration::from_secs(5),
        |ops| ops.len() == 2,
    )
    .await;
    s.stop().await;
}

/// `longrun.v1.Schedules`: the same calls over gRPC, and the operations' `schedule` in
/// their `OperationMetadata`.
#[tokio::test]
async fn the_same_calls_over_grpc() {
    use longrun_proto::google::earthengine::v1 as ee;
    use longrun_proto::google::longrunning as lro;
    use longrun_proto::google::longrunning::operations_client::OperationsClient;
    use longrun_proto::json::{from_struct, to_struct};
    use longrun_proto::longrun::v1 as pb;
    use longrun_proto::longrun::v1::schedule::OverlapPolicy;
    use longrun_proto::longrun::v1::schedules_client::SchedulesClient;
    use prost::Message;

    let s = TestServer::start().await;
    let channel = tonic::transport::Channel::from_shared(s.base.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut schedules = SchedulesClient::new(channel.clone());
    let operation = json!({"type": "GRPC_TICK", "payload": {"k": [1, 2]}});
    let created = schedules
        .create_schedule(pb::CreateScheduleRequest {
            parent: "projects/p".into(),
            schedule_id: "g".into(),
            schedule: Some(pb::Schedule {
                cron: "* * * * * *".into(),
                time_zone: "America/New_York".into(),
                operation: Some(to_struct(&operation)),
                overlap_policy: OverlapPolicy::Allow as i32,
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.name, "projects/p/schedules/g");
    assert_eq!(created.overlap_policy, OverlapPolicy::Allow as i32);
    assert_eq!(from_struct(created.operation.as_ref().unwrap()), operation);
    assert!(created.next_fire_time.is_some() && created.create_time.is_some());
    // REST sees the same schedule.
    let (status, rest) = s.request("GET", "/v1/projects/p/schedules/g", None).await;
    assert_eq!(
        (status, &rest["timeZone"]),
        (200, &json!("America/New_York"))
    );

    // Its operations carry the schedule over gRPC too.
    let ops = until(
        &s,
        "projects/p/schedules/g",
        Duration::from_secs(10),
        |ops| !ops.is_empty(),
    )
    .await;
    let mut operations = OperationsClient::new(channel.clone());
    let op = operations
        .get_operation(lro::GetOperationRequest {
            name: ops[0]["name"].as_str().unwrap().into(),
        })
        .await
        .unwrap()
        .into_inner();
    let metadata = ee::OperationMetadata::decode(op.metadata.unwrap().value.as_slice()).unwrap();
    assert_eq!(metadata.schedule, "projects/p/schedules/g");

    // Pause: an update of `paused` with its mask.
    let paused = schedules
        .update_schedule(pb::UpdateScheduleRequest {
            schedule: Some(pb::Schedule {
                name: "projects/p/schedules/g".into(),
                paused: true,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["paused".into()],
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(paused.paused && paused.next_fire_time.is_none());
    assert_eq!(paused.cron, "* * * * * *");
    let listed = schedules
        .list_schedules(pb::ListSchedulesRequest {
            parent: "projects/p".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        listed.schedules,
        vec![
            schedules
                .get_schedule(pb::GetScheduleRequest {
                    name: "projects/p/schedules/g".into()
                })
                .await
                .unwrap()
                .into_inner()
        ]
    );

    // Validation: INVALID_ARGUMENT naming the field.
    let refused = schedules
        .create_schedule(pb::CreateScheduleRequest {
            parent: "projects/p".into(),
            schedule_id: "bad".into(),
            schedule: Some(pb::Schedule {
                cron: "0 3 * * *".into(),
                time_zone: "Nowhere/Else".into(),
                operation: Some(to_struct(&json!({"type": "T"}))),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(refused.message().contains("timeZone"), "{refused:?}");

    schedules
        .delete_schedule(pb::DeleteScheduleRequest {
            name: "projects/p/schedules/g".into(),
        })
        .await
        .unwrap();
    let gone = schedules
        .get_schedule(pb::GetScheduleRequest {
            name: "projects/p/schedules/g".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), tonic::Code::NotFound);
    s.stop().await;
}
