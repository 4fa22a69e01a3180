//! Feeds the change hub, and times the store's writes for metrics. A store only this
//! server uses has every write it acknowledges published by the wrapper (`Watched`); a
//! store several servers share is followed
//! through its signals (`follow`), which cover every server's writes, this one's included
//! (PostgreSQL notifies every insert, update and delete), so each change enters the hub
//! once, in the order the notifications arrive. Deletes are the exception: this server's
//! are published by the wrapper, with the record deleted; other servers' only for
//! operations seen since the start, with the record last published (a delete's
//! notification names an operation the store no longer has, and another schema's
//! notifications arrive on the same channel), so the delete, through another server, of an
//! operation untouched since this server started is not announced.

use super::metrics::Metrics;
use super::watch::{Hub, Kind};
use async_trait::async_trait;
use longrun_store::{
    Accounts, Asset, AssetWrite, Assets, Inserted, LeaseQuery, Leasing, ListQuery, NewOperation,
    Operations, Projects, Registration, Result, ServiceAccount, Signal, Store,
};
use longrun_types::{Name, Operation, Timestamp};
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

/// A store that times its writes (each in a span: `store.insert`, `store.update`,
/// `store.delete`, `store.lease`, exported inside a traced request) and, for a store without `subscribe` (SQLite: nothing
/// else writes to it), reports each acknowledged write to the hub.
pub struct Watched {
    inner: Arc<dyn Store>,
    /// `None` for a shared store: `follow` feeds the hub.
    hub: Option<Arc<Hub>>,
    /// The hub, for the deletes this server makes on a shared store.
    shared_hub: Arc<Hub>,
    metrics: Arc<Metrics>,
    demand: Arc<super::demand::Demand>,
}

impl Watched {
    pub fn wrap(store: Arc<dyn Store>, console: &super::Console) -> Arc<dyn Store> {
        let hub = console.hub.clone();
        let metrics = console.metrics.clone();
        let demand = console.demand.clone();
        let shared_hub = hub.clone();
        let hub = store.subscribe().is_none().then_some(hub);
        Arc::new(Watched {
            inner: store,
            hub,
            shared_hub,
            metrics,
            demand,
        })
    }

    fn publish(&self, kind: impl FnOnce() -> Kind) {
        if let Some(hub) = &self.hub {
            hub.publish(kind());
        }
    }

    fn timed(&self, started: Instant) {
        self.metrics.store_commit(started.elapsed());
    }
}

#[async_trait]
impl Operations for Watched {
    fn subscribe(&self) -> Option<tokio::sync::broadcast::Receiver<Signal>> {
        self.inner.subscribe()
    }

    async fn shared_secret(&self, candidate: Vec<u8>) -> Result<Vec<u8>> {
        self.inner.shared_secret(candidate).await
    }

    async fn insert(&self, new: NewOperation) -> Result<Inserted> {
        let started = Instant::now();
        let inserted = self
            .inner
            .insert(new)
            .instrument(tracing::info_span!("store.insert"))
            .await?;
        self.timed(started);
        if let Inserted::Created(op) = &inserted {
            self.demand.queued(op);
            self.publish(|| Kind::operation(op.clone()));
        }
        Ok(inserted)
    }

    async fn get(&self, name: &Name) -> Result<Option<Operation>> {
        self.inner.get(name).await
    }

    async fn list(&self, query: ListQuery) -> Result<Vec<Operation>> {
        self.inner.list(query).await
    }

    async fn update(&self, operation: Operation) -> Result<Operation> {
        let started = Instant::now();
        let stored = self
            .inner
            .update(operation)
            .instrument(tracing::info_span!("store.update"))
            .await?;
        self.timed(started);
        self.publish(|| Kind::operation(stored.clone()));
        Ok(stored)
    }

    async fn delete(&self, operation: &Operation) -> Result<()> {
        let started = Instant::now();
        self.inner
            .delete(operation)
            .instrument(tracing::info_span!("store.delete"))
            .await?;
        self.timed(started);
        // Also on a shared store: PostgreSQL's notification of a delete cannot be told from
        // another schema's (see `Hub::publish_deleted_if_known`).
        let hub = self.hub.as_ref().unwrap_or(&self.shared_hub);
        hub.publish(Kind::deleted(operation.clone()));
        Ok(())
    }

    async fn payload(&self, name: &Name) -> Result<Option<serde_json::Value>> {
        self.inner.payload(name).await
    }

    /// Operations removed past retention are announced as deleted.
    async fn expire(&self, ended_before: Timestamp, limit: usize) -> Result<Vec<Operation>> {
        let expired = self.inner.expire(ended_before, limit).await?;
        // On a shared store the notifications of the deletes reach the hub (`follow`).
        for op in &expired {
            self.publish(|| Kind::deleted(op.clone()));
        }
        Ok(expired)
    }

    async fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<Operation>> {
        self.inner.due(now, limit).await
    }

    async fn scan(
        &self,
        after: Option<&Name>,
        limit: usize,
    ) -> Result<Vec<(Operation, serde_json::Value)>> {
        self.inner.scan(after, limit).await
    }

    async fn import(&self, operations: Vec<(Operation, serde_json::Value)>) -> Result<()> {
        let ops: Vec<Operation> = operations.iter().map(|(op, _)| op.clone()).collect();
        self.inner.import(operations).await?;
        for op in ops {
            self.publish(|| Kind::operation(op));
        }
        Ok(())
    }
}

