//! `longrun.v1.Schedules` (docs/schedules.md): the same calls as REST's schedules, routed
//! through the same `Route::Schedules` and served by the same feature and engine calls.

use super::{Grpc, convert, project};
use crate::calls::Route;
use crate::schedules::{self as feature, Body, Call};
use longrun_proto::json::{from_struct, to_struct};
use longrun_proto::longrun::v1 as pb;
use longrun_proto::longrun::v1::schedule::OverlapPolicy as Policy;
use longrun_types::Schedule;
use longrun_types::schedule::OverlapPolicy;
use tonic::{Request, Response, Status};

fn message(s: &Schedule) -> pb::Schedule {
    pb::Schedule {
        name: s.name.clone(),
        cron: s.cron.clone(),
        time_zone: s.time_zone.clone(),
        operation: Some(to_struct(&s.operation)),
        overlap_policy: match s.overlap_policy {
            OverlapPolicy::Skip => Policy::Skip,
            OverlapPolicy::Allow => Policy::Allow,
            OverlapPolicy::CancelPrevious => Policy::CancelPrevious,
        } as i32,
        paused: s.paused,
        next_fire_time: s.next_fire_time.map(convert::timestamp),
        last_fire_time: s.last_fire_time.map(convert::timestamp),
        last_operation: s.last_operation.clone().unwrap_or_default(),
        create_time: Some(convert::timestamp(s.create_time)),
        update_time: Some(convert::timestamp(s.update_time)),
    }
}

/// A message's fields as a REST body holds them: empty strings and the unspecified policy
/// are absent; `paused` is there when true (or always, with `paused_always`).
fn body(s: pb::Schedule, schedule_id: String, paused_always: bool) -> Result<Body, Status> {
    let nonempty = |t: String| (!t.is_empty()).then_some(t);
    let policy = match Policy::try_from(s.overlap_policy) {
        Ok(Policy::Unspecified) => None,
        Ok(Policy::Skip) => Some("SKIP".to_string()),
        Ok(Policy::Allow) => Some("ALLOW".to_string()),
        Ok(Policy::CancelPrevious) => Some("CANCEL_PREVIOUS".to_string()),
        Err(_) => Some(s.overlap_policy.to_string()),
    };
    Ok(Body {
        schedule_id: nonempty(schedule_id),
        cron: nonempty(s.cron),
        time_zone: nonempty(s.time_zone),
        operation: s.operation.as_ref().map(from_struct),
        overlap_policy: policy,
        paused: (paused_always || s.paused).then_some(s.paused),
        ..Body::default()
    })
}

fn error(e: longrun_engine::Error) -> Status {
    convert::error(feature::error(e))
}

#[tonic::async_trait]
impl pb::schedules_server::Schedules for Grpc {
    async fn create_schedule(
        &self,
        request: Request<pb::CreateScheduleRequest>,
    ) -> Result<Response<pb::Schedule>, Status> {
        let (metadata, extensions, r) = request.into_parts();
        let metadata = (metadata, extensions);
        let project = project(&r.parent)?;
        self.authorize(&metadata, &Route::Schedules(project.clone(), Call::Create))
            .await?;
        let body = body(r.schedule.unwrap_or_default(), r.schedule_id, false)?;
        let (id, spec) = feature::spec(body).map_err(convert::error)?;
        let created = self
            .app
            .schedules
            .create(&project, id.as_deref(), spec)
            .await
            .map_err(error)?;
        Ok(Response::new(message(&created)))
    }

    async fn get_schedule(
        &self,
        request: Request<pb::GetScheduleRequest>,
    ) -> Result<Response<pb::Schedule>, Status> {
        let (metadata, extensions, r) = request.into_parts();
        let metadata = (metadata, extensions);
        let (project, id) = feature::split(&r.name).map_err(convert::error)?;
        let name = Schedule::name_of(&project, &id);
        self.authorize(&metadata, &Route::Schedules(project, Call::Get(id)))
            .await?;
        let schedule = self.app.schedules.get(&name).await.map_err(error)?;
        Ok(Response::new(message(&schedule)))
    }

    async fn list_schedules(
        &self,
        request: Request<pb::ListSchedulesRequest>,
    ) -> Result<Response<pb::ListSchedulesResponse>, Status> {
        let (metadata, extensions, r) = request.into_parts();
        let metadata = (metadata, extensions);
        let project = project(&r.parent)?;
        self.authorize(&metadata, &Route::Schedules(project.clone(), Call::List))
            .await?;
        let page = self
            .app
            .schedules
            .list(&project, r.page_size.into(), &r.page_token)
            .await
            .map_err(error)?;
        Ok(Response::new(pb::ListSchedulesResponse {
            schedules: page.schedules.iter().map(message).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn update_schedule(
        &self,
        request: Request<pb::UpdateScheduleRequest>,
    ) -> Result<Response<pb::Schedule>, Status> {
        let (metadata, extensions, r) = request.into_parts();
        let metadata = (metadata, extensions);
        let schedule = r.schedule.unwrap_or_default();
        let (project, id) = feature::split(&schedule.name).map_err(convert::error)?;
        let name = Schedule::name_of(&project, &id);
        self.authorize(&metadata, &Route::Schedules(project, Call::Update(id)))
            .await?;
        let mask = r.update_mask.map(|m| m.paths.join(","));
        let body = body(schedule, String::new(), mask.is_some())?;
        let patch = feature::patch(body, mask.as_deref()).map_err(convert::error)?;
        let updated = self
            .app
            .schedules
            .update(&name, patch)
            .await
            .map_err(error)?;
        Ok(Response::new(message(&updated)))
    }

    async fn delete_schedule(
        &self,
        request: Request<pb::DeleteScheduleRequest>,
    ) -> Result<Response<()>, Status> {
        let (metadata, extensions, r) = request.into_parts();
        let metadata = (metadata, extensions);
        let (project, id) = feature::split(&r.name).map_err(convert::error)?;
        let name = Schedule::name_of(&project, &id);
        self.authorize(&metadata, &Route::Schedules(project, Call::Delete(id)))
            .await?;
        self.app.schedules.delete(&name).await.map_err(error)?;
        Ok(Response::new(()))
    }
}
