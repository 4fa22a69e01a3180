//! A cancel reaches the lease's watchers before its read and its commit, and the client's
//! answer waits for the commit: on a real SQLite store whose reads (once asked) and writes
//! of CANCELLING records are held at gates, so that the order is seen, not hoped for.

use crate::tests::{project, submission};
use crate::{Engine, LeaseRequest, Options};
use async_trait::async_trait;
use longrun_store::{
    Inserted, LeaseQuery, Leasing, ListPage, ListQuery, NewOperation, Operations, Result, Running,
    Signal,
};
use longrun_store_sqlite::SqliteStore;
use longrun_types::operation::{Outcome, Status};
use longrun_types::{Code, Name, Operation, State, Timestamp};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;
use tokio::sync::{Semaphore, broadcast};
use tokio::task::JoinHandle;

/// SQLite, with every write of a CANCELLING record waiting for a permit (or failing, when
/// `fail` is set, as a lost commit would), and with `hold_reads` set, every read waiting for
/// one of `reads`.
struct Gated {
    inner: SqliteStore,
    gate: Semaphore,
    fail: AtomicBool,
    hold_reads: AtomicBool,
    reads: Semaphore,
}

#[async_trait]
impl Operations for Gated {
    fn subscribe(&self) -> Option<broadcast::Receiver<Signal>> {
        self.inner.subscribe()
    }
    async fn insert(&self, new: NewOperation) -> Result<Inserted> {
        self.inner.insert(new).await
    }
    async fn insert_batch(&self, batch: Vec<NewOperation>) -> Result<Vec<Inserted>> {
        self.inner.insert_batch(batch).await
    }
    async fn get(&self, name: &Name) -> Result<Option<Operation>> {
        if self.hold_reads.load(SeqCst) {
            self.reads.acquire().await.expect("open").forget();
        }
        self.inner.get(name).await
    }
    async fn list(&self, query: ListQuery) -> Result<ListPage> {
        self.inner.list(query).await
    }
    async fn update(&self, operation: Operation) -> Result<Operation> {
        if operation.state == State::Cancelling {
            self.gate.acquire().await.expect("open").forget();
            if self.fail.load(SeqCst) {
                return Err(longrun_store::Error::Conflict);
            }
        }
        self.inner.update(operation).await
    }
    async fn delete(&self, operation: &Operation) -> Result<()> {
        self.inner.delete(operation).await
    }
    async fn payload(&self, name: &Name) -> Result<Option<serde_json::Value>> {
        self.inner.payload(name).await
    }
    async fn expire(&self, ended_before: Timestamp, limit: usize) -> Result<Vec<Operation>> {
        self.inner.expire(ended_before, limit).await
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
        self.inner.import(operations).await
    }
}

#[async_trait]
impl Leasing for Gated {
    async fn lease(&self, query: LeaseQuery) -> Result<Vec<(Operation, serde_json::Value)>> {
        self.inner.lease(query).await
    }
    async fn running(&self, project: &str, op_type: &str, key: Option<&str>) -> Result<Running> {
        self.inner.running(project, op_type, key).await
    }
    async fn next_scheduled(&self, after: Timestamp) -> Result<Option<Timestamp>> {
        self.inner.next_scheduled(after).await
    }
}

#[async_trait]
impl longrun_store::Queues for Gated {
    async fn set_queue_paused(&self, project: &str, op_type: &str, paused: bool) -> Result<()> {
        self.inner.set_queue_paused(project, op_type, paused).await
    }
    async fn paused_queues(&self, project: Option<&str>) -> Result<Vec<(String, String)>> {
        self.inner.paused_queues(project).await
    }
    async fn queue_counts(
        &self,
        project: &str,
        op_type: &str,
        now: Timestamp,
    ) -> Result<longrun_store::QueueCounts> {
        self.inner.queue_counts(project, op_type, now).await
    }
    async fn queues(
        &self,
        project: Option<&str>,
        now: Timestamp,
    ) -> Result<Vec<longrun_store::QueueStat>> {
        self.inner.queues(project, now).await
    }
    async fn state_counts(&self) -> Result<Vec<longrun_store::StateCount>> {
        self.inner.state_counts().await
    }
}

