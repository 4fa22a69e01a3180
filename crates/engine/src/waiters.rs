//! Wake-ups for `wait`: callers register interest in an operation before reading it, and
//! every state change that ends an operation wakes them. No polling.
//!
//! Also the cancels announced ahead of their commit: a cancel call wakes the watchers of the
//! operation's lease as it starts, before the store has read or written anything, so that
//! the worker hears of it while the read and the commit are on their way (the client's `{}`
//! still waits for the commit). A watcher that read the operation RUNNING under its lease,
//! with no change since, knows that a cancel of a cancellable type will move it to
//! CANCELLING, so it acts on the announcement after checking the type; after a change it
//! reads the operation again first. A worker that stops on a cancel whose commit then fails
//! acknowledges it, and the state machine ends the operation CANCELLED all the same
//! (RUNNING + AcknowledgeCancel).

use longrun_types::operation::CancelRequest;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

#[derive(Default)]
pub struct Waiters {
    by_name: Mutex<HashMap<String, (Arc<Slot>, usize)>>,
    /// Cancels being made: operation name → how many cancel calls are announcing it, how
    /// many watchers have told their workers of it, and the first call's request.
    cancelling: Mutex<HashMap<String, Announced>>,
}

#[derive(Default)]
struct Announced {
    calls: usize,
    told: usize,
    /// Who asked first, and when: what a worker's acknowledgement that comes before the
    /// cancel's commit records as the cancel.
    request: Option<CancelRequest>,
}

/// One operation's wake-ups: `notify` is woken by every change the store reports and by
/// cancel announcements; `changes` counts the former.
#[derive(Default)]
pub struct Slot {
    pub notify: Notify,
    changes: AtomicU64,
}

/// Interest in one operation; dropping it unregisters.
pub struct Interest<'a> {
    waiters: &'a Waiters,
    name: String,
    slot: Arc<Slot>,
}

impl Interest<'_> {
    pub fn notify(&self) -> &Notify {
        &self.slot.notify
    }

    /// How many changes of the operation have been reported so far: equal before and after
    /// a wake-up, the operation is as it was read in between.
    pub fn changes(&self) -> u64 {
        self.slot.changes.load(Ordering::SeqCst)
    }
}

impl Waiters {
    pub fn register(&self, name: &str) -> Interest<'_> {
        let mut map = self.by_name.lock().expect("waiters lock");
        let entry = map.entry(name.to_string()).or_default();
        entry.1 += 1;
        Interest {
            waiters: self,
            name: name.to_string(),
            slot: entry.0.clone(),
        }
    }

    /// Wakes every waiter (after signals may have been lost): everything may have changed.
    pub fn wake_all(&self) {
        for (slot, _) in self.by_name.lock().expect("waiters lock").values() {
            slot.changes.fetch_add(1, Ordering::SeqCst);
            slot.notify.notify_waiters();
        }
    }

    /// Announces a cancel of `name` and wakes its waiters, before the cancel has read the
    /// operation; withdrawn when the returned value is dropped at the end of the cancel call
    /// (committed or not): from then on the store tells.
    pub fn announce_cancel<'a>(&'a self, name: &str, request: CancelRequest) -> Announcement<'a> {
        let mut cancelling = self.cancelling.lock().expect("cancelling lock");
        let announced = cancelling.entry(name.to_string()).or_default();
        announced.calls += 1;
        announced.request.get_or_insert(request);
        drop(cancelling);
        if let Some((slot, _)) = self.by_name.lock().expect("waiters lock").get(name) {
            slot.notify.notify_waiters();
        }
        Announcement {
            waiters: self,
            name: name.to_string(),
        }
    }

    /// Whether a cancel of `name` is announced and not yet withdrawn; if so, the caller
    /// tells its worker, and is counted (`Announcement::told`).
    pub fn tell_announced(&self, name: &str) -> bool {
        let mut cancelling = self.cancelling.lock().expect("cancelling lock");
        cancelling
            .get_mut(name)
            .map(|announced| announced.told += 1)
            .is_some()
    }

    /// The request of a cancel of `name` announced and not yet withdrawn, if any.
    pub fn announced_request(&self, name: &str) -> Option<CancelRequest> {
        let cancelling = self.cancelling.lock().expect("cancelling lock");
        cancelling.get(name).and_then(|a| a.request.clone())
    }

    /// The operation `name` changed: wakes its waiters.
    pub fn wake(&self, name: &str) {
        if let Some((slot, _)) = self.by_name.lock().expect("waiters lock").get(name) {
            slot.changes.fetch_add(1, Ordering::SeqCst);
            slot.notify.notify_waiters();
        }
    }
}

/// See `Waiters::announce_cancel`.
pub struct Announcement<'a> {
    waiters: &'a Waiters,
    name: String,
}

impl Announcement<'_> {
    /// How many workers were told of the cancel ahead of its commit since this was last
    /// asked (by any of the cancel calls announcing it).
    pub fn told(&self) -> usize {
        let mut cancelling = self.waiters.cancelling.lock().expect("cancelling lock");
        cancelling
            .get_mut(&self.name)
            .map_or(0, |announced| std::mem::take(&mut announced.told))
    }
}

impl Drop for Announcement<'_> {
    fn drop(&mut self) {
        let mut map = self.waiters.cancelling.lock().expect("cancelling lock");
        if let Some(announced) = map.get_mut(&self.name) {
            announced.calls -= 1;
            if announced.calls == 0 {
                map.remove(&self.name);
            }
        }
    }
}

impl Drop for Interest<'_> {
    fn drop(&mut self) {
        let mut map = self.waiters.by_name.lock().expect("waiters lock");
        if let Some(entry) = map.get_mut(&self.name) {
            entry.1 -= 1;
            if entry.1 == 0 {
                map.remove(&self.name);
            }
        }
    }
}
