//! The engine: every rule of the operations API that is not about encoding. It owns the
//! state machine's application (read, transition, compare-and-set, retry), waits, page
//! tokens, the queue limit and retention. The server's REST (and later gRPC) adapters call
//! it; only the engine changes an operation's state.

mod demand;
mod error;
mod list;
mod observer;
mod page_token;
pub mod queues;
mod retry;
pub mod schedules;
mod submit;
mod trees;
mod waiters;
mod work;

pub use error::Error;
pub use observer::{Change, Observer, Unobserved, Write};
pub use page_token::PageTokens;
pub use retry::{Retry, retry_request_id};
pub use submit::{MAX_BATCH_SUBMIT, Submission};
pub use trees::{CANCELLED_BY_PARENT, CHILDREN_CANCELLED};
pub use work::{Beat, LeaseRequest, Report};

use longrun_store::{Cursor, Inserted, ListQuery, NewOperation, Queue};
use longrun_types::filter::{self, Field};
use longrun_types::limits;
use longrun_types::operation::{
    CancelRequest, MAX_DEPTH, MAX_PRIORITY, MIN_PRIORITY, Outcome, Status,
};
use longrun_types::{
    Code, Event, Name, NameError, Operation, Project, State, Timestamp, Transition,
};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tracing::Instrument;
use waiters::Waiters;

pub type Result<T> = std::result::Result<T, Error>;

/// Where the engine reads the time; tests inject their own.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// The clock of a store that several servers share (`Leasing::clock`): this process's clock
/// corrected by its offset from the store's, measured by [`StoreClock::sync`], so that every
/// server judges leases, cancel graces and timeouts on one clock however far apart their own
/// clocks are. The offset's error is half the round trip of the measurement.
#[derive(Debug, Default)]
pub struct StoreClock {
    offset_ms: std::sync::atomic::AtomicI64,
}

impl StoreClock {
    /// Measures the offset once: `Ok(false)` when the store has no clock of its own.
    /// Errors: the store's.
    pub async fn sync(&self, store: &dyn longrun_store::Leasing) -> Result<bool> {
        let before = Timestamp::now().millis();
        let Some(theirs) = store.clock().await? else {
            return Ok(false);
        };
        let after = Timestamp::now().millis();
        let offset = theirs.millis() - (before + after) / 2;
        self.offset_ms
            .store(offset, std::sync::atomic::Ordering::Relaxed);
        Ok(true)
    }