#[async_trait]
impl longrun_store::Trees for Gated {
    async fn open_children(&self, parent: &Name) -> Result<u64> {
        self.inner.open_children(parent).await
    }
    async fn cascade(
        &self,
        parent: &Name,
        limit: usize,
        cancel: longrun_store::Start,
    ) -> Result<Vec<Operation>> {
        self.inner.cascade(parent, limit, cancel).await
    }
    async fn cascades(&self, limit: usize) -> Result<Vec<Name>> {
        self.inner.cascades(limit).await
    }
    async fn end_cascade(&self, parent: &Name) -> Result<()> {
        self.inner.end_cascade(parent).await
    }
}

async fn running(store: Arc<Gated>) -> (Engine, Name, String) {
    running_with(store, Options::new(b"key".to_vec())).await
}

async fn running_with(store: Arc<Gated>, options: Options) -> (Engine, Name, String) {
    let engine = Engine::new(store, options);
    let op = engine.submit(&project(), submission("a")).await.unwrap();
    let leased = engine
        .lease(LeaseRequest {
            worker: "w".into(),
            types: vec!["EXPORT_IMAGE".into()],
            max_operations: 1,
            wait: Duration::ZERO,
            lease_duration: Duration::from_secs(60),
            projects: None,
        })
        .await
        .unwrap();
    let lease_id = leased[0].0.lease.as_ref().unwrap().id.clone();
    (engine, op.name, lease_id)
}

fn gated(dir: &tempfile::TempDir) -> Arc<Gated> {
    Arc::new(Gated {
        inner: SqliteStore::open(&dir.path().join("db")).unwrap(),
        gate: Semaphore::new(0),
        fail: Default::default(),
        hold_reads: Default::default(),
        reads: Semaphore::new(0),
    })
}

