//! What the engine announces: every change it commits (the record as the store acknowledged
//! it), how long each store write took, and what it does (transitions, leases, cancels told,
//! lease requests), through the [`Observer`] of `Options::observer`.

use longrun_types::{Operation, State};
use std::time::Duration;

/// A write the store acknowledged, with the record as committed.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A submit queued a new operation (a repeated request id queues nothing).
    Created(Operation),
    /// An operation was written again: a cancel, heartbeat, completion, release or timer.
    Updated(Operation),
    /// A lease started a PENDING operation.
    Leased(Operation),
    /// A delete call removed a done operation: the record removed.
    Deleted(Operation),
    /// Retention removed a done operation: the record removed.
    Expired(Operation),
}

impl Change {
    /// The operation as committed (for a delete or an expiry, as it was removed).
    pub fn operation(&self) -> &Operation {
        match self {
            Change::Created(op)
            | Change::Updated(op)
            | Change::Leased(op)
            | Change::Deleted(op)
            | Change::Expired(op) => op,
        }
    }
}

/// Which store write [`Observer::store_write`] timed; each runs in a span of this name
/// (`store.insert`, `store.update`, `store.delete`, `store.lease`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    Insert,
    Update,
    Delete,
    /// A lease that took something (an empty one writes nothing and is not timed).
    Lease,
}

/// What the engine reports as it works (the server's metrics and change feed record it).
/// Every method has a default that does nothing; calls are made after the change is
/// durable, on the task that made it, in the order of the commits of each operation, so an
/// observer must not block (it may hand work off).
pub trait Observer: Send + Sync {
    /// An operation of `op_type` moved from one state to another.
    fn transition(&self, _op_type: &str, _from: State, _to: State) {}
    /// A worker was told that an operation it runs is cancelled, `delay` after the cancel
    /// was accepted (once per cancel, by the first heartbeat or push that tells it).
    fn cancel_delivered(&self, _delay: Duration) {}
    /// Leases granted in one lease call.
    fn leases_granted(&self, _count: usize) {}
    /// A lease lapsed (the worker stopped reporting or ignored a cancel).
    fn lease_expired(&self) {}
    /// A worker or executor asked for operations of these types.
    fn lease_requested(&self, _types: &[String]) {}
    /// The store acknowledged a change of an operation: every insert, update, delete,
    /// expiry and lease the engine makes, once each, before the waiters it wakes.
    fn committed(&self, _change: &Change) {}
    /// The store took `elapsed` to acknowledge a write.
    fn store_write(&self, _write: Write, _elapsed: Duration) {}
}

/// The observer that does nothing.
pub struct Unobserved;

impl Observer for Unobserved {}

/// Two observers, told in turn.
impl<A: Observer, B: Observer> Observer for (A, B) {
    fn transition(&self, op_type: &str, from: State, to: State) {
        self.0.transition(op_type, from, to);
        self.1.transition(op_type, from, to);
    }
    fn cancel_delivered(&self, delay: Duration) {
        self.0.cancel_delivered(delay);
        self.1.cancel_delivered(delay);
    }
    fn leases_granted(&self, count: usize) {
        self.0.leases_granted(count);
        self.1.leases_granted(count);
    }
    fn lease_expired(&self) {
        self.0.lease_expired();
        self.1.lease_expired();
    }
    fn lease_requested(&self, types: &[String]) {
        self.0.lease_requested(types);
        self.1.lease_requested(types);
    }
    fn committed(&self, change: &Change) {
        self.0.committed(change);
        self.1.committed(change);
    }
    fn store_write(&self, write: Write, elapsed: Duration) {
        self.0.store_write(write, elapsed);
        self.1.store_write(write, elapsed);
    }
}
