//! Feeds the change hub. A store only this server uses is wrapped (`Watched`), so every
//! write it acknowledges becomes a change; a store several servers share is followed
//! through its signals (`follow`), which cover every server's writes, this one's included
//! (PostgreSQL notifies every insert, update and delete), so each change enters the hub
//! once, in the order the notifications arrive.

use super::watch::{Hub, Kind};
use async_trait::async_trait;
use longrun_store::{
    Inserted, LeaseQuery, ListQuery, NewOperation, Result, ServiceAccount, Signal, Store,
};
use longrun_types::{Name, Operation, Timestamp};
use std::sync::Arc;

/// A store that reports its acknowledged writes to the hub. For stores without
/// `subscribe` (SQLite): nothing else writes to them.
pub struct Watched {
    inner: Arc<dyn Store>,
    hub: Arc<Hub>,
}

impl Watched {
    /// `store` wrapped if only this process uses it, as is if it is shared (then `follow`
    /// feeds the hub).
    pub fn wrap(store: Arc<dyn Store>, hub: Arc<Hub>) -> Arc<dyn Store> {
        if store.subscribe().is_some() {
            store
        } else {
            Arc::new(Watched { inner: store, hub })
        }
    }
}

#[async_trait]
impl Store for Watched {
    fn subscribe(&self) -> Option<tokio::sync::broadcast::Receiver<Signal>> {
        self.inner.subscribe()
    }
    async fn shared_secret(&self, candidate: Vec<u8>) -> Result<Vec<u8>> {
        self.inner.shared_secret(candidate).await
    }
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
    async fn insert(&self, new: NewOperation) -> Result<Inserted> {
        let inserted = self.inner.insert(new).await?;
        if let Inserted::Created(op) = &inserted {
            self.hub.publish(Kind::Operation(Box::new(op.clone())));
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
        let stored = self.inner.update(operation).await?;
        self.hub.publish(Kind::Operation(Box::new(stored.clone())));
        Ok(stored)
    }
    async fn delete(&self, name: &Name, version: i64) -> Result<()> {
        self.inner.delete(name, version).await?;
        self.hub.publish(Kind::Deleted(name.clone()));
        Ok(())
    }
    async fn payload(&self, name: &Name) -> Result<Option<serde_json::Value>> {
        self.inner.payload(name).await
    }
    async fn lease(&self, query: LeaseQuery) -> Result<Vec<(Operation, serde_json::Value)>> {
        let leased = self.inner.lease(query).await?;
        for (op, _) in &leased {
            self.hub.publish(Kind::Operation(Box::new(op.clone())));
        }
        Ok(leased)
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
            self.hub.publish(Kind::Operation(Box::new(op)));
        }
        Ok(())
    }
    /// Operations removed past retention are not announced: the store does not say which
    /// went (a watcher learns of them on its next snapshot).
    async fn expire(&self, ended_before: Timestamp, limit: usize) -> Result<usize> {
        self.inner.expire(ended_before, limit).await
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
                Ok(Some(op)) => hub.publish(Kind::Operation(Box::new(op))),
                Ok(None) => hub.publish(Kind::Deleted(name)),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read a changed operation; watchers start over");
                    hub.reset();
                }
            }
        }
    }
}
