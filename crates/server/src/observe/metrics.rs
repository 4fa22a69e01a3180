//! Metrics (docs/watch.md#metrics): the one place that registers every series, the handle
//! subsystems record through (the engine's [`Observer`], store write times included, and
//! the HTTP layer), `GET /metrics` in the Prometheus text format (encoded by
//! `prometheus-client`), and `GET /readyz`.
//!
//! `longrun_operations{project,type,state}` is read from the counts the store keeps as
//! operations change (at most every [`GAUGE_TTL`], scanning no operations), so it holds for
//! every server sharing a store; done operations count until retention removes them.
//! The queue gauges (`longrun_queue_pending`, `longrun_queue_running`,
//! `longrun_queue_oldest_pending_seconds`, `longrun_queue_paused`, by project and type;
//! docs/queues.md) are read from the store's queue counts at each scrape, scanning no
//! operations: what an autoscaler scales workers on.
//! The counters and histograms are this server's own. Every label value comes from a
//! closed set: `longrun_http_requests_total`'s `method` is a discovery method id, a fixed
//! route's name or `unknown`, `longrun_grpc_requests_total`'s a served `service/Method` or
//! `unknown`; its `code` is the status the caller got (`0` to `16`), counted when the call
//! ends (for a stream, when it closes).

use longrun_engine::Observer;
use longrun_store::Queue;
use longrun_types::{State, Timestamp};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Label pairs of a series.
pub type Labels = Vec<(&'static str, String)>;

/// How long a count of operations by project, type and state is reused.
pub const GAUGE_TTL: Duration = Duration::from_secs(5);

/// Every series, and the registry that encodes them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    operations: Family<Labels, Gauge>,
    transitions: Family<Labels, Counter>,
    cancel_delivery: Histogram,
    http_requests: Family<Labels, Counter>,
    http_duration: Histogram,
    grpc_requests: Family<Labels, Counter>,
    leases_granted: Counter,
    leases_expired: Counter,
    operations_expired: Counter,
    store_commit: Histogram,
    counted: tokio::sync::Mutex<Option<Instant>>,
    queue_pending: Family<Labels, Gauge>,
    queue_running: Family<Labels, Gauge>,
    queue_oldest: Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    queue_paused: Family<Labels, Gauge>,
}

