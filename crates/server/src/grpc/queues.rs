//! `longrun.v1.Queues` (docs/queues.md): the same calls as REST's queues, routed through the
//! same `Route::Queues` and served by the same engine calls.

use super::{Grpc, convert, project};
use crate::calls::Route;
use crate::queues::Call;
use longrun_engine::queues::Queue;
use longrun_proto::longrun::v1 as pb;
use longrun_types::Project;
use tonic::{Request, Response, Status};

fn message(q: &Queue) -> pb::Queue {
    pb::Queue {
        name: q.name(),
        state: if q.paused {
            pb::queue::State::Paused
        } else {
            pb::queue::State::Running
        } as i32,
        pending_count: q.counts.pending as i64,
        running_count: q.counts.running as i64,
        oldest_pending_time: q.counts.oldest_pending.map(convert::timestamp),
    }
}

/// A queue's name (`projects/P/queues/TYPE`): its project and type.
fn split(name: &str) -> Result<(Project, String), Status> {
    let invalid = || {
        convert::error(crate::kit::error::ApiError::invalid(
            "INVALID_NAME",
            format!("`{name}` is not a queue name like projects/P/queues/TYPE"),
        ))
    };
    let (parent, op_type) = name.split_once("/queues/").ok_or_else(invalid)?;
    if op_type.contains('/') {
        return Err(invalid());
    }
    Ok((project(parent)?, op_type.to_string()))
}

impl Grpc {
    /// Authorizes `call` on the queue `name` names, then serves it.
    async fn queue_call(
        &self,
        metadata: &super::Sent,
        name: &str,
        call: impl FnOnce(String) -> Call,
        paused: Option<bool>,
    ) -> Result<Response<pb::Queue>, Status> {
        let (project, op_type) = split(name)?;
        self.authorize(
            metadata,
            &Route::Queues(project.clone(), call(op_type.clone())),
        )
        .await?;
        let engine = &self.app.engine;
        let queue = match paused {
            None => engine.queue(&project, &op_type).await,
            Some(paused) => engine.pause_queue(&project, &op_type, paused).await,
        };
        Ok(Response::new(message(
            &queue.map_err(convert::engine_error)?,
        )))
    }
}

#[tonic::async_trait]
impl pb::queues_server::Queues for Grpc {
    async fn get_queue(
        &self,
        request: Request<pb::GetQueueRequest>,
    ) -> Result<Response<pb::Queue>, Status> {
        let (metadata, extensions, r) = request.into_parts();
        let metadata = (metadata, extensions);
        self.queue_call(&metadata, &r.name, Call::Get, None).await
    }

    async fn list_queues(
        &self,
        request: Request<pb::ListQueuesRequest>,
    ) -> Result<Response<pb::ListQueuesResponse>, Status> {
        let (metadata, extensions, r) = request.into_parts();
        let metadata = (metadata, extensions);
        let project = project(&r.parent)?;
        self.authorize(&metadata, &Route::Queues(project.clone(), Call::List))
            .await?;
        let queues = self
            .app
            .engine
            .queues(&project)
            .await
            .map_err(convert::engine_error)?;
        Ok(Response::new(pb::ListQueuesResponse {
            queues: queues.iter().map(message).collect(),
        }))
    }

    async fn pause_queue(
        &self,
        request: Request<pb::PauseQueueRequest>,
    ) -> Result<Response<pb::Queue>, Status> {
        let (metadata, extensions, r) = request.into_parts();
        let metadata = (metadata, extensions);
        self.queue_call(&metadata, &r.name, Call::Pause, Some(true))
            .await
    }

    async fn resume_queue(
        &self,
        request: Request<pb::ResumeQueueRequest>,
    ) -> Result<Response<pb::Queue>, Status> {
        let (metadata, extensions, r) = request.into_parts();
        let metadata = (metadata, extensions);
        self.queue_call(&metadata, &r.name, Call::Resume, Some(false))
            .await
    }
}
