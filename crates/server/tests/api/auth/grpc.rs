//! The gRPC side of the credentials matrix: every method, the Work stream included.

pub const METHODS: &[&str] = &[
    "GetOperation",
    "ListOperations",
    "CancelOperation",
    "DeleteOperation",
    "WaitOperation",
    "SubmitOperation",
    "Lease",
    "Heartbeat",
    "Complete",
    "Release",
    "Work",
];

/// Calls `method` over gRPC with this `authorization` (on the Work stream: opens it and
/// sends a heartbeat); the failure's code and ErrorInfo reason.
pub async fn status_of(
    channel: &tonic::transport::Channel,
    authorization: Option<&str>,
    method: &str,
    project: &str,
) -> (tonic::Code, String) {
    use longrun_proto::google::longrunning as lro;
    use longrun_proto::google::longrunning::operations_client::OperationsClient;
    use longrun_proto::google::rpc;
    use longrun_proto::longrun::v1 as pb;
    use longrun_proto::longrun::v1::submissions_client::SubmissionsClient;
    use longrun_proto::longrun::v1::workers_client::WorkersClient;
    use prost::Message;
    fn request<T>(authorization: Option<&str>, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(value) = authorization.and_then(|v| v.parse().ok()) {
            request.metadata_mut().insert("authorization", value);
        }
        request
    }
    let name = format!("projects/{project}/operations/x");
    let a = authorization;
    let operations = || OperationsClient::new(channel.clone());
    let workers = || WorkersClient::new(channel.clone());
    let heartbeat = || pb::HeartbeatRequest {
        name: name.clone(),
        lease_id: "l".into(),
        ..Default::default()
    };
    let failure = match method {
        "GetOperation" => operations()
            .get_operation(request(a, lro::GetOperationRequest { name: name.clone() }))
            .await
            .err(),
        "ListOperations" => operations()
            .list_operations(request(
                a,
                lro::ListOperationsRequest {
                    name: format!("projects/{project}"),
                    ..Default::default()
                },
            ))
            .await
            .err(),
        "CancelOperation" => operations()
            .cancel_operation(request(
                a,
                lro::CancelOperationRequest { name: name.clone() },
            ))
            .await
            .err(),
        "DeleteOperation" => operations()
            .delete_operation(request(
                a,
                lro::DeleteOperationRequest { name: name.clone() },
            ))
            .await
            .err(),
        "WaitOperation" => operations()
            .wait_operation(request(
                a,
                lro::WaitOperationRequest {
                    name: name.clone(),
                    timeout: Some(prost_types::Duration::default()),
                },
            ))
            .await
            .err(),
        "SubmitOperation" => SubmissionsClient::new(channel.clone())
            .submit_operation(request(
                a,
                pb::SubmitOperationRequest {
                    parent: format!("projects/{project}"),
                    r#type: "T".into(),
                    ..Default::default()
                },
            ))
            .await
            .err(),
        "Lease" => workers()
            .lease(request(
                a,
                pb::LeaseRequest {
                    types: vec!["NONE".into()],
                    wait_timeout: Some(prost_types::Duration::default()),
                    ..Default::default()
                },
            ))
            .await
            .err(),
        "Heartbeat" => workers().heartbeat(request(a, heartbeat())).await.err(),
        "Complete" => workers()
            .complete(request(
                a,
                pb::CompleteRequest {
                    name: name.clone(),
                    lease_id: "l".into(),
                    result: Some(pb::complete_request::Result::Response(
                        prost_types::Value::default(),
                    )),
                },
            ))
            .await
            .err(),
        "Release" => workers()
            .release(request(
                a,
                pb::ReleaseRequest {
                    name: name.clone(),
                    lease_id: "l".into(),
                },
            ))
            .await
            .err(),
        "Work" => {
            let call = pb::WorkRequest {
                id: 1,
                call: Some(pb::work_request::Call::Heartbeat(heartbeat())),
            };
            let calls = tokio_stream::iter(vec![call]);
            match workers().work(request(a, calls)).await {
                Err(status) => Some(status),
                Ok(stream) => {
                    let answer = stream.into_inner().message().await.unwrap().unwrap();
                    let Some(pb::work_response::Answer::Error(status)) = answer.answer else {
                        panic!("Work: {answer:?}");
                    };
                    Some(tonic::Status::with_details(
                        tonic::Code::from_i32(status.code),
                        status.message.clone(),
                        status.encode_to_vec().into(),
                    ))
                }
            }
        }
        other => panic!("{other}"),
    };
    let status = failure.unwrap_or_else(|| panic!("{method} succeeded"));
    let details = rpc::Status::decode(status.details()).unwrap();
    let info = rpc::ErrorInfo::decode(details.details[0].value.as_slice()).unwrap();
    (status.code(), info.reason)
}