/// Seconds buckets from 1 ms to about 33 s.
fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let operations = Family::<Labels, Gauge>::default();
        registry.register(
            "longrun_operations",
            "Operations by project, type and state (done ones until removed at retention)",
            operations.clone(),
        );
        let transitions = Family::<Labels, Counter>::default();
        registry.register(
            "longrun_operation_transitions",
            "State changes of operations, by type, from and to",
            transitions.clone(),
        );
        let cancel_delivery = seconds();
        registry.register(
            "longrun_cancel_delivery_seconds",
            "From a cancel accepted to the worker told of it",
            cancel_delivery.clone(),
        );
        let http_requests = Family::<Labels, Counter>::default();
        registry.register(
            "longrun_http_requests",
            "HTTP requests by method id (discovery's, e.g. operations.get) and status code",
            http_requests.clone(),
        );
        let http_duration = seconds();
        registry.register(
            "longrun_http_request_duration_seconds",
            "Time to answer an HTTP request (to the response headers)",
            http_duration.clone(),
        );
        let grpc_requests = Family::<Labels, Counter>::default();
        registry.register(
            "longrun_grpc_requests",
            "gRPC calls by method and status code",
            grpc_requests.clone(),
        );
        let leases_granted = Counter::default();
        registry.register(
            "longrun_leases_granted",
            "Operations leased to workers",
            leases_granted.clone(),
        );
        let leases_expired = Counter::default();
        registry.register(
            "longrun_leases_expired",
            "Leases that lapsed",
            leases_expired.clone(),
        );
        let operations_expired = Counter::default();
        registry.register(
            "longrun_operations_expired",
            "Done operations removed at retention by this server",
            operations_expired.clone(),
        );
        let queue_pending = Family::<Labels, Gauge>::default();
        registry.register(
            "longrun_queue_pending",
            "PENDING operations of each queue (project and type), scheduled ones included",
            queue_pending.clone(),
        );
        let queue_running = Family::<Labels, Gauge>::default();
        registry.register(
            "longrun_queue_running",
            "RUNNING and CANCELLING operations of each queue (project and type)",
            queue_running.clone(),
        );
        let queue_oldest = Family::<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "longrun_queue_oldest_pending_seconds",
            "How long the longest-waiting leasable PENDING operation of each queue has waited",
            queue_oldest.clone(),
        );
        let queue_paused = Family::<Labels, Gauge>::default();
        registry.register(
            "longrun_queue_paused",
            "1 for each paused queue (type `-`: every type of the project)",
            queue_paused.clone(),
        );
        let store_commit = seconds();
        registry.register(
            "longrun_store_commit_seconds",
            "Time for the store to acknowledge a write (durable)",
            store_commit.clone(),
        );
        Metrics {
            registry,
            operations,
            transitions,
            cancel_delivery,
            http_requests,
            http_duration,
            grpc_requests,
            leases_granted,
            leases_expired,
            operations_expired,
            store_commit,
            queue_pending,
            queue_running,
            queue_oldest,
            queue_paused,
            counted: tokio::sync::Mutex::new(None),
        }
    }

    /// Records an HTTP request: `method` is the discovery method id (or the fixed route).
    pub fn http_request(&self, method: &str, code: u16, elapsed: Duration) {
        self.http_requests
            .get_or_create(&vec![
                ("method", method.to_string()),
                ("code", code.to_string()),
            ])
            .inc();
        self.http_duration.observe(elapsed.as_secs_f64());
    }

    /// Records a gRPC call: `method` is a served `service/Method` or `unknown`, `code` the
    /// google.rpc code the caller got, `0` to `16`.
    pub fn grpc_request(&self, method: &str, code: &str) {
        self.grpc_requests
            .get_or_create(&vec![
                ("method", method.to_string()),
                ("code", code.to_string()),
            ])
            .inc();
    }

    /// Records how long the store took to acknowledge a write.
    pub fn store_commit(&self, elapsed: Duration) {
        self.store_commit.observe(elapsed.as_secs_f64());
    }

    /// Sets `longrun_operations` from the store's kept counts, unless set within
    /// [`GAUGE_TTL`].
    async fn count(&self, store: &dyn Queue) -> longrun_store::Result<()> {
        let mut counted = self.counted.lock().await;
        if counted.is_some_and(|at| at.elapsed() < GAUGE_TTL) {
            return Ok(());
        }
        let counts = store.state_counts().await?;
        self.operations.clear();
        for count in counts {
            self.operations
                .get_or_create(&vec![
                    ("project", count.project),
                    ("type", count.op_type),
                    ("state", count.state.as_str().to_string()),
                ])
                .set(count.count as i64);
        }
        *counted = Some(Instant::now());
        Ok(())
    }

    /// Sets the queue gauges from the store's queue counts and pauses.
    async fn count_queues(&self, store: &dyn Queue) -> longrun_store::Result<()> {
        let now = Timestamp::now();
        let queues = store.queues(None, now).await?;
        let paused = store.paused_queues(None).await?;
        let labels = |project: &str, op_type: &str| -> Labels {
            vec![
                ("project", project.to_string()),
                ("type", op_type.to_string()),
            ]
        };
        for family in [&self.queue_pending, &self.queue_running, &self.queue_paused] {
            family.clear();
        }
        self.queue_oldest.clear();
        for q in &queues {
            let labels = labels(&q.project, &q.op_type);
            self.queue_pending
                .get_or_create(&labels)
                .set(q.counts.pending as i64);
            self.queue_running
                .get_or_create(&labels)
                .set(q.counts.running as i64);
            let waited = q
                .counts
                .oldest_pending
                .map_or(0, |t| (now.millis() - t.millis()).max(0));
            self.queue_oldest
                .get_or_create(&labels)
                .set(waited as f64 / 1000.0);
            let whole = paused
                .iter()
                .any(|(p, t)| p == &q.project && t == longrun_store::EVERY_TYPE);
            self.queue_paused
                .get_or_create(&labels)
                .set(i64::from(whole));
        }
        for (project, op_type) in &paused {
            self.queue_paused
                .get_or_create(&labels(project, op_type))
                .set(1);
        }
        Ok(())
    }

    /// The exposition: every series in the Prometheus text format.
    pub async fn render(&self, store: &dyn Queue) -> longrun_store::Result<String> {
        self.count(store).await?;
        self.count_queues(store).await?;
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        Ok(text)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// The engine records through this.
pub struct EngineMetrics(pub Arc<Metrics>);

impl Observer for EngineMetrics {
    fn transition(&self, op_type: &str, from: State, to: State) {
        self.0
            .transitions
            .get_or_create(&vec![
                ("type", op_type.to_string()),
                ("from", from.as_str().to_string()),
                ("to", to.as_str().to_string()),
            ])
            .inc();
    }
    fn cancel_delivered(&self, delay: Duration) {
        self.0.cancel_delivery.observe(delay.as_secs_f64());
    }
    fn leases_granted(&self, count: usize) {
        self.0.leases_granted.inc_by(count as u64);
    }
    fn lease_expired(&self) {
        self.0.leases_expired.inc();
    }
    fn committed(&self, change: &longrun_engine::Change) {
        if let longrun_engine::Change::Expired(_) = change {
            self.0.operations_expired.inc();
        }
    }
    fn store_write(&self, _write: longrun_engine::Write, elapsed: Duration) {
        self.0.store_commit(elapsed);
    }
}