#[async_trait]
impl Leasing for Watched {
    async fn lease(&self, query: LeaseQuery) -> Result<Vec<(Operation, serde_json::Value)>> {
        let started = Instant::now();
        let leased = self
            .inner
            .lease(query)
            .instrument(tracing::info_span!("store.lease"))
            .await?;
        if !leased.is_empty() {
            self.timed(started);
        }
        for (op, _) in &leased {
            self.publish(|| Kind::operation(op.clone()));
        }
        Ok(leased)
    }

    async fn clock(&self) -> Result<Option<Timestamp>> {
        self.inner.clock().await
    }
}

#[async_trait]
impl Accounts for Watched {
    async fn create_account(&self, account: ServiceAccount) -> Result<bool> {
        self.inner.create_account(account).await
    }

    async fn account(&self, email: &str) -> Result<Option<ServiceAccount>> {
        self.inner.account(email).await
    }

    async fn accounts(&self) -> Result<Vec<ServiceAccount>> {
        self.inner.accounts().await
    }

    async fn set_account_disabled(&self, email: &str, disabled: bool) -> Result<bool> {
        self.inner.set_account_disabled(email, disabled).await
    }

    async fn delete_account(&self, email: &str) -> Result<bool> {
        self.inner.delete_account(email).await
    }
}

#[async_trait]
impl Assets for Watched {
    // Assets are not operations: nothing to watch.
    async fn asset(&self, name: &str) -> Result<Option<Asset>> {
        self.inner.asset(name).await
    }

    async fn assets(&self, parent: &str, after: Option<&str>, limit: usize) -> Result<Vec<Asset>> {
        self.inner.assets(parent, after, limit).await
    }

    async fn put_asset(&self, asset: Asset, overwrite: bool) -> Result<AssetWrite> {
        self.inner.put_asset(asset, overwrite).await
    }

    async fn delete_asset(&self, name: &str) -> Result<AssetWrite> {
        self.inner.delete_asset(name).await
    }

    async fn move_asset(&self, from: &str, to: &str, to_parent: &str) -> Result<AssetWrite> {
        self.inner.move_asset(from, to, to_parent).await
    }

    async fn scan_assets(&self, after: Option<&str>, limit: usize) -> Result<Vec<Asset>> {
        self.inner.scan_assets(after, limit).await
    }
}

#[async_trait]
impl Projects for Watched {
    // Nor are projects' settings and registrations.
    async fn max_concurrent_exports(&self, project: &str) -> Result<u64> {
        self.inner.max_concurrent_exports(project).await
    }

    async fn set_max_concurrent_exports(&self, project: &str, value: u64) -> Result<()> {
        self.inner.set_max_concurrent_exports(project, value).await
    }

    async fn register_project(&self, registration: Registration) -> Result<bool> {
        self.inner.register_project(registration).await
    }

    async fn update_project(&self, registration: Registration) -> Result<bool> {
        self.inner.update_project(registration).await
    }

    async fn registration(&self, project: &str) -> Result<Option<Registration>> {
        self.inner.registration(project).await
    }

    async fn registrations(&self) -> Result<Vec<Registration>> {
        self.inner.registrations().await
    }

    async fn unregister_project(&self, project: &str) -> Result<bool> {
        self.inner.unregister_project(project).await
    }
}

/// Most signals read in one go; their operations are read concurrently.
const BATCH: usize = 256;

/// Follows a shared store's signals into the hub until the store stops sending them: each
/// named operation is read once per batch (a deleted one becomes `deleted`); a lost signal
/// (`Resync`, or this reader falling behind) resets the hub, so every watcher starts over
/// from a fresh snapshot rather than miss a change.
pub async fn follow(store: Arc<dyn Store>, hub: Arc<Hub>) {
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
                // Deleted through another server (this one's deletes are published by the
                // wrapper), or a name of another schema notifying on the same channel.
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
    use crate::console::watch::Since;
    use longrun_types::{Code, Outcome, Project, State, Status};

    /// On a store only this server uses, the operations retention removes reach watchers
    /// as `deleted`, like any other delete.
    #[tokio::test]
    async fn expired_operations_are_announced_as_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let store = longrun_store_sqlite::SqliteStore::open(&dir.path().join("db")).unwrap();
        let console = super::super::Console::new(false, std::time::Duration::from_secs(1), 0);
        let store = Watched::wrap(Arc::new(store), &console);
        let name = Name::new(&Project::parse("p").unwrap(), "old").unwrap();
        let op = Operation::new(name.clone(), "T".into(), Timestamp(1));
        let new = NewOperation {
            operation: op,
            payload: serde_json::json!({}),
            max_queued: 10,
        };
        let Inserted::Created(mut op) = store.insert(new).await.unwrap() else {
            panic!("not created");
        };
        let cancelled = Outcome::Error(Status::new(Code::Cancelled, "cancelled"));
        op.move_to(State::Cancelled, Some(cancelled), Timestamp(2));
        store.update(op).await.unwrap();
        let before = console.hub.position();

        let expired = store.expire(Timestamp(3), 10).await.unwrap();
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].name, name);
        let Since::Changes(changes) = console.hub.since(before) else {
            panic!("the hub forgot")
        };
        assert_eq!(changes.len(), 1);
        assert!(
            matches!(&changes[0].kind, Kind::Deleted(op) if op.name == name && op.state == State::Cancelled)
        );
    }
}
