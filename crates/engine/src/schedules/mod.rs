//! Schedules (docs/schedules.md): their rules (a cron pattern in a time zone, an operation
//! body that submit would take, an overlap policy, pause) and their firing.
//!
//! A firing submits with a request id made of the schedule and the fire time, then advances
//! the schedule's `lastFireTime`/`nextFireTime` with a compare-and-set on its version. Of
//! several servers firing one schedule at once, one advances it and the others' submits
//! return the operation already made (the store's request-id dedup); a crash between the
//! submit and the advance makes the next pass repeat the submit, which again returns that
//! operation. So every fire time starts at most one operation, and exactly one when the
//! overlap policy lets it. Fire times missed while no server ran are not caught up one by
//! one: the latest is fired once and the rest are passed over.

pub mod cron;

use crate::{Engine, Error, MAX_PAGE_SIZE, Result, Submission};
use cron::Cron;
use longrun_store::Cursor;
use longrun_types::schedule::{OverlapPolicy, parse_id};
use longrun_types::{Name, NameError, Project, Schedule, Timestamp};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Turns a schedule's `operation` (the submit body, as the API takes it) into a
/// submission; the error says what is wrong with it. The server gives the engine its own
/// reading of submit bodies, so schedules take exactly what submit takes.
pub type Decode =
    Arc<dyn Fn(&serde_json::Value) -> std::result::Result<Submission, String> + Send + Sync>;

