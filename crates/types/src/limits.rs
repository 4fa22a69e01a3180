//! The length limit of every id and name, in bytes (of the canonical form, for names and
//! project ids): one table, checked where a value enters (the engine, the router, the
//! emulator) and again by every store before it writes, so that every store accepts the
//! same values. PostgreSQL's btree indexes hold at most about 2,700 bytes per row; with
//! these limits the widest index row (a project's queue: project, type, priority, create
//! time and operation name) stays under 1,600 bytes, and an asset's (parent and name) under
//! 1,600.

use std::fmt;

/// A project id.
pub const PROJECT_ID: usize = 256;
/// An operation's name, `projects/{project}/operations/{id}`: what bounds its id.
pub const OPERATION_NAME: usize = 1024;
/// A submit's `requestId`.
pub const REQUEST_ID: usize = 256;
/// A submit's `concurrencyKey`.
pub const CONCURRENCY_KEY: usize = 256;
/// An operation type (`metadata.type`, and each type a worker leases).
pub const TYPE: usize = 256;
/// A worker's id (`/v1/workers/{worker}:lease`).
pub const WORKER_ID: usize = 256;
/// A lease id, as a worker sends it back.
pub const LEASE_ID: usize = 256;
/// An asset's id, the part of its name after `projects/{project}/assets/`.
pub const ASSET_ID: usize = 512;
/// A service account's name, the part of its email before `@`.
pub const ACCOUNT_NAME: usize = 30;
/// A service account key's id (`private_key_id`).
pub const KEY_ID: usize = 64;
/// An operation's description (text, not an id, but bounded the same way).
pub const DESCRIPTION: usize = 64 * 1024;

/// A value longer than its limit: which field (as the API spells it), how long, the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLong {
    pub field: String,
    pub length: usize,
    pub limit: usize,
}

impl TooLong {
    /// The same, said of another field (the API's name for the value).
    pub fn of(self, field: &str) -> TooLong {
        TooLong {
            field: field.to_string(),
            ..self
        }
    }
}

impl fmt::Display for TooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is {} bytes long; it may be at most {} bytes",
            self.field, self.length, self.limit
        )
    }
}

impl std::error::Error for TooLong {}

/// `value` unless it is longer than `limit` bytes.
pub fn check(field: &str, value: &str, limit: usize) -> Result<(), TooLong> {
    if value.len() > limit {
        return Err(TooLong {
            field: field.to_string(),
            length: value.len(),
            limit,
        });
    }
    Ok(())
}
