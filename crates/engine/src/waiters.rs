//! Wake-ups for `wait`: callers register interest in an operation before reading it, and
//! every state change that ends an operation wakes them. No polling.
//!
//! Also the cancels announced ahead of their commit: a cancel call wakes the watchers of the
//! operation's lease as it starts, before the store has read or written anything, so that
//! the worker hears of it while the read and the commit are on their way (the client's `{}`
//! still waits for the commit). A watcher holds the operation RUNNING under its lease, and
//! a cancel of a RUNNING operation of a cancellable type always moves it to CANCELLING, so
//! the watcher acts on the announcement after checking the type. A worker that stops on a
//! cancel whose commit then fails acknowledges it, and the state machine ends the operation
//! CANCELLED all the same (RUNNING + AcknowledgeCancel).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::Notify;

#[derive(Default)]
pub struct Waiters {
    by_name: Mutex<HashMap<String, (Arc<Notify>, usize)>>,
    /// Cancels being made: operation name → how many cancel calls are announcing it, and
    /// when the first of them started.
    cancelling: Mutex<HashMap<String, (usize, Instant)>>,
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

    /// Announces a cancel of `name` and wakes its waiters, before the cancel has read the
    /// operation; withdrawn when the returned value is dropped at the end of the cancel call
    /// (committed or not): from then on the store tells.
    pub fn announce_cancel<'a>(&'a self, name: &str) -> Announcement<'a> {
        self.cancelling
            .lock()
            .expect("cancelling lock")
            .entry(name.to_string())
            .or_insert((0, Instant::now()))
            .0 += 1;
        self.wake(name);
        Announcement {
            waiters: self,
            name: name.to_string(),
        }
    }

    /// When a cancel of `name` that is not yet withdrawn was announced, if one is.
    pub fn cancel_announced(&self, name: &str) -> Option<Instant> {
        let cancelling = self.cancelling.lock().expect("cancelling lock");
        cancelling.get(name).map(|&(_, since)| since)
    }

    pub fn wake(&self, name: &str) {
        if let Some((notify, _)) = self.by_name.lock().expect("waiters lock").get(name) {
            notify.notify_waiters();
        }
    }
}

/// See `Waiters::announce_cancel`.
pub struct Announcement<'a> {
    waiters: &'a Waiters,
    name: String,
}

impl Drop for Announcement<'_> {
    fn drop(&mut self) {
        let mut map = self.waiters.cancelling.lock().expect("cancelling lock");
        if let Some((count, _)) = map.get_mut(&self.name) {
            *count -= 1;
            if *count == 0 {
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