    /// The offset in use, in milliseconds (the store's clock minus this process's).
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Clock for StoreClock {
    fn now(&self) -> Timestamp {
        Timestamp::now().plus_millis(self.offset_ms())
    }
}

/// The span a store write runs in.
fn write_span(write: Write) -> tracing::Span {
    match write {
        Write::Insert => tracing::info_span!("store.insert"),
        Write::Update => tracing::info_span!("store.update"),
        Write::Delete => tracing::info_span!("store.delete"),
        Write::Lease => tracing::info_span!("store.lease"),
    }
}

/// List page sizes (docs/operations.md#list).
pub const DEFAULT_PAGE_SIZE: usize = 100;
pub const MAX_PAGE_SIZE: usize = 1000;

pub struct Options {
    /// Most PENDING operations per project.
    pub max_queued: u64,
    /// How long done operations are kept.
    pub retention: Duration,
    /// `wait` without a timeout waits this long.
    pub default_wait: Duration,
    /// No `wait` lasts longer than this.
    pub max_wait: Duration,
    /// Signs page tokens.
    pub secret: Vec<u8>,
    pub clock: Arc<dyn Clock>,
    /// Per-type settings; types without an entry get `TaskType::default()`.
    pub task_types: HashMap<String, TaskType>,
    /// Most RUNNING or CANCELLING operations per project; 0 = unlimited.
    pub max_running: u64,
    /// Told of what the engine does, for metrics; does nothing by default.
    pub observer: Arc<dyn Observer>,
    /// The plan maximum of concurrent exports per project (`[projects]
    /// plan_max_concurrent_exports`, docs/projects.md); 0 = exports are not capped.
    pub max_exports: u64,
    /// Most rows one list page examines, at least 1 (`[list] scan_budget`,
    /// docs/operations.md#what-a-page-costs).
    pub scan_budget: usize,
}

/// The default of [`Options::scan_budget`].
pub const SCAN_BUDGET: usize = 100_000;

/// How operations of one type are run.
#[derive(Debug, Clone)]
pub struct TaskType {
    /// False: cancel answers UNIMPLEMENTED and leaves the operation alone.
    pub cancellable: bool,
    /// How long a worker has to stop after a cancel before its lease is revoked.
    pub cancel_grace: Duration,
    /// Starts allowed when a submit names none.
    pub max_attempts: i32,
    /// Longest life from creation; a submit's own timeout can only shorten it.
    pub timeout: Option<Duration>,
    /// Keys a submit payload must have (a command's placeholders).
    pub required_payload_keys: Vec<String>,
    /// Most RUNNING + CANCELLING operations per (project, this type, `concurrencyKey`)
    /// (docs/projects.md#concurrency-keys); 0 = unlimited. Operations without a key are not limited.
    pub key_concurrency: u64,
}

impl Default for TaskType {
    fn default() -> TaskType {
        TaskType {
            cancellable: true,
            cancel_grace: Duration::from_secs(30),
            max_attempts: longrun_types::operation::DEFAULT_MAX_ATTEMPTS,
            timeout: None,
            required_payload_keys: Vec::new(),
            key_concurrency: 0,
        }
    }
}

/// Longest `concurrencyKey` of a submit, in bytes (like `requestId`).
pub const MAX_CONCURRENCY_KEY: usize = limits::CONCURRENCY_KEY;

/// The message of an operation cancelled at a user's request.
pub const CANCELLED_BY_USER: &str = "Operation cancelled by user.";

/// An operation that ends CANCELLED after a cancel request names who asked, and when, in an
/// ErrorInfo of its error (the audit trail kept with the operation).
fn record_canceller(op: &mut Operation) {
    let (Some(cancel), Some(longrun_types::operation::Outcome::Error(status))) =
        (&op.cancel, &mut op.outcome)
    else {
        return;
    };
    if op.state != State::Cancelled
        || cancel.principal.is_empty()
        || status
            .details
            .iter()
            .any(|d| d["reason"] == "CANCELLED_BY_PRINCIPAL")
    {
        return;
    }
    status.details.push(serde_json::json!({
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "CANCELLED_BY_PRINCIPAL",
        "domain": "longrun",
        "metadata": {"principal": cancel.principal, "cancelTime": cancel.time.to_string()},
    }));
}

impl Options {
    pub fn new(secret: Vec<u8>) -> Options {
        Options {
            max_queued: 3000,
            retention: Duration::from_secs(30 * 24 * 3600),
            default_wait: Duration::from_secs(60),
            max_wait: Duration::from_secs(600),
            secret,
            clock: Arc::new(SystemClock),
            task_types: HashMap::new(),
            max_running: 0,
            observer: Arc::new(Unobserved),
            max_exports: 100,
            scan_budget: SCAN_BUDGET,
        }
    }
}

/// One page of a list.
#[derive(Debug)]
pub struct Page {
    pub operations: Vec<Operation>,
    pub next_page_token: Option<String>,
}

/// A cheap, cloneable handle on the engine.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    /// The only handle that changes operations.
    store: Arc<dyn Queue>,
    options: Options,
    tokens: PageTokens,
    waiters: Waiters,
    /// Woken when operations enter the queue, for lease requests that wait for work.
    work: tokio::sync::Notify,
    /// Set when the server shuts down: waits return at once.
    closing: tokio::sync::watch::Sender<bool>,
    /// Changes made by other servers sharing the store, until `run_background` takes them.
    signals: std::sync::Mutex<Option<tokio::sync::broadcast::Receiver<longrun_store::Signal>>>,
    /// The store is shared with other servers: waiters also re-read now and then, in case a
    /// signal was lost.
    shared: bool,
    /// The cancels whose delivery has been observed, so that each is observed once.
    delivered: std::sync::Mutex<Delivered>,
    /// The types lease requests ask for (why work waits).
    demand: Arc<demand::Demand>,
    /// The earliest `scheduleTime` still to come that the engine knows of: waiting leases
    /// are woken then (`run_background`).
    next_due: tokio::sync::watch::Sender<Option<Timestamp>>,
    /// Each project's paused queues as last read, for why work waits (see `queues`).
    pauses: queues::Pauses,
    /// The cascades of ended or cancelled parents (see `trees`).
    cascades: trees::Cascades,
}