#[tokio::test]
async fn the_watcher_hears_before_the_commit_and_the_client_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = gated(&dir);
    let (engine, name, lease_id) = running(store.clone()).await;
    let watcher = tokio::spawn({
        let (engine, name, lease_id) = (engine.clone(), name.clone(), lease_id.clone());
        async move { engine.cancel_requested(&name, &lease_id).await }
    });
    let waiting = tokio::spawn({
        let (engine, name, lease_id) = (engine.clone(), name.clone(), lease_id.clone());
        async move {
            engine
                .heartbeat(
                    &name,
                    &lease_id,
                    Default::default(),
                    Some(Duration::from_secs(20)),
                )
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let cancel = tokio::spawn({
        let (engine, name) = (engine.clone(), name.clone());
        async move { engine.cancel(&name, "user:a").await }
    });
    // The commit is held: the watcher and the waiting heartbeat hear of the cancel anyway.
    let heard = tokio::time::timeout(Duration::from_secs(5), watcher).await;
    assert!(heard.unwrap().unwrap().unwrap());
    let beat = tokio::time::timeout(Duration::from_secs(5), waiting).await;
    assert!(beat.unwrap().unwrap().unwrap().cancel_requested);
    assert!(
        !cancel.is_finished(),
        "the client is answered only after the commit"
    );
    assert_eq!(engine.get(&name).await.unwrap().state, State::Running);
    store.gate.add_permits(1);
    let cancelled = cancel.await.unwrap().unwrap();
    assert_eq!(cancelled.state, State::Cancelling);
    assert_eq!(engine.get(&name).await.unwrap().state, State::Cancelling);
}

#[tokio::test]
async fn a_worker_that_stops_on_a_cancel_whose_commit_fails_ends_it_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let store = gated(&dir);
    store.fail.store(true, SeqCst);
    let (engine, name, lease_id) = running(store.clone()).await;
    let watcher = tokio::spawn({
        let (engine, name, lease_id) = (engine.clone(), name.clone(), lease_id.clone());
        async move { engine.cancel_requested(&name, &lease_id).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let cancel = tokio::spawn({
        let (engine, name) = (engine.clone(), name.clone());
        async move { engine.cancel(&name, "user:a").await }
    });
    assert!(watcher.await.unwrap().unwrap());
    // The worker acknowledges while the cancel's write keeps failing.
    let acknowledged = engine
        .complete(
            &name,
            &lease_id,
            Err(Status::new(Code::Cancelled, "stopped")),
        )
        .await
        .unwrap();
    assert_eq!(acknowledged.state, State::Cancelled);
    store.gate.add_permits(100);
    // The cancel finds the operation done: nothing more to write.
    let after = cancel.await.unwrap().unwrap();
    assert_eq!(after.state, State::Cancelled);
    assert!(
        matches!(after.outcome, Some(Outcome::Error(ref s)) if s.code == Code::Cancelled as i32),
        "{:?}",
        after.outcome
    );
}

/// The watcher of a lease (`Engine::cancel_requested`).
fn watcher(engine: &Engine, name: &Name, lease_id: &str) -> JoinHandle<bool> {
    let (engine, name, lease_id) = (engine.clone(), name.clone(), lease_id.to_string());
    tokio::spawn(async move { engine.cancel_requested(&name, &lease_id).await.unwrap() })
}

/// The watcher of a lease and a waiting heartbeat, each given the chance to read the
/// operation (RUNNING) before the cancel call comes.
fn watchers(engine: &Engine, name: &Name, lease_id: &str) -> (JoinHandle<bool>, JoinHandle<bool>) {
    let watcher = watcher(engine, name, lease_id);
    let waiting = tokio::spawn({
        let (engine, name, lease_id) = (engine.clone(), name.clone(), lease_id.to_string());
        async move {
            let wait = Some(Duration::from_secs(20));
            let beat = engine.heartbeat(&name, &lease_id, Default::default(), wait);
            beat.await.unwrap().cancel_requested
        }
    });
    (watcher, waiting)
}

/// Counts the cancels told to workers.
#[derive(Default)]
struct Deliveries(std::sync::atomic::AtomicUsize);

impl crate::Observer for Deliveries {
    fn cancel_delivered(&self, _delay: Duration) {
        self.0.fetch_add(1, SeqCst);
    }
}

#[tokio::test]
async fn the_watcher_hears_before_the_cancel_has_read_the_operation() {
    let dir = tempfile::tempdir().unwrap();
    let store = gated(&dir);
    let deliveries = Arc::new(Deliveries::default());
    let mut options = Options::new(b"key".to_vec());
    options.observer = deliveries.clone();
    let (engine, name, lease_id) = running_with(store.clone(), options).await;
    let (watcher, waiting) = watchers(&engine, &name, &lease_id);
    tokio::time::sleep(Duration::from_millis(50)).await;
    store.hold_reads.store(true, SeqCst);
    let cancel = tokio::spawn({
        let (engine, name) = (engine.clone(), name.clone());
        async move { engine.cancel(&name, "user:a").await }
    });
    // Neither the cancel's read nor its write has happened: both watchers know already.
    let heard = tokio::time::timeout(Duration::from_secs(5), watcher).await;
    assert!(heard.unwrap().unwrap());
    let beat = tokio::time::timeout(Duration::from_secs(5), waiting).await;
    assert!(beat.unwrap().unwrap());
    assert!(!cancel.is_finished());
    assert_eq!(
        deliveries.0.load(SeqCst),
        0,
        "observed once durable, not before"
    );
    store.hold_reads.store(false, SeqCst);
    store.reads.add_permits(100);
    store.gate.add_permits(1);
    assert_eq!(cancel.await.unwrap().unwrap().state, State::Cancelling);
    assert_eq!(
        deliveries.0.load(SeqCst),
        1,
        "one observation per cancel, however many were told"
    );
    // The worker's later heartbeats are told again, and not observed again.
    store.gate.add_permits(100);
    for _ in 0..3 {
        let beat = engine
            .heartbeat(&name, &lease_id, crate::Report::default(), None)
            .await
            .unwrap();
        assert!(beat.cancel_requested);
    }
    assert_eq!(deliveries.0.load(SeqCst), 1);
}

#[tokio::test]
async fn a_watcher_whose_operation_changed_reads_it_again_before_acting_on_an_announcement() {
    let dir = tempfile::tempdir().unwrap();
    let store = gated(&dir);
    let (engine, name, lease_id) = running(store.clone()).await;
    let watcher = watcher(&engine, &name, &lease_id);
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The lease ends (written past the engine, so that the watcher is not woken yet)...
    let mut done = store.inner.get(&name).await.unwrap().unwrap();
    done.state = State::Succeeded;
    done.lease = None;
    store.inner.update(done).await.unwrap();
    // ...and before the watcher runs, that change is reported and a cancel announced.
    let announced = engine.inner.waiters.announce_cancel(
        name.as_str(),
        longrun_types::operation::CancelRequest {
            time: Timestamp(0),
            principal: String::new(),
            cascade: false,
        },
    );
    engine.inner.waiters.wake(name.as_str());
    let told = tokio::time::timeout(Duration::from_secs(5), watcher).await;
    assert!(
        !told.unwrap().unwrap(),
        "a lease that ended is not told to stop"
    );
    assert_eq!(announced.told(), 0);
}

#[tokio::test]
async fn watchers_do_not_act_on_a_cancel_that_cannot_be_made() {
    let dir = tempfile::tempdir().unwrap();
    let store = gated(&dir);
    let mut options = Options::new(b"key".to_vec());
    let uncancellable = crate::TaskType {
        cancellable: false,
        ..Default::default()
    };
    options
        .task_types
        .insert("EXPORT_IMAGE".into(), uncancellable);
    let (engine, name, lease_id) = running_with(store.clone(), options).await;
    let (watcher, waiting) = watchers(&engine, &name, &lease_id);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let refused = engine.cancel(&name, "user:a").await;
    assert!(
        matches!(refused, Err(crate::Error::Unimplemented(_))),
        "{refused:?}"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!watcher.is_finished() && !waiting.is_finished());
    assert_eq!(engine.get(&name).await.unwrap().state, State::Running);
    watcher.abort();
    waiting.abort();
}

/// A worker told ahead of the commit may acknowledge before the cancel is written: the
/// operation ends CANCELLED with the cancel it acknowledged, who asked and when.
#[tokio::test]
async fn an_acknowledgement_ahead_of_the_commit_records_who_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let store = gated(&dir);
    let (engine, name, lease_id) = running(store.clone()).await;
    let watcher = watcher(&engine, &name, &lease_id);
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The cancel's write of CANCELLING is held at the gate.
    let cancel = tokio::spawn({
        let (engine, name) = (engine.clone(), name.clone());
        async move { engine.cancel(&name, "user:alice").await }
    });
    let heard = tokio::time::timeout(Duration::from_secs(5), watcher).await;
    assert!(heard.unwrap().unwrap());
    let acknowledged = engine
        .complete(
            &name,
            &lease_id,
            Err(Status::new(Code::Cancelled, "stopped on request")),
        )
        .await
        .unwrap();
    assert_eq!(acknowledged.state, State::Cancelled);
    store.gate.add_permits(100);
    let answered = cancel.await.unwrap().unwrap();
    assert_eq!(answered.state, State::Cancelled);
    let Some(Outcome::Error(status)) = engine.get(&name).await.unwrap().outcome else {
        panic!("an error outcome")
    };
    let canceller = status
        .details
        .iter()
        .find(|d| d["reason"] == "CANCELLED_BY_PRINCIPAL")
        .unwrap_or_else(|| panic!("who cancelled is lost: {status:?}"));
    assert_eq!(canceller["metadata"]["principal"], "user:alice");
}
