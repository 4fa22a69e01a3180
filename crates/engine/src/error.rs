//! The engine's error type, and the one place that maps each error to a google.rpc code,
//! an ErrorInfo reason and its metadata.

use longrun_types::limits::TooLong;
use longrun_types::{Code, Name};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("operation {0} not found")]
    NotFound(Name),
    #[error("{message}")]
    InvalidArgument {
        /// ErrorInfo reason, UPPER_SNAKE.
        reason: &'static str,
        message: String,
    },
    /// An id or name longer than its limit (`longrun_types::limits`).
    #[error("{0}")]
    TooLong(TooLong),
    #[error("operation {0} is not done; cancel it first or wait for it to finish")]
    NotDone(Name),
    /// A submit under a parent that does not exist, is CANCELLING or is done
    /// (docs/operations.md#parents-and-children).
    #[error(
        "parent {0} does not exist or is not PENDING or RUNNING; children can be submitted only under a parent that is"
    )]
    ParentClosed(Name),
    /// A submit under an operation of another project.
    #[error("parent {parent} is not an operation of project {project}")]
    ParentElsewhere { parent: Name, project: String },
    /// A delete of a parent whose children are not all done.
    #[error("operation {name} has {open} children that are not done; wait for them, or cancel it")]
    ChildrenNotDone { name: Name, open: u64 },
    #[error("operation {0} already exists")]
    AlreadyExists(Name),
    #[error("project {project} has {limit} pending operations, its queue limit")]
    QueueFull { project: String, limit: u64 },
    #[error("{0}")]
    Unimplemented(String),
    /// A schedule (docs/schedules.md) that does not exist.
    #[error("schedule {0} not found")]
    ScheduleNotFound(String),
    #[error("schedule {0} already exists")]
    ScheduleExists(String),
    /// A resume of one queue while every queue of its project is paused (docs/queues.md).
    #[error("every queue of project {0} is paused; resume projects/{0}/queues/- first")]
    ProjectPaused(String),
    /// A worker report whose lease is no longer held.
    #[error("lease {lease_id} on {name} is not held")]
    LeaseNotHeld { name: Name, lease_id: String },
    /// Storage cannot serve the call now (a full disk, say); nothing was done.
    #[error("the store cannot serve this now; try again later")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// The error one submission of a batch submit gives (docs/operations.md#batch-submit),
    /// with its index: the code and reason are its own, the metadata gains `index`.
    #[error("requests[{index}]: {source}")]
    InBatch { index: usize, source: Box<Error> },
}

impl Error {
    pub fn invalid(reason: &'static str, message: impl Into<String>) -> Error {
        Error::InvalidArgument {
            reason,
            message: message.into(),
        }
    }

    pub fn code(&self) -> Code {
        match self {
            Error::NotFound(_) => Code::NotFound,
            Error::InvalidArgument { .. } | Error::TooLong(_) => Code::InvalidArgument,
            Error::NotDone(_)
            | Error::ProjectPaused(_)
            | Error::ParentClosed(_)
            | Error::ParentElsewhere { .. }
            | Error::ChildrenNotDone { .. } => Code::FailedPrecondition,
            Error::AlreadyExists(_) => Code::AlreadyExists,
            Error::QueueFull { .. } => Code::ResourceExhausted,
            Error::Unimplemented(_) => Code::Unimplemented,
            Error::ScheduleNotFound(_) => Code::NotFound,
            Error::ScheduleExists(_) => Code::AlreadyExists,
            Error::LeaseNotHeld { .. } => Code::Aborted,
            Error::Unavailable(_) => Code::Unavailable,
            Error::Internal(_) => Code::Internal,
            Error::InBatch { source, .. } => source.code(),
        }
    }

    /// The ErrorInfo reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::NotFound(_) => "OPERATION_NOT_FOUND",
            Error::InvalidArgument { reason, .. } => reason,
            Error::TooLong(_) => "TOO_LONG",
            Error::NotDone(_) => "OPERATION_NOT_DONE",
            Error::ParentClosed(_) => "PARENT_NOT_OPEN",
            Error::ParentElsewhere { .. } => "PARENT_OF_ANOTHER_PROJECT",
            Error::ChildrenNotDone { .. } => "CHILDREN_NOT_DONE",
            Error::AlreadyExists(_) => "OPERATION_ALREADY_EXISTS",
            Error::QueueFull { .. } => "QUEUE_FULL",
            Error::Unimplemented(_) => "NOT_SUPPORTED",
            Error::ScheduleNotFound(_) => "SCHEDULE_NOT_FOUND",
            Error::ScheduleExists(_) => "SCHEDULE_ALREADY_EXISTS",
            Error::ProjectPaused(_) => "PROJECT_PAUSED",
            Error::LeaseNotHeld { .. } => "LEASE_NOT_HELD",
            Error::Unavailable(_) => "STORAGE_UNAVAILABLE",
            Error::Internal(_) => "INTERNAL",
            Error::InBatch { source, .. } => source.reason(),
        }
    }

    /// The ErrorInfo metadata: every dynamic part of the message.
    pub fn metadata(&self) -> Vec<(&'static str, String)> {
        match self {
            Error::NotFound(name) | Error::NotDone(name) | Error::AlreadyExists(name) => {
                vec![("name", name.to_string())]
            }
            Error::ParentClosed(parent) => vec![("parent", parent.to_string())],
            Error::ParentElsewhere { parent, project } => {
                vec![("parent", parent.to_string()), ("project", project.clone())]
            }
            Error::ChildrenNotDone { name, open } => {
                vec![
                    ("name", name.to_string()),
                    ("openChildren", open.to_string()),
                ]
            }
            Error::QueueFull { project, limit } => {
                vec![("project", project.clone()), ("limit", limit.to_string())]
            }
            Error::LeaseNotHeld { name, lease_id } => {
                vec![("name", name.to_string()), ("leaseId", lease_id.clone())]
            }
            Error::ScheduleNotFound(name) | Error::ScheduleExists(name) => {
                vec![("name", name.clone())]
            }
            Error::ProjectPaused(project) => vec![("project", project.clone())],
            Error::InBatch { index, source } => {
                let mut metadata = source.metadata();
                metadata.push(("index", index.to_string()));
                metadata
            }
            Error::TooLong(too_long) => vec![
                ("field", too_long.field.clone()),
                ("limit", too_long.limit.to_string()),
            ],
            Error::InvalidArgument { .. }
            | Error::Unimplemented(_)
            | Error::Unavailable(_)
            | Error::Internal(_) => vec![],
        }
    }
}

impl From<TooLong> for Error {
    fn from(too_long: TooLong) -> Error {
        Error::TooLong(too_long)
    }
}

impl From<longrun_store::Error> for Error {
    fn from(e: longrun_store::Error) -> Error {
        match e {
            longrun_store::Error::AlreadyExists(name) => Error::AlreadyExists(name),
            longrun_store::Error::ParentClosed(parent) => Error::ParentClosed(parent),
            longrun_store::Error::Unavailable(detail) => Error::Unavailable(detail),
            longrun_store::Error::InvalidArgument(message) => {
                Error::invalid("INVALID_CHARACTER", message)
            }
            longrun_store::Error::TooLong(too_long) => Error::TooLong(too_long),
            other => Error::Internal(other.to_string()),
        }
    }
}
