//! The worker SDK and the built-in executors. A [`Worker`] leases operations of the types it
//! has handlers for, runs up to N at once, heartbeats for them (reporting progress and
//! learning of cancellation at once through a waiting heartbeat), and completes them. It
//! talks to a [`Backend`]: the REST API of a server ([`HttpBackend`]) or, for executors built
//! into the server, the engine itself.

mod backend;
pub mod command;
mod context;
mod grpc;
mod runner;
pub mod simulate;

pub use backend::{Assignment, Backend, BackendError, Child, HttpBackend};
pub use context::Context;
pub use grpc::GrpcBackend;
pub use longrun_types::operation::Status;
pub use runner::Worker;
