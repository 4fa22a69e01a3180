//! Trees of operations (docs/operations.md#parents-and-children): an operation's children,
//! and the cascade that ends them when their parent ends or is cancelled.
//!
//! The store keeps three rules in the transaction of the write they concern, so that no
//! interleaving of servers breaks them: a child is inserted only while its parent is
//! PENDING or RUNNING (the insert of the first child also sets the parent's `has_children`
//! and bumps its version, so a compare-and-set based on an older read of the parent
//! fails); a child is leased only while its parent is RUNNING; and the write that moves an
//! operation with children out of PENDING or RUNNING records a cascade for it, which stays
//! until [`Trees::end_cascade`] (so a cascade cut short by a crash resumes).

use crate::{Result, Start};
use async_trait::async_trait;
use longrun_types::Name;

/// The children of operations and the cascades that end them.
#[async_trait]
pub trait Trees: Send + Sync + 'static {
    /// How many children of `parent` are not done (PENDING, RUNNING or CANCELLING).
    async fn open_children(&self, parent: &Name) -> Result<u64>;

    /// Passes up to `limit` children of `parent` that are PENDING or RUNNING through
    /// `cancel` and writes each (version + 1) in one transaction; returns them as stored.
    /// Fewer than `limit` means none is left.
    async fn cascade(
        &self,
        parent: &Name,
        limit: usize,
        cancel: Start,
    ) -> Result<Vec<longrun_types::Operation>>;

    /// Up to `limit` operations whose cascade is recorded and not ended, by name.
    async fn cascades(&self, limit: usize) -> Result<Vec<Name>>;

    /// Ends the cascade of `parent` (none: nothing happens).
    async fn end_cascade(&self, parent: &Name) -> Result<()>;
}
