//! The operation record: everything longrun knows about one operation. The record is what
//! storage keeps (it serializes it without interpreting it) and what the server renders as
//! the wire `Operation`.

use crate::{Event, Name, State, Timestamp, Transition};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A `google.rpc.Status`. `details` holds `Any` messages in their JSON form (`@type` + fields).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub code: i32,
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<serde_json::Value>,
}

/// How a done operation ended: exactly one of these is set when `done` is true.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    Error(Status),
    /// An `Any` in JSON form, `@type` included.
    Response(serde_json::Value),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    pub display_name: String,
    #[serde(default)]
    pub description: String,
    pub complete_work_units: i64,
    pub total_work_units: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub topic: String,
    pub detail: String,
    pub severity: String,
}

/// A worker's hold on a running operation. The id is a fencing token: reports carrying
/// any other id are rejected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    pub id: String,
    pub worker: String,
    pub expire_time: Timestamp,
    /// How far each heartbeat extends the lease.
    pub duration_ms: i64,
}

/// When and by whom cancellation was requested.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CancelRequest {
    pub time: Timestamp,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub principal: String,
    /// Made by the cascade of a parent that ended or was cancelled (docs/operations.md#parents-and-children),
    /// not by a call: such cancels are what the parent's `cancelledDescendants` counts.
    #[serde(default, skip_serializing_if = "is_false")]
    pub cascade: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    pub name: Name,
    pub state: State,
    pub op_type: String,
    pub description: String,
    pub priority: i32,
    pub create_time: Timestamp,
    pub update_time: Timestamp,
    pub start_time: Option<Timestamp>,
    pub end_time: Option<Timestamp>,
    /// Counts starts: 1 until a retry or a release puts the operation back in the queue.
    pub attempt: i32,
    pub max_attempts: i32,
    /// How many of the starts were handed back by a release (a worker or server that
    /// stopped, `:release`): they are not counted against `max_attempts`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub releases: i32,
    /// `create_time` + the effective timeout, if any.
    pub deadline: Option<Timestamp>,
    pub progress: f64,
    pub stages: Vec<Stage>,
    pub script_uri: String,
    pub destination_uris: Vec<String>,
    pub notifications: Vec<Notification>,
    pub batch_eecu_usage_seconds: f64,
    pub outcome: Option<Outcome>,
    pub request_id: Option<String>,
    /// The submit's `concurrencyKey` (docs/projects.md#concurrency-keys): a task type's
    /// `key_concurrency` caps the RUNNING + CANCELLING operations of one (project, type,
    /// key). Set at submit, never changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_key: Option<String>,
    /// The operation this one retries (`:retry`, docs/operations.md#retry): set at
    /// creation, never changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_of: Option<Name>,
    /// The submit's `scheduleTime` (docs/operations.md#delayed-start): not leased before it.
    /// Set at submit, never changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_time: Option<Timestamp>,
    /// The submit's `startTimeout` in milliseconds: not started by `scheduleTime` (or
    /// `createTime`) + this, it ends FAILED and never runs ([`Operation::start_deadline`]).
    /// Set at submit, never changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_timeout_ms: Option<i64>,
    /// The schedule whose firing submitted it (`projects/{p}/schedules/{id}`;
    /// docs/schedules.md). Set at submit, never changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// The operation this one is a child of (`metadata.parent`,
    /// docs/operations.md#parents-and-children), of the same project. Set at submit, never
    /// changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Name>,
    /// How many ancestors it has: 0 for an operation without a parent, at most
    /// [`MAX_DEPTH`] − 1. Set at submit, never changed.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub ancestors: u32,
    /// Whether a child was ever submitted under it. Set by the store in the write that
    /// inserts the first child (which also bumps `version`), never cleared: an operation
    /// with children that is cancelled stays CANCELLING until the cascade has ended every
    /// descendant ([`Event::ChildrenDone`]).
    #[serde(default, skip_serializing_if = "is_false")]
    pub has_children: bool,
    pub lease: Option<Lease>,
    pub cancel: Option<CancelRequest>,
    /// Why it waits, while PENDING (`metadata.waitingReason`): computed by the engine when it
    /// serves the operation (get, list, wait, submit, watch), never stored.
    #[serde(skip)]
    pub waiting_reason: Option<crate::waiting::Reason>,
    /// Bumped on every write; storage compares it to resolve races.
    pub version: i64,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Most levels of a tree of operations, the root counted as 1
