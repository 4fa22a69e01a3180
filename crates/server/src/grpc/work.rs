//! The `Work` stream: a worker's lease, heartbeat, complete (one, or a batch) and release calls on one stream,
//! answered in any order (each answer carries its call's id), and cancellations pushed the
//! moment they are requested for any operation this stream leased or reported on. A
//! `stop_leasing` call ends the stream's waits for work (a worker stopping).

use super::{Grpc, convert};
use crate::auth::Caller;
use longrun_proto::google::rpc;
use longrun_proto::longrun::v1 as pb;
use pb::work_request::Call;
use pb::work_response::Answer;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use tonic::Status;

pub type Outbound =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::WorkResponse, Status>> + Send>>;

/// Answers arrive out of order; this many may wait to be sent.
const OUTBOX: usize = 256;

/// A failed call's status, with the details the unary call would carry.
fn failed(status: Status) -> Answer {
    Answer::Error(rpc_status(status))
}

/// The google.rpc.Status a failed call carries (with its details).
fn rpc_status(status: Status) -> rpc::Status {
    use prost::Message;
    rpc::Status::decode(status.details()).unwrap_or_else(|_| rpc::Status {
        code: status.code() as i32,
        message: status.message().to_string(),
        details: Vec::new(),
    })
}

pub fn serve(
    grpc: Grpc,
    caller: Caller,
    mut inbound: tonic::Streaming<pb::WorkRequest>,
) -> Outbound {
    let (tx, rx) = mpsc::channel(OUTBOX);
    let (leased_tx, mut leased_rx) = mpsc::unbounded_channel::<(String, String)>();
    // Set by `stop_leasing`: the stream's lease waits end.
    let stop_leasing = Arc::new(watch::channel(false).0);
    tokio::spawn(async move {
        let revoked = grpc.app.auth.revoked(&caller, None);
        tokio::pin!(revoked);
        // Cancel watchers by operation name (with the lease id they watch); they end with
        // the stream.
        let mut watchers: HashMap<String, (String, AbortHandle)> = HashMap::new();
        let mut calls = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                message = inbound.message() => {
                    let request = match message {
                        Ok(Some(request)) => request,
                        Ok(None) => break,
                        // A message over the limit, or one that does not decode: the stream
                        // ends with the reason, never silently.
                        Err(status) => {
                            let _ = tx.send(Err(too_large_as_exhausted(status))).await;
                            break;
                        }
                    };
                    let (grpc, caller, tx, leased, stop) = (
                        grpc.clone(),
                        caller.clone(),
                        tx.clone(),
                        leased_tx.clone(),
                        stop_leasing.clone(),
                    );
                    calls.spawn(async move {
                        let answer = answer(&grpc, &caller, request.call, &leased, &stop).await;
                        let _ = tx.send(Ok(pb::WorkResponse { id: request.id, answer: Some(answer) })).await;
                    });
                }
                Some((name, lease_id)) = leased_rx.recv() => {
                    if watchers.get(&name).is_some_and(|(id, w)| *id == lease_id && !w.is_finished()) {
                        continue;
                    }
                    let engine = grpc.app.engine.clone();
                    let tx = tx.clone();
                    let (watched, id) = (name.clone(), lease_id.clone());
                    let watcher = tokio::spawn(async move {
                        let Ok(op_name) = longrun_types::Name::parse(&watched) else { return };
                        if let Ok(true) = engine.cancel_requested(&op_name, &id).await {
                            let push = Answer::Cancel(pb::CancelRequested { name: watched, lease_id: id });
                            let _ = tx.send(Ok(pb::WorkResponse { id: 0, answer: Some(push) })).await;
                        }
                    });
                    if let Some((_, old)) = watchers.insert(name, (lease_id, watcher.abort_handle())) {
                        old.abort();
                    }
                    watchers.retain(|_, (_, w)| !w.is_finished());
                }
                Some(_) = calls.join_next(), if !calls.is_empty() => {}
                // The worker's credentials no longer hold: the stream ends with the reason.
                error = &mut revoked => {
                    let _ = tx.send(Err(convert::error(error))).await;
                    break;
                }
                // The server is shutting down: the calls in flight end at once, and so
                // does the stream, so that draining connections does not wait for it.
                _ = grpc.app.engine.closed() => break,
            }
        }
        // The worker half-closed: answer the calls in flight, unless it is gone altogether.
        loop {
            tokio::select! {
                joined = calls.join_next() => if joined.is_none() { break },
                _ = tx.closed() => break,
            }
        }
        calls.abort_all();
        for (_, (_, watcher)) in watchers {
            watcher.abort();
        }
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// A message over the size limit is RESOURCE_EXHAUSTED, as gRPC's own implementations say
/// it (the decoder reports OUT_OF_RANGE), with the decoder's message: its size and the limit.
fn too_large_as_exhausted(status: Status) -> Status {
    if status.code() == tonic::Code::OutOfRange && status.message().contains("too large") {
        Status::resource_exhausted(status.message())
    } else {
        status
    }
}

/// One call's answer. Leases and heartbeats also start watching their operations; a lease
/// waits for work until `stop_leasing` is set.
async fn answer(
    grpc: &Grpc,
    caller: &Caller,
    call: Option<Call>,
    leased: &mpsc::UnboundedSender<(String, String)>,
    stop_leasing: &watch::Sender<bool>,
) -> Answer {
    let result = match call {
        Some(Call::Lease(r)) => {
            let mut stop = stop_leasing.subscribe();
            let stop = async move {
                let _ = stop.wait_for(|stopped| *stopped).await;
            };
            grpc.lease(caller, r, stop).await.map(|response| {
                for lease in &response.leases {
                    if let Some(op) = &lease.operation {
                        let _ = leased.send((op.name.clone(), lease.lease_id.clone()));
                    }
                }
                Answer::Lease(response)
            })
        }
        Some(Call::StopLeasing(stop)) => {
            stop_leasing.send_replace(true);
            Ok(Answer::StoppedLeasing(stop))
        }
        Some(Call::Heartbeat(r)) => {
            let watch = (r.name.clone(), r.lease_id.clone());
            grpc.heartbeat(caller, r, false).await.map(|beat| {
                let _ = leased.send(watch);
                Answer::Heartbeat(beat)
            })
        }
        Some(Call::Complete(r)) => grpc.complete(caller, r).await.map(Answer::Complete),
        Some(Call::Release(r)) => grpc.release(caller, r).await.map(Answer::Released),
        Some(Call::CompleteBatch(batch)) => {
            Ok(Answer::Completed(complete_batch(grpc, caller, batch).await))
        }
        None => Err(convert::error(crate::kit::error::ApiError::invalid(
            "INVALID_REQUEST_BODY",
            "a work request carries a lease, heartbeat or complete call",
        ))),
    };
    result.unwrap_or_else(failed)
}

/// Applies a batch's completions concurrently (so that the store commits them together) and
/// answers each in order; a failed one does not fail the others.
async fn complete_batch(
    grpc: &Grpc,
    caller: &Caller,
    batch: pb::CompleteBatch,
) -> pb::CompleteBatchResponse {
    use pb::complete_result::Result as Outcome;
    let running: Vec<_> = batch
        .completions
        .into_iter()
        .map(|request| {
            let (grpc, caller) = (grpc.clone(), caller.clone());
            tokio::spawn(async move { grpc.complete(&caller, request).await })
        })
        .collect();
    let mut results = Vec::with_capacity(running.len());
    for task in running {
        let result = match task.await {
            Ok(Ok(op)) => Outcome::Operation(op),
            Ok(Err(status)) => Outcome::Error(rpc_status(status)),
            Err(_) => Outcome::Error(rpc::Status {
                code: tonic::Code::Internal as i32,
                message: "the completion was interrupted".into(),
                details: Vec::new(),
            }),
        };
        results.push(pb::CompleteResult {
            result: Some(result),
        });
    }
    pb::CompleteBatchResponse { results }
}
