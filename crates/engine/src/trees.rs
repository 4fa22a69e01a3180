//! Trees of operations (docs/operations.md#parents-and-children): the cascade that ends
//! the descendants of an operation that ended or was cancelled, and the end of a cancelled
//! parent once its descendants are done.
//!
//! The store records a cascade in the write that moves an operation with children out of
//! PENDING or RUNNING (`longrun_store::Trees`), so a cascade is never lost: this server's
//! loop takes the cascades it is told of at once, and every [`CASCADE_RESCAN`] it reads the
//! store's list (those of other servers, and those a crash cut short). A cascade cancels
//! the parent's PENDING and RUNNING children as a cancel call would (each child with
//! children is held CANCELLING in turn and cascades itself), then waits until no child is
//! left that is not done; a cancelled parent, held CANCELLING meanwhile, then ends
//! CANCELLED with an ErrorInfo `CHILDREN_CANCELLED` that counts the descendants the
//! cascades cancelled.

use crate::*;
use std::collections::HashSet;

/// How often the store's list of cascades is read.
const CASCADE_RESCAN: Duration = Duration::from_secs(1);

/// How many children one write of a cascade ends.
const CASCADE_BATCH: usize = 1000;

/// The ErrorInfo reason of a cancelled parent's end.
pub const CHILDREN_CANCELLED: &str = "CHILDREN_CANCELLED";

/// The cascades this server knows of, and the wake-up of its loop.
#[derive(Default)]
pub(crate) struct Cascades {
    /// Parents whose cascade is recorded and not ended, as last learnt.
    active: std::sync::Mutex<HashSet<Name>>,
    /// Parents to look at now: a cascade just recorded, or a child of one that ended.
    due: std::sync::Mutex<HashSet<Name>>,
    wake: tokio::sync::Notify,
}

impl Cascades {
    fn look_at(&self, parent: &Name) {
        self.due.lock().expect("cascades").insert(parent.clone());
        self.wake.notify_one();
    }
}

impl Engine {
    /// After the engine committed `stored` (which was `before`): a cascade recorded by this
    /// write is taken at once, and the end of a child of a cascading parent has the parent
    /// looked at again.
    pub(crate) fn tree_changed(&self, before: State, stored: &Operation) {
        let cascades = &self.inner.cascades;
        if stored.cascades() && matches!(before, State::Pending | State::Running) {
            cascades
                .active
                .lock()
                .expect("cascades")
                .insert(stored.name.clone());
            cascades.look_at(&stored.name);
        }
        if stored.done()
            && let Some(parent) = &stored.parent
            && cascades.active.lock().expect("cascades").contains(parent)
        {
            cascades.look_at(parent);
        }
        // A parent held CANCELLING by its worker's stop may be ended now.
        if stored.held() && before != State::Pending && stored.has_children {
            cascades.look_at(&stored.name);
        }
        // The PENDING children of a parent that starts running may be leased now.
        if stored.state == State::Running && before != State::Running && stored.has_children {
            self.inner.work.notify_waiters();
        }
    }