/// (docs/operations.md#parents-and-children).
pub const MAX_DEPTH: u32 = 8;

/// Priority bounds and default (docs/operations.md#metadata-fields).
pub const MIN_PRIORITY: i32 = 0;
pub const MAX_PRIORITY: i32 = 9999;
pub const DEFAULT_PRIORITY: i32 = 100;
pub const DEFAULT_MAX_ATTEMPTS: i32 = 5;

impl Operation {
    /// A new PENDING operation.
    pub fn new(name: Name, op_type: String, now: Timestamp) -> Operation {
        Operation {
            name,
            state: State::Pending,
            op_type,
            description: String::new(),
            priority: DEFAULT_PRIORITY,
            create_time: now,
            update_time: now,
            start_time: None,
            end_time: None,
            attempt: 1,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            releases: 0,
            deadline: None,
            progress: 0.0,
            stages: Vec::new(),
            script_uri: String::new(),
            destination_uris: Vec::new(),
            notifications: Vec::new(),
            batch_eecu_usage_seconds: 0.0,
            outcome: None,
            request_id: None,
            concurrency_key: None,
            retry_of: None,
            schedule_time: None,
            start_timeout_ms: None,
            schedule: None,
            parent: None,
            ancestors: 0,
            has_children: false,
            lease: None,
            cancel: None,
            waiting_reason: None,
            version: 0,
        }
    }

    pub fn done(&self) -> bool {
        self.state.is_done()
    }

    /// Whether another attempt may follow this one: the starts so far, less those handed
    /// back by a release, are fewer than `max_attempts`.
    pub fn attempts_remain(&self) -> bool {
        self.attempt - self.releases < self.max_attempts
    }

    /// When an operation that has not started by then fails instead (`startTimeout` after
    /// `scheduleTime`, or after `createTime` when there is none); `None` without a
    /// `startTimeout`.
    pub fn start_deadline(&self) -> Option<Timestamp> {
        let timeout = self.start_timeout_ms?;
        Some(
            self.schedule_time
                .unwrap_or(self.create_time)
                .plus_millis(timeout),
        )
    }

    /// Whether its `scheduleTime` is still to come at `now`.
    pub fn scheduled_after(&self, now: Timestamp) -> bool {
        self.schedule_time.is_some_and(|t| t > now)
    }

    /// The error code when the operation ended in error.
    pub fn error_code(&self) -> Option<i32> {
        match &self.outcome {
            Some(Outcome::Error(status)) => Some(status.code),
            _ => None,
        }
    }

    /// Applies `event` through the state machine; when it moves, does the bookkeeping of
    /// [`Operation::move_to`]. Returns what the state machine said, except that an
    /// operation that has had children does not end CANCELLED on any event but
    /// [`Event::ChildrenDone`]: it is held CANCELLING, its lease and timeout ended
    /// (`Move(Cancelling)`), until the cascade has ended every descendant
    /// ([`Operation::held`]).
    pub fn apply(&mut self, event: Event, outcome: Option<Outcome>, now: Timestamp) -> Transition {
        let transition = self.state.apply(event);
        match transition {
            Transition::Move(State::Cancelled)
                if self.has_children && event != Event::ChildrenDone =>
            {
                self.state = State::Cancelling;
                self.update_time = now.max(self.update_time);
                self.lease = None;
                self.deadline = None;
                Transition::Move(State::Cancelling)
            }
            Transition::Move(to) => {
                self.move_to(to, outcome, now);
                transition
            }
            _ => transition,
        }
    }