/// The last [`DELIVERED_KEPT`] cancels told to their workers, by operation and cancel time.
#[derive(Default)]
struct Delivered {
    seen: std::collections::HashSet<(String, i64)>,
    order: std::collections::VecDeque<(String, i64)>,
}

/// How many delivered cancels are remembered (far more than run at once).
const DELIVERED_KEPT: usize = 16_384;

impl Delivered {
    /// True the first time this cancel of this operation is seen.
    fn first(&mut self, name: &str, cancel_time: Timestamp) -> bool {
        let key = (name.to_string(), cancel_time.millis());
        if !self.seen.insert(key.clone()) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > DELIVERED_KEPT
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        true
    }
}

/// How often waiters on a shared store re-read, which bounds the delay of a lost signal.
const SHARED_RECHECK: Duration = Duration::from_secs(1);

/// How often lapsed leases, cancel graces and timeouts are looked for.
const SWEEP_INTERVAL: Duration = Duration::from_millis(200);

/// How many operations a list page whose filter compares `metadata.waitingReason` examines
/// at most (docs/operations.md#filter).
pub const WAITING_SCAN: usize = 10_000;

/// How many operations such a page reads from storage at a time.
const WAITING_BATCH: usize = 500;

/// Operations one retention write deletes: each removes its rows from every index, so a
/// small batch keeps a submit queued behind it waiting about a millisecond however large
/// the store (a million expire in 40,000 writes).
const EXPIRE_BATCH: usize = 25;

/// How many times a read-transition-write is retried when another writer wins the race.
const MAX_RACE_RETRIES: usize = 100;

impl Engine {
    /// An engine on `store`: a whole store (`Arc<dyn Store>`) upcasts to the part it takes.
    pub fn new(store: Arc<dyn Queue>, options: Options) -> Engine {
        let signals = store.subscribe();
        Engine {
            inner: Arc::new(Inner {
                shared: signals.is_some(),
                signals: std::sync::Mutex::new(signals),
                tokens: PageTokens::new(&options.secret),
                store,
                options,
                waiters: Waiters::default(),
                work: tokio::sync::Notify::new(),
                closing: tokio::sync::watch::Sender::new(false),
                delivered: std::sync::Mutex::default(),
                demand: Arc::new(demand::Demand::new()),
                next_due: tokio::sync::watch::Sender::new(None),
                pauses: queues::Pauses::default(),
                cascades: trees::Cascades::default(),
            }),
        }
    }

    fn task_type(&self, op_type: &str) -> &TaskType {
        static DEFAULT: LazyLock<TaskType> = LazyLock::new(TaskType::default);
        self.inner
            .options
            .task_types
            .get(op_type)
            .unwrap_or(&DEFAULT)
    }

    /// The `key_concurrency` of `op_type` (0: its keys are not limited).
    pub fn key_concurrency(&self, op_type: &str) -> u64 {
        self.task_type(op_type).key_concurrency
    }

    /// Whether `op` (which just stopped running) held a place under a limit that leases
    /// may be waiting on: its project's running limit, the export cap, or its key's
    /// `key_concurrency` (docs/projects.md#concurrency-keys). Waiting leases are then woken to take the
    /// work the place lets go.
    fn frees_limited_place(&self, op: &Operation) -> bool {
        let options = &self.inner.options;
        options.max_running > 0
            || (options.max_exports > 0 && op.op_type.starts_with(longrun_store::EXPORT_PREFIX))
            || (op.concurrency_key.is_some() && self.task_type(&op.op_type).key_concurrency > 0)
    }

    /// Resolves when a waiter on a shared store should re-read in case a signal was lost;
    /// never for a store only this server uses.
    async fn recheck(&self) {
        if self.inner.shared {
            tokio::time::sleep(SHARED_RECHECK).await;
        } else {
            std::future::pending::<()>().await;
        }
    }

    fn now(&self) -> Timestamp {
        self.inner.options.clock.now()
    }

    /// Runs a store write in its span (`store.insert`, `store.update`, `store.delete`) and
    /// reports how long the store took to acknowledge it.
    async fn write<T>(
        &self,
        write: Write,
        future: impl std::future::Future<Output = longrun_store::Result<T>>,
    ) -> longrun_store::Result<T> {
        let started = std::time::Instant::now();
        let result = future.instrument(write_span(write)).await;
        if result.is_ok() {
            self.inner
                .options
                .observer
                .store_write(write, started.elapsed());
        }
        result
    }

