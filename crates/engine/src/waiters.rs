//! Wake-ups for `wait`: callers register interest in an operation before reading it, and
//! every state change that ends an operation wakes them. No polling.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

#[derive(Default)]
pub struct Waiters {
    by_name: Mutex<HashMap<String, (Arc<Notify>, usize)>>,
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

    pub fn wake(&self, name: &str) {
        if let Some((notify, _)) = self.by_name.lock().expect("waiters lock").get(name) {
            notify.notify_waiters();
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
