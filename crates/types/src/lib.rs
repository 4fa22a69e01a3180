//! Domain vocabulary of longrun: names, timestamps, durations, status codes, the operation
//! record, its state machine and the list filter language. Pure: no I/O, no clock reads
//! except `Timestamp::now`.

pub mod code;
pub mod duration;
pub mod filter;
pub mod limits;
pub mod name;
pub mod operation;
pub mod schedule;
pub mod state;
pub mod timestamp;
pub mod waiting;

pub use code::Code;
pub use name::{Name, NameError, Project};
pub use operation::{Lease, Operation, Outcome, Stage, Status};
pub use schedule::Schedule;
pub use state::{Event, State, Transition};
pub use timestamp::Timestamp;
