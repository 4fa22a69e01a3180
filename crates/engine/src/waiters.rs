//! Wake-ups for `wait`: callers register interest in an operation before reading it, and
//! every state change that ends an operation wakes them. No polling.
//!
//! Also the cancels announced ahead of their commit: a cancel of a RUNNING operation wakes
//! the watchers of its lease before the store has written it, so that the worker hears of it
//! while the commit is on its way (the client's `{}` still waits for the commit). A worker
//! that stops on a cancel whose commit then fails acknowledges it, and the state machine
//! ends the operation CANCELLED all the same (RUNNING + AcknowledgeCancel).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

#[derive(Default)]
pub struct Waiters {
    by_name: Mutex<HashMap<String, (Arc<Notify>, usize)>>,
    /// Cancels being written: operation name → the lease id it was running under, with how
    /// many cancel calls announced it.
    cancelling: Mutex<HashMap<String, (String, usize)>>,
}

/// Interest in one operation; dropping it unregisters.
pub struct Interest<'a> {
    waiters: &'a Waiters,
    name: String,
    pub notify: Arc<Notify>,
}

impl Waiters {
    pub fn register(&self, name: &str) -> Interest<'_> {
        let mut map = self.by_name.lock().expect("waiters lock");
        let entry = map
            .entry(name.to_string())
            .or_insert_with(|| (Arc::new(Notify::new()), 0));
        entry.1 += 1;
        Interest {
            waiters: self,
            name: name.to_string(),
            notify: entry.0.clone(),
        }
    }

    /// Wakes every waiter (after signals may have been lost).
    pub fn wake_all(&self) {
        for (notify, _) in self.by_name.lock().expect("waiters lock").values() {
            notify.notify_waiters();
        }
    }

    /// An announcement of a cancel of `name`, made (once) by `announce` before the cancel is
    /// committed, and withdrawn when it is dropped at the end of the cancel call (committed
    /// or not): from then on the store tells.
    pub fn cancel_announcement<'a>(&'a self, name: &str) -> Announcement<'a> {
        Announcement {
            waiters: self,
            name: name.to_string(),
            made: AtomicBool::new(false),
        }
    }

    /// Whether a cancel of `name` under `lease_id` is announced and not yet withdrawn.
    pub fn cancel_announced(&self, name: &str, lease_id: &str) -> bool {
        self.cancelling
            .lock()
            .expect("cancelling lock")
            .get(name)
            .is_some_and(|(id, _)| id == lease_id)
    }

    pub fn wake(&self, name: &str) {
        if let Some((notify, _)) = self.by_name.lock().expect("waiters lock").get(name) {
            notify.notify_waiters();
        }
    }
}

/// See `Waiters::cancel_announcement`.
pub struct Announcement<'a> {
    waiters: &'a Waiters,
    name: String,
    made: AtomicBool,
}

impl Announcement<'_> {
    /// Announces the cancel of an operation running under `lease_id` and wakes its
    /// waiters; again (a retried compare-and-set) changes nothing.
    pub fn announce(&self, lease_id: &str) {
        if self.made.swap(true, Ordering::SeqCst) {
            return;
        }
        {
            let mut map = self.waiters.cancelling.lock().expect("cancelling lock");
            let entry = map
                .entry(self.name.clone())
                .or_insert_with(|| (lease_id.to_string(), 0));
            entry.0 = lease_id.to_string();
            entry.1 += 1;
        }
        self.waiters.wake(&self.name);
    }
}

impl Drop for Announcement<'_> {
    fn drop(&mut self) {
        if !*self.made.get_mut() {
            return;
        }
        let mut map = self.waiters.cancelling.lock().expect("cancelling lock");
        if let Some(entry) = map.get_mut(&self.name) {
            entry.1 -= 1;
            if entry.1 == 0 {
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
