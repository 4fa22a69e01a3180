//! The console: what people and operators watch beside the operations API
//! (docs/watch.md): the change feed and its server-sent event stream (`watch`), what feeds it
//! from the engine's announcements or a shared store's signals (`feed`), bulk cancel
//! (`batch`), metrics and readiness (`metrics`, `http`), the task manager page (`page`),
//! the header that says why work waits (`demand`).

pub(crate) mod batch;
pub(crate) mod demand;
pub(crate) mod feed;
pub(crate) mod http;
pub(crate) mod metrics;
pub(crate) mod page;
pub(crate) mod watch;

use std::sync::Arc;
use std::time::Duration;

/// What the console's routes share; cheap to clone.
#[derive(Clone)]
pub struct Console {
    /// Every change this server learns of, in order, for the watch stream.
    pub hub: Arc<watch::Hub>,
    /// Every metric series.
    pub metrics: Arc<metrics::Metrics>,
    /// `[metrics] public`: `/metrics` needs no token even with auth on.
    pub metrics_public: bool,
    /// How long done operations are kept (the operations gauge leaves out older ones).
    pub retention: Duration,
}

impl Console {
    pub fn new(metrics_public: bool, retention: Duration) -> Console {
        Console {
            hub: Arc::new(watch::Hub::new()),
            metrics: Arc::new(metrics::Metrics::new()),
            metrics_public,
            retention,
        }
    }
}
