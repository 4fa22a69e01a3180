//! Engine rules on a real SQLite store with an injected clock.

use super::*;
use longrun_store::Operations;
use longrun_store_sqlite::SqliteStore;
use std::sync::atomic::{AtomicI64, Ordering};

pub(crate) struct ManualClock(pub(crate) AtomicI64);

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

pub(crate) struct Fixture {
    pub(crate) engine: Engine,
    pub(crate) store: Arc<SqliteStore>,
    pub(crate) clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

pub(crate) fn fixture(configure: impl FnOnce(&mut Options)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("db")).unwrap());
    let clock = Arc::new(ManualClock(AtomicI64::new(1_000_000)));
    let mut options = Options::new(b"key".to_vec());
    options.clock = clock.clone();
    configure(&mut options);
    Fixture {
        engine: Engine::new(store.clone(), options),
        store,
        clock,
        _dir: dir,
    }
}

pub(crate) fn project() -> Project {
    Project::parse("p").unwrap()
}

pub(crate) fn submission(id: &str) -> Submission {
    Submission {
        op_type: "EXPORT_IMAGE".into(),
        operation_id: Some(id.into()),
        ..Default::default()
    }
}

impl Fixture {
    pub(crate) async fn submit(&self, id: &str) -> Operation {
        self.engine
            .submit(&project(), submission(id))
            .await
            .unwrap()
    }

    /// Leases the operation (the only queued one of its type).
    pub(crate) async fn start(&self, op: Operation) -> Operation {
        let leased = self
            .engine
            .lease(LeaseRequest {
                worker: "w".into(),
                types: vec![op.op_type.clone()],
                max_operations: 1,
                wait: Duration::ZERO,
                lease_duration: Duration::from_secs(60),
                projects: None,
            })
            .await
            .unwrap();
        assert_eq!(leased.len(), 1);
        assert_eq!(leased[0].0.name, op.name);
        leased.into_iter().next().unwrap().0
    }
}

#[tokio::test]
async fn cancel_of_pending_ends_it_at_once_and_is_idempotent() {
    let f = fixture(|_| {});
    let op = f.submit("a").await;
    f.clock.0.fetch_add(5, Ordering::SeqCst);
    let cancelled = f.engine.cancel(&op.name, "user:alice").await.unwrap();
    assert_eq!(cancelled.state, State::Cancelled);
    assert_eq!(cancelled.error_code(), Some(1));
    assert_eq!(cancelled.end_time, Some(Timestamp(1_000_005)));
    assert_eq!(cancelled.cancel.as_ref().unwrap().principal, "user:alice");
    let again = f.engine.cancel(&op.name, "user:bob").await.unwrap();
    assert_eq!(again, cancelled, "a repeated cancel changes nothing");
    assert_eq!(f.engine.get(&op.name).await.unwrap(), cancelled);
}

#[tokio::test]
async fn cancel_of_running_asks_and_leaves_it_cancelling() {
    let f = fixture(|_| {});
    let op = f.start(f.submit("a").await).await;
    let cancelling = f.engine.cancel(&op.name, "").await.unwrap();
    assert_eq!(cancelling.state, State::Cancelling);
    assert!(!cancelling.done());
    assert!(cancelling.outcome.is_none() && cancelling.end_time.is_none());
    assert_eq!(f.engine.cancel(&op.name, "").await.unwrap(), cancelling);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cancels_write_once() {
    let f = fixture(|_| {});
    let op = f.submit("a").await;
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let engine = f.engine.clone();
        let name = op.name.clone();
        tasks.push(tokio::spawn(async move {
            engine.cancel(&name, "").await.unwrap()
        }));
    }
    for task in tasks {
        let op = task.await.unwrap();
        assert_eq!(op.state, State::Cancelled);
        assert_eq!(op.version, 2);
    }
}