    /// Runs cascades until `shutdown` resolves.
    pub async fn run_cascades(&self, shutdown: impl std::future::Future<Output = ()>) {
        let mut rescan = tokio::time::interval(CASCADE_RESCAN);
        rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = self.inner.cascades.wake.notified() => {}
                _ = rescan.tick() => match self.inner.store.cascades(usize::MAX >> 1).await {
                    Ok(names) => {
                        let cascades = &self.inner.cascades;
                        *cascades.active.lock().expect("cascades") = names.iter().cloned().collect();
                        cascades.due.lock().expect("cascades").extend(names);
                    }
                    Err(e) => tracing::warn!(error = %e, "reading the cascades failed"),
                },
            }
            let due: Vec<Name> = self
                .inner
                .cascades
                .due
                .lock()
                .expect("cascades")
                .drain()
                .collect();
            for parent in due {
                if let Err(e) = self.cascade(&parent).await {
                    tracing::warn!(parent = parent.as_str(), error = %e, "cascade failed; it resumes on the next pass");
                }
            }
        }
    }

    /// One pass of the cascade of `parent`: ends its children that are PENDING or RUNNING,
    /// and when none is left that is not done, ends the cascade (and a held parent).
    async fn cascade(&self, parent: &Name) -> Result<()> {
        loop {
            let cancel = self.cascade_cancel();
            let written = self
                .write(
                    Write::Update,
                    self.inner.store.cascade(parent, CASCADE_BATCH, cancel),
                )
                .await?;
            let count = written.len();
            for stored in &written {
                self.announce_cascaded(stored);
            }
            if count < CASCADE_BATCH {
                break;
            }
        }
        if self.inner.store.open_children(parent).await? > 0 {
            return Ok(());
        }
        if self
            .inner
            .store
            .get(parent)
            .await?
            .is_some_and(|op| op.held())
        {
            let cancelled = self.cancelled_descendants(parent).await?;
            self.change(parent, |op, now| {
                if !op.held() {
                    return Ok(false);
                }
                let by_parent = op.cancel.as_ref().is_some_and(|c| c.cascade);
                let message = if by_parent {
                    CANCELLED_BY_PARENT
                } else {
                    CANCELLED_BY_USER
                };
                let mut status = Status::new(Code::Cancelled, message);
                status.details.push(serde_json::json!({
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": CHILDREN_CANCELLED,
                    "domain": "longrun",
                    "metadata": {"cancelledDescendants": cancelled.to_string()},
                }));
                Ok(matches!(
                    op.apply(Event::ChildrenDone, Some(Outcome::Error(status)), now),
                    Transition::Move(_)
                ))
            })
            .await?;
        }
        self.inner.store.end_cascade(parent).await?;
        let cascades = &self.inner.cascades;
        cascades.active.lock().expect("cascades").remove(parent);
        Ok(())
    }

    /// What a cascade does to a child that is PENDING or RUNNING: the cancel of a call
    /// ([`Engine::cancel`]'s transition, whatever the type's `cancellable`), marked as the
    /// cascade's.
    fn cascade_cancel(&self) -> longrun_store::Start {
        let engine = self.clone();
        Arc::new(move |mut op: Operation| {
            let cancel = CancelRequest {
                time: engine.now(),
                principal: String::new(),
                cascade: true,
            };
            engine.apply_cancel(&mut op, cancel, CANCELLED_BY_PARENT);
            op
        })
    }

    /// Tells of a child the cascade wrote, as [`Engine::change`] tells of its writes.
    fn announce_cascaded(&self, stored: &Operation) {
        // Ended or held from PENDING (a held child never had a lease), else told to stop.
        let before = if stored.state == State::Cancelled || stored.held() {
            State::Pending
        } else {
            State::Running
        };
        self.updated(before, stored);
    }

    /// How many descendants of `parent` the cascades cancelled: each child the cascade
    /// cancelled that ended CANCELLED, with those its own cascade cancelled.
    async fn cancelled_descendants(&self, parent: &Name) -> Result<u64> {
        let filter = format!("metadata.parent = \"{}\"", parent.as_str());
        let filter = filter::parse(&filter)
            .ok()
            .flatten()
            .ok_or_else(|| Error::Internal(format!("cannot filter the children of {parent}")))?;
        let mut count = 0;
        let mut after = None;
        loop {
            let page = self
                .inner
                .store
                .list(ListQuery {
                    project: parent.project(),
                    filter: Some(filter.clone()),
                    after: after.take(),
                    limit: CASCADE_BATCH,
                    scan_budget: usize::MAX,
                })
                .await?
                .operations;
            for child in &page {
                if child.state == State::Cancelled
                    && child.cancel.as_ref().is_some_and(|c| c.cascade)
                {
                    count += 1 + own_cancelled_descendants(child);
                }
            }
            match page.last() {
                Some(last) if page.len() == CASCADE_BATCH => {
                    after = Some(Cursor {
                        create_time: last.create_time,
                        name: last.name.clone(),
                    });
                }
                _ => return Ok(count),
            }
        }
    }
}

/// The `cancelledDescendants` of a cancelled parent's end (0 for any other operation).
fn own_cancelled_descendants(op: &Operation) -> u64 {
    let Some(Outcome::Error(status)) = &op.outcome else {
        return 0;
    };
    status
        .details
        .iter()
        .find(|d| d["reason"] == CHILDREN_CANCELLED)
        .and_then(|d| d["metadata"]["cancelledDescendants"].as_str())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The message of an operation cancelled by its parent's cascade.
pub const CANCELLED_BY_PARENT: &str =
    "Operation cancelled because its parent ended or was cancelled.";