    /// Tells the observer of a change the store acknowledged.
    fn committed(&self, change: Change) {
        self.inner.options.observer.committed(&change);
    }

    fn expired(&self, op: &Operation) -> bool {
        let retention = self.inner.options.retention.as_millis() as i64;
        op.end_time
            .is_some_and(|end| end.plus_millis(retention) < self.now())
    }

    /// The stored operation, unless it is missing or past retention.
    async fn load(&self, name: &Name) -> Result<Operation> {
        match self.inner.store.get(name).await? {
            Some(op) if !self.expired(&op) => Ok(op),
            _ => Err(Error::NotFound(name.clone())),
        }
    }

    /// The operation, with why it waits when PENDING (`waiting_reason`).
    pub async fn get(&self, name: &Name) -> Result<Operation> {
        let mut op = self.load(name).await?;
        self.explain(std::slice::from_mut(&mut op)).await;
        Ok(op)
    }

    /// What the operation was submitted with: its payload (JSON `null` when it had none).
    /// Errors: `NotFound`.
    pub async fn payload(&self, name: &Name) -> Result<serde_json::Value> {
        self.inner
            .store
            .payload(name)
            .await?
            .ok_or_else(|| Error::NotFound(name.clone()))
    }

    /// Reads the operation, lets `decide` change it (through `Operation::apply`) and writes
    /// it back with a compare-and-set, retrying from a fresh read when another writer won.
    /// `decide` returns whether to write. Returns the operation as it stands afterwards.
    async fn change(
        &self,
        name: &Name,
        decide: impl Fn(&mut Operation, Timestamp) -> Result<bool>,
    ) -> Result<Operation> {
        for _ in 0..MAX_RACE_RETRIES {
            let mut op = self.load(name).await?;
            let before = op.state;
            if !decide(&mut op, self.now())? {
                return Ok(op);
            }
            record_canceller(&mut op);
            match self.write(Write::Update, self.inner.store.update(op)).await {
                Ok(stored) => {
                    self.updated(before, &stored);
                    return Ok(stored);
                }
                Err(longrun_store::Error::Conflict) => continue,
                Err(longrun_store::Error::NotFound) => return Err(Error::NotFound(name.clone())),
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Internal(format!(
            "{name} kept changing; gave up after {MAX_RACE_RETRIES} tries"
        )))
    }

    /// Tells of an update the store acknowledged (`stored`, which was in `before`): the
    /// observer, the operation's waiters, the cascades, and the waiting leases when it
    /// makes work leasable or frees a limited place.
    fn updated(&self, before: State, stored: &Operation) {
        self.committed(Change::Updated(stored.clone()));
        self.tree_changed(before, stored);
        if stored.state != before {
            self.inner
                .options
                .observer
                .transition(&stored.op_type, before, stored.state);
            self.inner.waiters.wake(stored.name.as_str());
            if stored.state == State::Pending
                || (before.is_leased()
                    && !stored.state.is_leased()
                    && self.frees_limited_place(stored))
            {
                self.inner.work.notify_waiters();
            }
        }
    }

    /// Applies a cancel to `op` as of `cancel.time`: PENDING ends CANCELLED (or is held
    /// CANCELLING when it has had children), RUNNING becomes CANCELLING with its lease
    /// capped at the end of its type's cancel grace, and `cancel` is recorded. False when
    /// the cancel changes nothing (CANCELLING or done already).
    fn apply_cancel(&self, op: &mut Operation, cancel: CancelRequest, message: &str) -> bool {
        let now = cancel.time;
        let cancelled = Outcome::Error(Status::new(Code::Cancelled, message));
        if !matches!(
            op.apply(Event::Cancel, Some(cancelled), now),
            Transition::Move(_)
        ) {
            return false;
        }
        op.cancel = Some(cancel);
        // A worker has the cancel grace to stop: its lease cannot outlive it.
        let grace = self.task_type(&op.op_type).cancel_grace;
        let grace_end = now.plus_millis(grace.as_millis() as i64);
        if let Some(lease) = &mut op.lease {
            lease.expire_time = lease.expire_time.min(grace_end);
        }
        true
    }

    /// Cancels: PENDING ends CANCELLED at once, RUNNING becomes CANCELLING; CANCELLING and
    /// done operations are left as they are. Returns once the change is durable.
    ///
    /// A RUNNING operation's lease watchers hear of the cancel as the call starts, before
    /// the read and the commit (`Waiters::announce_cancel`); the call returns after the
    /// commit.
    #[tracing::instrument(
        name = "engine.cancel",
        skip_all,
        fields(longrun.operation.name = name.as_str())
    )]
    pub async fn cancel(&self, name: &Name, principal: &str) -> Result<Operation> {
        let request = CancelRequest {
            time: self.now(),
            principal: principal.to_string(),
            cascade: false,
        };
        let announced = self.inner.waiters.announce_cancel(name.as_str(), request);
        let op = self
            .change(name, |op, now| {
                let task_type = self.task_type(&op.op_type);
                if !task_type.cancellable {
                    return Err(Error::Unimplemented(format!(
                        "operations of type {} cannot be cancelled",
                        op.op_type
                    )));
                }
                let cancel = CancelRequest {
                    time: now,
                    principal: principal.to_string(),
                    cascade: false,
                };
                Ok(self.apply_cancel(op, cancel, CANCELLED_BY_USER))
            })
            .await?;
        // Workers told ahead of the commit were told as the cancel was accepted.
        if op.state == State::Cancelling && announced.told() > 0 {
            self.cancel_told(&op, Duration::ZERO);
        }
        Ok(op)
    }

    /// Deletes a done operation. Operations still queued or running are refused, and so is
    /// a parent with children that are not done (whose cascade is still under way): delete
    /// never cancels and never loses track of work. A done operation gains no children, so
    /// the count read here holds.
    pub async fn delete(&self, name: &Name) -> Result<()> {
        for _ in 0..MAX_RACE_RETRIES {
            let op = self.load(name).await?;
            if !op.done() {
                return Err(Error::NotDone(name.clone()));
            }
            if op.has_children {
                let open = self.inner.store.open_children(name).await?;
                if open > 0 {
                    return Err(Error::ChildrenNotDone {
                        name: name.clone(),
                        open,
                    });
                }
            }
            match self
                .write(Write::Delete, self.inner.store.delete(&op))
                .await
            {
                Ok(()) => {
                    self.committed(Change::Deleted(op));
                    return Ok(());
                }
                Err(longrun_store::Error::Conflict) => continue,
                Err(longrun_store::Error::NotFound) => return Err(Error::NotFound(name.clone())),
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Internal(format!(
            "{name} kept changing; gave up deleting it"
        )))
    }

    /// Returns when the operation is done or `timeout` (default and cap from the options)
    /// has passed, whichever is first. Woken by the change itself.
    pub async fn wait(&self, name: &Name, timeout: Option<Duration>) -> Result<Operation> {
        self.wait_within(name, timeout, None).await
    }

    /// `wait`, also capped at `budget`: what is left of the caller's own deadline, so the
    /// answer arrives before the caller gives up.
    pub async fn wait_within(
        &self,
        name: &Name,
        timeout: Option<Duration>,
        budget: Option<Duration>,
    ) -> Result<Operation> {
        let options = &self.inner.options;
        let timeout = timeout
            .unwrap_or(options.default_wait)
            .min(options.max_wait)
            .min(budget.unwrap_or(Duration::MAX));
        let deadline = tokio::time::Instant::now() + timeout;
        let interest = self.inner.waiters.register(name.as_str());
        let mut closing = self.inner.closing.subscribe();
        loop {
            // Created before the read, so a change between the read and the await still wakes.
            let woken = interest.notify().notified();
            let mut op = self.load(name).await?;
            if op.done() || *closing.borrow_and_update() {
                self.explain(std::slice::from_mut(&mut op)).await;
                return Ok(op);
            }
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep_until(deadline) => return self.get(name).await,
                _ = closing.changed() => {}
                _ = self.recheck() => {}
            }
        }
    }

    /// Ends every wait in progress (each returns the operation as it stands) and makes new
    /// ones return at once. Called when the server shuts down.
    pub fn close(&self) {
        self.inner.closing.send_replace(true);
    }

    /// Resolves once `close` has been called.
    pub async fn closed(&self) {
        let mut closing = self.inner.closing.subscribe();
        let _ = closing.wait_for(|closed| *closed).await;
    }

    /// Deletes done operations past retention, [`EXPIRE_BATCH`] per store write, resting
    /// after each write as long as it took: the writes queued meanwhile go between them and
    /// the sweep holds the writer at most half the time. Stops between writes once the
    /// engine is closed. Returns how many went.
    pub async fn expire(&self) -> Result<usize> {
        let retention = self.inner.options.retention.as_millis() as i64;
        let cutoff = self.now().plus_millis(-retention);
        let mut total = 0;
        loop {
            let started = std::time::Instant::now();
            let expired = self.inner.store.expire(cutoff, EXPIRE_BATCH).await?;
            let n = expired.len();
            for op in expired {
                self.committed(Change::Expired(op));
            }
            total += n;
            if n < EXPIRE_BATCH {
                return Ok(total);
            }
            // A server shutting down stops here; the next sweep goes on.
            let mut closing = self.inner.closing.subscribe();
            tokio::select! {
                _ = tokio::time::sleep(started.elapsed()) => {}
                _ = closing.wait_for(|closed| *closed) => return Ok(total),
            }
        }
    }

    /// Reads from the store when the next scheduled operation comes due and keeps it as the
    /// time to wake waiting leases, unless a submit made since knows of a sooner one. `fired`:
    /// the time that just came (replaced whatever happens).
    async fn refresh_next_due(&self, fired: Option<Timestamp>) {
        let now = self.now();
        let found = match self.inner.store.next_scheduled(now).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the next scheduled operation");
                // Tried again on the next sweep.
                Some(now.plus_millis(SWEEP_INTERVAL.as_millis() as i64))
            }
        };
        self.inner.next_due.send_if_modified(|next| {
            let keep = next.filter(|n| *n > now && Some(*n) != fired);
            let new = match (keep, found) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let changed = new != *next;
            *next = new;
            changed
        });
    }

    /// Runs the background duties (retention) until `shutdown` resolves.
    pub async fn run_background(&self, shutdown: impl std::future::Future<Output = ()>) {
        let mut retention = tokio::time::interval(Duration::from_secs(60));
        let mut timers = tokio::time::interval(SWEEP_INTERVAL);
        timers.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut signals = self.inner.signals.lock().expect("signals lock").take();
        let mut next_due = self.inner.next_due.subscribe();
        self.refresh_next_due(None).await;
        tokio::pin!(shutdown);
        loop {
            let due = *next_due.borrow_and_update();
            // Woken a millisecond after the time, so that the lease it wakes finds it due.
            let until_due = due.map(|at| {
                let ms = (at.millis() - self.now().millis() + 1).max(0) as u64;
                tokio::time::Instant::now() + Duration::from_millis(ms)
            });
            tokio::select! {
                _ = &mut shutdown => return,
                _ = next_due.changed() => {}
                _ = async { tokio::time::sleep_until(until_due.expect("guarded by the branch condition")).await }, if until_due.is_some() => {
                    self.inner.work.notify_waiters();
                    self.refresh_next_due(due).await;
                }
                signal = async { signals.as_mut().expect("guarded by the branch condition").recv().await }, if signals.is_some() => {
                    use longrun_store::Signal;
                    use tokio::sync::broadcast::error::RecvError;
                    match signal {
                        Ok(Signal::Changed(name)) => self.inner.waiters.wake(&name),
                        Ok(Signal::Queued) => self.inner.work.notify_waiters(),
                        Ok(Signal::Resync) | Err(RecvError::Lagged(_)) => {
                            self.inner.waiters.wake_all();
                            self.inner.work.notify_waiters();
                        }
                        Err(RecvError::Closed) => signals = None,
                    }
                }
                _ = timers.tick() => {
                    if let Err(e) = self.sweep().await {
                        tracing::warn!(error = %e, "timer sweep failed");
                    }
                    // Other servers' scheduled submits are learnt from the store.
                    if self.inner.shared {
                        self.refresh_next_due(None).await;
                    }
                },
                _ = retention.tick() => match self.expire().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(expired = n, "removed operations past retention"),
                    Err(e) => tracing::warn!(error = %e, "retention sweep failed"),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests;
