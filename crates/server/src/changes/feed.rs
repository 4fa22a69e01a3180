//! Feeds the change hub. The engine announces every change it commits
//! (`longrun_engine::Observer::committed`); on a store only this server uses, [`Feed`]
//! publishes each of them, so every acknowledged write enters the hub once, in the order of
//! its commits. A store several servers share is followed through its signals (`follow`),
//! which cover every server's writes, this one's included (PostgreSQL notifies every insert,
//! update and delete), so each change enters the hub once, in the order the notifications
//! arrive. Deletes are the exception: this server's are published from the engine's
//! announcement, with the record deleted; other servers' only for operations seen since the
//! start, with the record last published (a delete's notification names an operation the
//! store no longer has, and another schema's notifications arrive on the same channel), so
//! the delete, through another server, of an operation untouched since this server started
//! is not announced.

use super::watch::{Hub, Kind};
use longrun_engine::{Change, Observer};
use longrun_store::{Operations, Signal};
use longrun_types::Name;
use std::sync::Arc;

/// Publishes the changes the engine commits to the hub.
pub struct Feed {
    hub: Arc<Hub>,
    /// The store is shared: `follow` publishes everything but this server's deletes.
    shared: bool,
}

impl Feed {
    /// The feed of `hub`; `shared` when the store has signals (`subscribe`).
    pub fn new(hub: Arc<Hub>, shared: bool) -> Feed {
        Feed { hub, shared }
    }
}

impl Observer for Feed {
    fn committed(&self, change: &Change) {
        match change {
            Change::Created(op) | Change::Updated(op) | Change::Leased(op) => {
                if !self.shared {
                    self.hub.publish(Kind::operation(op.clone()));
                }
            }
            // Also on a shared store: PostgreSQL's notification of a delete cannot be told
            // from another schema's (see `Hub::publish_deleted_if_known`).
            Change::Deleted(op) => self.hub.publish(Kind::deleted(op.clone())),
            // Operations removed past retention are announced as deleted; on a shared store
            // the notifications of the deletes reach the hub (`follow`).
            Change::Expired(op) => {
                if !self.shared {
                    self.hub.publish(Kind::deleted(op.clone()));
                }
            }
        }
    }
}

/// Most signals read in one go; their operations are read concurrently.
const BATCH: usize = 256;

/// Follows a shared store's signals into the hub until the store stops sending them: each
/// named operation is read once per batch (a deleted one becomes `deleted`); a lost signal
/// (`Resync`, or this reader falling behind) resets the hub, so every watcher starts over
/// from a fresh snapshot rather than miss a change.
pub async fn follow(store: Arc<dyn Operations>, hub: Arc<Hub>) {
    use tokio::sync::broadcast::error::{RecvError, TryRecvError};
    let Some(mut signals) = store.subscribe() else {
        return;
    };
    hub.remember_operations();
    loop {
        let first = signals.recv().await;
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match signals.try_recv() {
                Ok(s) => batch.push(Ok(s)),
                Err(TryRecvError::Lagged(n)) => batch.push(Err(RecvError::Lagged(n))),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Closed) => batch.push(Err(RecvError::Closed)),
            }
        }
        let mut names: Vec<String> = Vec::new();
        let mut lost = false;
        for signal in batch {
            match signal {
                Ok(Signal::Changed(name)) => {
                    // Keep the last position of a name: one read gives its latest state.
                    names.retain(|n| *n != name);
                    names.push(name);
                }
                Ok(Signal::Queued) => {}
                Ok(Signal::Resync) | Err(RecvError::Lagged(_)) => lost = true,
                Err(RecvError::Closed) => return,
            }
        }
        if lost {
            hub.reset();
            continue;
        }
        let reads = names
            .into_iter()
            .filter_map(|n| Name::parse(&n).ok())
            .map(|name| {
                let store = store.clone();
                async move { (store.get(&name).await, name) }
            });
        for (read, name) in futures_util::future::join_all(reads).await {
            match read {
                Ok(Some(op)) => hub.publish(Kind::operation(op)),
                // Deleted through another server (this one's deletes are published from the
                // engine's announcement), or a name of another schema notifying on the same channel.
                Ok(None) => {
                    hub.publish_deleted_if_known(&name);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read a changed operation; watchers start over");
                    hub.reset();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changes::watch::Since;
    use longrun_engine::{Engine, Options, Submission};
    use longrun_types::{Project, State};
    use std::time::Duration;

    /// On a store only this server uses, the operations retention removes reach watchers
    /// as `deleted`, like any other delete.
    #[tokio::test]
    async fn expired_operations_are_announced_as_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let store = longrun_store_sqlite::SqliteStore::open(&dir.path().join("db")).unwrap();
        let hub = Arc::new(Hub::new());
        let mut options = Options::new(b"key".to_vec());
        options.retention = Duration::ZERO;
        options.observer = Arc::new(Feed::new(hub.clone(), false));
        let engine = Engine::new(Arc::new(store), options);
        let submission = Submission {
            op_type: "T".into(),
            ..Submission::default()
        };
        let project = Project::parse("p").unwrap();
        let op = engine.submit(&project, submission).await.unwrap();
        let cancelled = engine.cancel(&op.name, "").await.unwrap();
        assert_eq!(cancelled.state, State::Cancelled);
        let before = hub.position();
        tokio::time::sleep(Duration::from_millis(5)).await;

        assert_eq!(engine.expire().await.unwrap(), 1);
        let Since::Changes(changes) = hub.since(before) else {
            panic!("the hub forgot")
        };
        assert_eq!(changes.len(), 1);
        assert!(
            matches!(&changes[0].kind, Kind::Deleted(gone) if gone.name == op.name && gone.state == State::Cancelled)
        );
    }
}