    /// Whether it is CANCELLING with no worker left on it: a cancelled parent waiting for
    /// the cascade to end its descendants.
    pub fn held(&self) -> bool {
        self.state == State::Cancelling && self.lease.is_none()
    }

    /// Whether its children are to be ended by a cascade: it has had children and is no
    /// longer PENDING or RUNNING (it ended, or was cancelled).
    pub fn cascades(&self) -> bool {
        self.has_children && !matches!(self.state, State::Pending | State::Running)
    }

    /// Its depth in its tree, the root counted as 1.
    pub fn depth(&self) -> u32 {
        self.ancestors + 1
    }

    /// Moves to `to`, keeping the bookkeeping that goes with every move: `update_time`,
    /// `end_time` and the end of the lease once done, the outcome when given, and a new
    /// attempt when a leased operation goes back to the queue.
    pub fn move_to(&mut self, to: State, outcome: Option<Outcome>, now: Timestamp) {
        let requeued = to == State::Pending && self.state.is_leased();
        self.state = to;
        self.update_time = now.max(self.update_time);
        if to.is_done() {
            self.end_time = Some(self.update_time);
            self.lease = None;
            self.outcome = outcome;
        } else if requeued {
            self.lease = None;
            self.attempt += 1;
        }
    }
}

impl Status {
    pub fn new(code: crate::Code, message: impl Into<String>) -> Status {
        Status {
            code: code as i32,
            message: message.into(),
            details: Vec::new(),
        }
    }
}

impl Serialize for Name {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Name, D::Error> {
        let raw = String::deserialize(d)?;
        Name::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl Serialize for State {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for State {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<State, D::Error> {
        let raw = String::deserialize(d)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(self.0)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        i64::deserialize(d).map(Timestamp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Code, Project};

    #[test]
    fn record_round_trips_through_its_storage_form() {
        let name = Name::new(&Project::parse("p").unwrap(), "a/b").unwrap();
        let mut op = Operation::new(name, "EXPORT_IMAGE".into(), Timestamp(1000));
        op.stages.push(Stage {
            display_name: "Tiling".into(),
            description: String::new(),
            complete_work_units: 3,
            total_work_units: 10,
        });
        op.move_to(
            State::Cancelled,
            Some(Outcome::Error(Status::new(Code::Cancelled, "cancelled"))),
            Timestamp(2000),
        );
        let text = serde_json::to_string(&op).unwrap();
        let back: Operation = serde_json::from_str(&text).unwrap();
        assert_eq!(back, op);
        assert_eq!(back.end_time, Some(Timestamp(2000)));
        assert_eq!(back.error_code(), Some(1));
    }

    #[test]
    fn requeue_counts_an_attempt_and_ends_the_lease() {
        let name = Name::new(&Project::parse("p").unwrap(), "x").unwrap();
        let mut op = Operation::new(name, "T".into(), Timestamp(1));
        assert_eq!(
            op.apply(Event::Lease, None, Timestamp(2)),
            Transition::Move(State::Running)
        );
        op.lease = Some(Lease {
            id: "l".into(),
            worker: "w".into(),
            expire_time: Timestamp(10),
            duration_ms: 8,
        });
        assert_eq!(
            op.apply(Event::Release, None, Timestamp(11)),
            Transition::Move(State::Pending)
        );
        assert_eq!((op.attempt, op.lease.clone()), (2, None));
        assert_eq!(
            op.apply(Event::Succeed, None, Timestamp(12)),
            Transition::Reject
        );
        assert_eq!(op.update_time, Timestamp(11));
    }

    #[test]
    fn update_time_never_goes_backwards() {
        let name = Name::new(&Project::parse("p").unwrap(), "x").unwrap();
        let mut op = Operation::new(name, "T".into(), Timestamp(5000));
        op.move_to(State::Running, None, Timestamp(4000));
        assert_eq!(op.update_time, Timestamp(5000));
    }
}