/// Whether a project may start work now, asked before each firing's submit as a submit is
/// asked (the server's registration gate, docs/projects.md#registration-gate): `Err` with
/// the reason refuses the firing, and its fire time passes.
pub type Admit = Arc<
    dyn Fn(
            Project,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = std::result::Result<(), String>> + Send>,
        > + Send
        + Sync,
>;

/// What a create sets.
#[derive(Debug, Clone)]
pub struct Spec {
    pub cron: String,
    /// An IANA time zone; `UTC` when `None`.
    pub time_zone: Option<String>,
    pub operation: serde_json::Value,
    pub overlap_policy: Option<OverlapPolicy>,
    pub paused: bool,
}

/// What an update changes: the fields that are `Some`.
#[derive(Debug, Clone, Default)]
pub struct Patch {
    pub cron: Option<String>,
    pub time_zone: Option<String>,
    pub operation: Option<serde_json::Value>,
    pub overlap_policy: Option<OverlapPolicy>,
    pub paused: Option<bool>,
}

/// One page of a project's schedules.
#[derive(Debug)]
pub struct Page {
    pub schedules: Vec<Schedule>,
    pub next_page_token: Option<String>,
}

/// The time zone of a schedule that names none.
pub const DEFAULT_TIME_ZONE: &str = "UTC";

/// How many due schedules one read takes.
const DUE_BATCH: usize = 100;

/// On a store other servers share, the scheduler reads the next fire time again at least
/// this often: a schedule created or changed through another server wakes no one here.
const SHARED_RECHECK: Duration = Duration::from_secs(2);

/// On a store of its own, every change wakes the scheduler; it still reads again this often.
const OWN_RECHECK: Duration = Duration::from_secs(60);

/// After a failed read or firing, the scheduler tries again this soon.
const RETRY: Duration = Duration::from_secs(1);

/// The schedules' handle: cheap to clone.
#[derive(Clone)]
pub struct Scheduler {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    store: Arc<dyn longrun_store::Schedules>,
    decode: Decode,
    admit: Option<Admit>,
    /// Woken when a schedule is created or changed here: its next fire time may be sooner.
    wake: Notify,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::invalid("INVALID_SCHEDULE", message)
}

fn parse_cron(cron: &str, zone: &str) -> Result<Cron> {
    Cron::parse(cron, zone).map_err(|e| invalid(e.message))
}

impl Scheduler {
    pub fn new(
        engine: Engine,
        store: Arc<dyn longrun_store::Schedules>,
        decode: Decode,
    ) -> Scheduler {
        Scheduler::build(engine, store, decode, None)
    }

    /// The scheduler with `admit` asked before each firing's submit (see [`Admit`]).
    pub fn admitting(
        engine: Engine,
        store: Arc<dyn longrun_store::Schedules>,
        decode: Decode,
        admit: Admit,
    ) -> Scheduler {
        Scheduler::build(engine, store, decode, Some(admit))
    }

    fn build(
        engine: Engine,
        store: Arc<dyn longrun_store::Schedules>,
        decode: Decode,
        admit: Option<Admit>,
    ) -> Scheduler {
        Scheduler {
            inner: Arc::new(Inner {
                engine,
                store,
                decode,
                admit,
                wake: Notify::new(),
            }),
        }
    }

    fn now(&self) -> Timestamp {
        self.inner.engine.now()
    }

    /// Checks a schedule's operation body as submit would, without submitting: the error
    /// names `operation` and what submit says of it.
    fn check_operation(&self, project: &Project, body: &serde_json::Value) -> Result<()> {
        let submission =
            (self.inner.decode)(body).map_err(|e| invalid(format!("operation: {e}")))?;
        if submission.operation_id.is_some() {
            return Err(invalid(
                "operation.operationId is not allowed: each firing names its own operation",
            ));
        }
        if submission.request_id.is_some() {
            return Err(invalid(
                "operation.requestId is not allowed: each firing's request id is made of the \
                 schedule and the fire time",
            ));
        }
        self.inner
            .engine
            .prepare(project, submission)
            .map(drop)
            .map_err(|e| match e {
                Error::InvalidArgument { message, .. } => invalid(format!("operation: {message}")),
                Error::TooLong(too_long) => invalid(format!("operation: {too_long}")),
                other => other,
            })
    }

    /// Creates a schedule (`id` made up when `None`).
    pub async fn create(
        &self,
        project: &Project,
        id: Option<&str>,
        spec: Spec,
    ) -> Result<Schedule> {
        let id = match id {
            Some(raw) => parse_id(raw).map_err(|e| match e {
                NameError::TooLong(too_long) => Error::TooLong(too_long),
                NameError::Invalid(why) => invalid(why),
            })?,
            None => Name::generate(project).id().to_string(),
        };
        let zone = spec
            .time_zone
            .filter(|z| !z.is_empty())
            .unwrap_or_else(|| DEFAULT_TIME_ZONE.to_string());
        let cron = parse_cron(&spec.cron, &zone)?;
        self.check_operation(project, &spec.operation)?;
        let now = self.now();
        let schedule = Schedule {
            name: Schedule::name_of(project, &id),
            cron: spec.cron,
            time_zone: zone,
            operation: spec.operation,
            overlap_policy: spec.overlap_policy.unwrap_or_default(),
            paused: spec.paused,
            next_fire_time: if spec.paused {
                None
            } else {
                cron.next_after(now)
            },
            last_fire_time: None,
            last_operation: None,
            create_time: now,
            update_time: now,
            version: 0,
        };
        let name = schedule.name.clone();
        let created = self
            .inner
            .store
            .create_schedule(schedule)
            .await?
            .ok_or(Error::ScheduleExists(name))?;
        self.inner.wake.notify_one();
        Ok(created)
    }

    pub async fn get(&self, name: &str) -> Result<Schedule> {
        self.inner
            .store
            .schedule(name)
            .await?
            .ok_or_else(|| Error::ScheduleNotFound(name.to_string()))
    }

    /// One page of a project's schedules in name order (`page_size` as for operations:
    /// 0 means 100, more than 1000 means 1000).
    pub async fn list(&self, project: &Project, page_size: i64, page_token: &str) -> Result<Page> {
        let limit = match page_size {
            n if n < 0 => {
                return Err(Error::invalid(
                    "INVALID_PAGE_SIZE",
                    "pageSize must not be negative",
                ));
            }
            0 => crate::DEFAULT_PAGE_SIZE,
            n => (n as usize).min(MAX_PAGE_SIZE),
        };
        let parent = format!("{}/schedules", project.resource_name());
        let tokens = &self.inner.engine.inner.tokens;
        let after = match page_token {
            "" => None,
            token => {
                let cursor = tokens.decode(&parent, "", token).ok_or_else(|| {
                    Error::invalid(
                        "INVALID_PAGE_TOKEN",
                        "pageToken is not valid for this parent",
                    )
                })?;
                Some(Schedule::name_of(project, cursor.name.id()))
            }
        };
        let mut schedules = self
            .inner
            .store
            .schedules(project.as_str(), after.as_deref(), limit + 1)
            .await?;
        let next_page_token = if schedules.len() > limit {
            schedules.truncate(limit);
            let last = schedules.last().expect("limit is at least 1");
            // The cursor is the last schedule's id, carried in the token's name.
            let name = Name::new(project, last.id()).map_err(|e| Error::Internal(e.to_string()))?;
            Some(tokens.encode(
                &parent,
                "",
                &Cursor {
                    create_time: Timestamp(0),
                    name,
                },
            ))
        } else {
            None
        };
        Ok(Page {
            schedules,
            next_page_token,
        })
    }

    /// Changes the fields `patch` sets; a new pattern, zone or a resume counts the next
    /// fire time from now, a pause clears it.
    pub async fn update(&self, name: &str, patch: Patch) -> Result<Schedule> {
        let (project, _) =
            Schedule::split_name(name).ok_or_else(|| Error::ScheduleNotFound(name.to_string()))?;
        let project = Project::parse(project).map_err(|e| invalid(e.to_string()))?;
        if let Some(operation) = &patch.operation {
            self.check_operation(&project, operation)?;
        }
        for _ in 0..crate::MAX_RACE_RETRIES {
            let mut s = self.get(name).await?;
            let retimed =
                patch.cron.is_some() || patch.time_zone.is_some() || patch.paused.is_some();
            if let Some(cron) = &patch.cron {
                s.cron = cron.clone();
            }
            if let Some(zone) = &patch.time_zone {
                s.time_zone = if zone.is_empty() {
                    DEFAULT_TIME_ZONE.to_string()
                } else {
                    zone.clone()
                };
            }
            let cron = parse_cron(&s.cron, &s.time_zone)?;
            if let Some(operation) = &patch.operation {
                s.operation = operation.clone();
            }
            if let Some(policy) = patch.overlap_policy {
                s.overlap_policy = policy;
            }
            if let Some(paused) = patch.paused {
                s.paused = paused;
            }
            let now = self.now();
            if s.paused {
                s.next_fire_time = None;
            } else if retimed || s.next_fire_time.is_none() {
                s.next_fire_time = cron.next_after(now);
            }
            s.update_time = now.max(s.update_time);
            match self.inner.store.update_schedule(s).await {
                Ok(stored) => {
                    self.inner.wake.notify_one();
                    return Ok(stored);
                }
                Err(longrun_store::Error::Conflict) => continue,
                Err(longrun_store::Error::NotFound) => {
                    return Err(Error::ScheduleNotFound(name.to_string()));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Internal(format!(
            "{name} kept changing; gave up updating it"
        )))
    }

    pub async fn delete(&self, name: &str) -> Result<()> {
        if self.inner.store.delete_schedule(name).await? {
            Ok(())
        } else {
            Err(Error::ScheduleNotFound(name.to_string()))
        }
    }

    /// Fires every schedule due at `now`; returns how many fire times were handled here
    /// (submitted or passed over by the overlap policy).
    pub async fn fire_due(&self, now: Timestamp) -> Result<usize> {
        let mut handled = 0;
        // A schedule another server advanced meanwhile leaves the due ones; a few rounds
        // take what one read could not.
        for _ in 0..10 {
            let due = self.inner.store.due_schedules(now, DUE_BATCH).await?;
            let full = due.len() == DUE_BATCH;
            for schedule in due {
                if self.fire(schedule, now).await? {
                    handled += 1;
                }
            }
            if !full {
                break;
            }
        }
        Ok(handled)
    }

    /// Fires one due schedule: true when this call advanced it.
    async fn fire(&self, mut s: Schedule, now: Timestamp) -> Result<bool> {
        let Some(due) = s.next_fire_time else {
            return Ok(false);
        };
        let cron = match Cron::parse(&s.cron, &s.time_zone) {
            Ok(cron) => cron,
            Err(e) => {
                // Checked when written; a zone a newer tz database dropped, say. Paused.
                tracing::warn!(schedule = %s.name, error = e.message, "schedule paused: its pattern no longer reads");
                s.paused = true;
                s.next_fire_time = None;
                return self.advance(s).await;
            }
        };
        // Only the latest of the fire times missed is fired.
        let fire = cron
            .latest_at_or_before(now)
            .filter(|latest| *latest >= due)
            .unwrap_or(due);
        let project = Project::parse(s.project()).map_err(|e| Error::Internal(e.to_string()))?;
        let previous = match (&s.last_operation, s.overlap_policy) {
            (Some(name), OverlapPolicy::Skip | OverlapPolicy::CancelPrevious) => {
                match Name::parse(name) {
                    Ok(name) => match self.inner.engine.get(&name).await {
                        Ok(op) if !op.done() => Some(name),
                        Ok(_) | Err(Error::NotFound(_)) => None,
                        Err(e) => return Err(e),
                    },
                    Err(_) => None,
                }
            }
            _ => None,
        };
        let submit = match (previous, s.overlap_policy) {
            (Some(_), OverlapPolicy::Skip) => false,
            (Some(previous), OverlapPolicy::CancelPrevious) => {
                match self.inner.engine.cancel(&previous, &s.name).await {
                    Ok(_) | Err(Error::NotFound(_)) => {}
                    Err(e @ (Error::Unavailable(_) | Error::Internal(_))) => return Err(e),
                    Err(e) => {
                        tracing::warn!(schedule = %s.name, operation = %previous, error = %e, "could not cancel the previous operation");
                    }
                }
                true
            }
            _ => true,
        };
        if submit {
            match self.submit(&s, &project, fire).await {
                Ok(op) => s.last_operation = Some(op.name.to_string()),
                // Storage could not take it: nothing was done; the next pass tries again.
                Err(e @ (Error::Unavailable(_) | Error::Internal(_))) => return Err(e),
                Err(e) => {
                    tracing::warn!(schedule = %s.name, fire_time = %fire, error = %e, "a schedule's submit was refused; its fire time passes");
                }
            }
        }
        s.last_fire_time = Some(fire);
        s.next_fire_time = cron.next_after(now.max(fire));
        self.advance(s).await
    }

    /// The submit of one fire time: its request id and operation id are made of the
    /// schedule's id and the fire time, so that a repeat returns the same operation.
    async fn submit(
        &self,
        s: &Schedule,
        project: &Project,
        fire: Timestamp,
    ) -> Result<longrun_types::Operation> {
        if let Some(admit) = &self.inner.admit {
            admit(project.clone())
                .await
                .map_err(|reason| Error::invalid("FIRING_REFUSED", reason))?;
        }
        let mut submission = (self.inner.decode)(&s.operation).map_err(invalid)?;
        submission.request_id = Some(s.request_id(fire));
        submission.operation_id = Some(operation_id(s.id(), fire));
        submission.schedule = Some(s.name.clone());
        self.inner.engine.submit(project, submission).await
    }

    /// Writes a fired schedule if no other server did first: true when this write won.
    async fn advance(&self, s: Schedule) -> Result<bool> {
        match self.inner.store.update_schedule(s).await {
            Ok(_) => Ok(true),
            Err(longrun_store::Error::Conflict | longrun_store::Error::NotFound) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Fires schedules as they fall due until `shutdown` resolves: sleeps until the next
    /// fire time of any schedule, woken sooner by a create or update here and, on a store
    /// other servers share, reading again every [`SHARED_RECHECK`].
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let recheck = if self.inner.engine.inner.shared {
            SHARED_RECHECK
        } else {
            OWN_RECHECK
        };
        loop {
            let now = self.now();
            let wait = match self.fire_due(now).await {
                Err(e) => {
                    tracing::warn!(error = %e, "firing schedules failed");
                    RETRY
                }
                Ok(_) => match self.inner.store.next_fire_time().await {
                    Ok(Some(next)) => {
                        let ms = (next.millis() - self.now().millis()).max(0) as u64;
                        Duration::from_millis(ms).min(recheck)
                    }
                    Ok(None) => recheck,
                    Err(e) => {
                        tracing::warn!(error = %e, "reading the next fire time failed");
                        RETRY
                    }
                },
            };
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(wait) => {}
                _ = self.inner.wake.notified() => {}
            }
        }
    }
}

/// The id of the operation a fire time starts: the schedule's id and the fire time in UTC,
/// `nightly-20260101T030000Z`.
pub fn operation_id(schedule_id: &str, fire: Timestamp) -> String {
    let time = jiff::Timestamp::from_millisecond(fire.millis())
        .map(|t| t.strftime("%Y%m%dT%H%M%SZ").to_string())
        .unwrap_or_else(|_| fire.millis().to_string());
    format!("{schedule_id}-{time}")
}

#[cfg(test)]
mod tests;