#[tokio::test]
async fn wait_is_woken_by_the_change_and_honours_its_timeout() {
    let f = fixture(|_| {});
    let op = f.submit("a").await;
    let started = std::time::Instant::now();
    let waited = f
        .engine
        .wait(&op.name, Some(Duration::from_millis(50)))
        .await
        .unwrap();
    assert!(!waited.done());
    assert!(started.elapsed() >= Duration::from_millis(50));

    let engine = f.engine.clone();
    let name = op.name.clone();
    let waiter =
        tokio::spawn(async move { engine.wait(&name, Some(Duration::from_secs(30))).await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let started = std::time::Instant::now();
    f.engine.cancel(&op.name, "").await.unwrap();
    let woken = waiter.await.unwrap().unwrap();
    assert_eq!(woken.state, State::Cancelled);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "woken by the change, not the timeout"
    );
    // Done operations return at once.
    let started = std::time::Instant::now();
    f.engine.wait(&op.name, None).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn wait_is_capped_by_the_server_maximum() {
    let f = fixture(|o| o.max_wait = Duration::from_millis(30));
    let op = f.submit("a").await;
    let started = std::time::Instant::now();
    let waited = f
        .engine
        .wait(&op.name, Some(Duration::from_secs(3600)))
        .await
        .unwrap();
    assert!(!waited.done());
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn delete_refuses_unfinished_work() {
    let f = fixture(|_| {});
    let op = f.submit("a").await;
    assert!(matches!(
        f.engine.delete(&op.name).await,
        Err(Error::NotDone(_))
    ));
    f.engine.cancel(&op.name, "").await.unwrap();
    f.engine.delete(&op.name).await.unwrap();
    assert!(matches!(
        f.engine.get(&op.name).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        f.engine.delete(&op.name).await,
        Err(Error::NotFound(_))
    ));
}

/// Many operations past retention expire a few per write, with rests between, in every
/// write; a close (the server shutting down) stops the sweep between writes, and the next
/// sweep finishes.
#[tokio::test]
async fn expiry_goes_in_small_writes_and_stops_at_a_close() {
    let f = fixture(|o| o.retention = Duration::from_secs(10));
    for i in 0..(EXPIRE_BATCH * 4) {
        let op = f.submit(&format!("old{i}")).await;
        f.engine.cancel(&op.name, "").await.unwrap();
    }
    f.clock.0.fetch_add(10_001, Ordering::SeqCst);
    f.engine.close();
    assert_eq!(f.engine.expire().await.unwrap(), EXPIRE_BATCH);
    let left = f.engine.list(&project(), "", 0, "").await.unwrap();
    assert_eq!(left.operations.len(), 0, "past retention: hidden");
    // The next server's sweep.
    let again = Engine::new(f.store.clone(), {
        let mut o = Options::new(b"key".to_vec());
        o.clock = f.clock.clone();
        o.retention = Duration::from_secs(10);
        o
    });
    assert_eq!(again.expire().await.unwrap(), EXPIRE_BATCH * 3);
}

#[tokio::test]
async fn done_operations_expire_after_retention() {
    let f = fixture(|o| o.retention = Duration::from_secs(10));
    let old = f.submit("old").await;
    f.engine.cancel(&old.name, "").await.unwrap();
    let pending = f.submit("pending").await;
    f.clock.0.fetch_add(10_001, Ordering::SeqCst);
    assert!(matches!(
        f.engine.get(&old.name).await,
        Err(Error::NotFound(_))
    ));
    let page = f.engine.list(&project(), "", 0, "").await.unwrap();
    assert_eq!(page.operations.len(), 1);
    assert_eq!(f.engine.expire().await.unwrap(), 1);
    assert!(f.store.get(&old.name).await.unwrap().is_none());
    assert!(f.engine.get(&pending.name).await.is_ok());
}

#[tokio::test]
async fn submit_validates_and_deduplicates() {
    let f = fixture(|o| o.max_queued = 2);
    for priority in [-1, 10_000] {
        let s = Submission {
            priority: Some(priority),
            ..submission("x")
        };
        assert!(matches!(
            f.engine.submit(&project(), s).await,
            Err(Error::InvalidArgument { .. })
        ));
    }
    let empty_type = Submission {
        op_type: " ".into(),
        ..submission("x")
    };
    assert!(f.engine.submit(&project(), empty_type).await.is_err());
    let bad_id = Submission {
        operation_id: Some("a//b".into()),
        ..submission("x")
    };
    assert!(f.engine.submit(&project(), bad_id).await.is_err());

    let with_request = |id: &str| Submission {
        request_id: Some("req-1".into()),
        ..submission(id)
    };
    let first = f
        .engine
        .submit(&project(), with_request("a"))
        .await
        .unwrap();
    assert_eq!(first.priority, 100);
    assert_eq!(first.attempt, 1);
    let again = f
        .engine
        .submit(&project(), with_request("b"))
        .await
        .unwrap();
    assert_eq!(again, first);
    assert!(matches!(
        f.engine.submit(&project(), submission("a")).await,
        Err(Error::AlreadyExists(_))
    ));
    f.submit("c").await;
    assert!(matches!(
        f.engine.submit(&project(), submission("d")).await,
        Err(Error::QueueFull { limit: 2, .. })
    ));
    // A server-generated id when none is given.
    let generated = Submission {
        operation_id: None,
        ..submission("")
    };
    f.engine.cancel(&first.name, "").await.unwrap();
    let op = f.engine.submit(&project(), generated).await.unwrap();
    assert_eq!(op.name.id().len(), 24);
}

#[tokio::test]
async fn list_pages_with_bound_tokens() {
    let f = fixture(|_| {});
    for i in 0..5 {
        f.clock.0.fetch_add(1, Ordering::SeqCst);
        f.submit(&format!("op{i}")).await;
    }
    let first = f
        .engine
        .list(&project(), "done = false", 2, "")
        .await
        .unwrap();
    let ids: Vec<_> = first
        .operations
        .iter()
        .map(|o| o.name.id().to_string())
        .collect();
    assert_eq!(ids, ["op4", "op3"]);
    let token = first.next_page_token.unwrap();
    assert!(matches!(
        f.engine.list(&project(), "", 2, &token).await,
        Err(Error::InvalidArgument {
            reason: "INVALID_PAGE_TOKEN",
            ..
        })
    ));
    assert!(matches!(
        f.engine
            .list(&Project::parse("q").unwrap(), "done = false", 2, &token)
            .await,
        Err(Error::InvalidArgument { .. })
    ));
    let second = f
        .engine
        .list(&project(), "done = false", 2, &token)
        .await
        .unwrap();
    let third = f
        .engine
        .list(
            &project(),
            "done = false",
            2,
            &second.next_page_token.unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(third.operations.len(), 1);
    assert_eq!(third.next_page_token, None, "the last page has no token");
    assert!(matches!(
        f.engine.list(&project(), "", -1, "").await,
        Err(Error::InvalidArgument {
            reason: "INVALID_PAGE_SIZE",
            ..
        })
    ));
    assert!(matches!(
        f.engine.list(&project(), "done = maybe", 0, "").await,
        Err(Error::InvalidArgument {
            reason: "INVALID_FILTER",
            ..
        })
    ));
}

#[tokio::test]
async fn closing_ends_waits_at_once() {
    let f = fixture(|_| {});
    let op = f.submit("a").await;
    let engine = f.engine.clone();
    let name = op.name.clone();
    let waiter =
        tokio::spawn(async move { engine.wait(&name, Some(Duration::from_secs(30))).await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    f.engine.close();
    let op = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(op.state, State::Pending);
}
