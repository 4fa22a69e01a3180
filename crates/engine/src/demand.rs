//! Why a PENDING operation waits (`Engine::why_waiting`): the rules a lease applies, told
//! in words. Nobody asked for its type: the engine learns which types workers and
//! built-in executors ask for from the lease requests it serves (what it knows is its own
//! lease requests: with several servers on one store, a worker that asks another server is
//! not seen here), and logs the first submit of a type nobody asked for. Or a limit holds
//! it back: its project's running limit (`Options::max_running`), the export cap (the
//! project's `maxConcurrentExports` within `Options::max_exports`, docs/projects.md), or
//! its type's `key_concurrency` for its `concurrencyKey`, counted from the store in one
//! read (`Leasing::running`).

use crate::Engine;
use longrun_types::{Operation, State, Timestamp};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// The operation types lease requests named, and when.
#[derive(Debug)]
pub(crate) struct Demand {
    /// When this engine started serving lease requests.
    since: Timestamp,
    /// Type → the last time a lease request named it.
    asked: Mutex<HashMap<String, Timestamp>>,
    /// Types already logged as queued with nobody asking.
    warned: Mutex<HashSet<String>>,
}

impl Demand {
    pub(crate) fn new() -> Demand {
        Demand {
            since: Timestamp::now(),
            asked: Mutex::new(HashMap::new()),
            warned: Mutex::new(HashSet::new()),
        }
    }

    /// A lease request named these types.
    pub(crate) fn asked(&self, types: &[String]) {
        let now = Timestamp::now();
        let mut asked = self.asked.lock().expect("demand lock");
        for t in types {
            asked.insert(t.clone(), now);
        }
    }

    fn was_asked(&self, op_type: &str) -> bool {
        self.asked
            .lock()
            .expect("demand lock")
            .contains_key(op_type)
    }

    /// Why `op` waits if nobody asked for its type.
    fn unasked(&self, op: &Operation) -> Option<String> {
        (!self.was_asked(&op.op_type)).then(|| {
            format!(
                "no executor or worker has asked for operations of type {} since {} (when \
                 this server started); configure a [[task_type]] executor for it or start a \
                 worker that serves it",
                op.op_type, self.since
            )
        })
    }

    /// An operation entered the queue: logs once per type that nobody has asked for.
    pub(crate) fn queued(&self, op: &Operation) {
        if self.was_asked(&op.op_type) {
            return;
        }
        if self
            .warned
            .lock()
            .expect("demand lock")
            .insert(op.op_type.clone())
        {
            tracing::warn!(
                operation = %op.name,
                r#type = %op.op_type,
                since = %self.since,
                "operations of this type are queued, but no executor or worker has asked for it"
            );
        }
    }
}

impl Engine {
    /// Why `op` waits, if it is PENDING and a lease would pass it over: nobody asked for
    /// its type since this engine started, or its project is at its running limit, at its
    /// export cap (an export), or its `concurrencyKey` at its type's `key_concurrency`.
    /// Reads the store at most once, and only when a limit applies to `op`; `None` also
    /// when that read fails.
    pub async fn why_waiting(&self, op: &Operation) -> Option<String> {
        if op.state != State::Pending {
            return None;
        }
        if let Some(why) = self.inner.demand.unasked(op) {
            return Some(why);
        }
        let options = &self.inner.options;
        let export =
            options.max_exports > 0 && op.op_type.starts_with(longrun_store::EXPORT_PREFIX);
        let key_limit = self.key_concurrency(&op.op_type);
        let key = op.concurrency_key.as_deref().filter(|_| key_limit > 0);
        if options.max_running == 0 && !export && key.is_none() {
            return None;
        }
        let project = op.name.project();
        let project = project.as_str();
        let running = self
            .inner
            .store
            .running(project, &op.op_type, key)
            .await
            .ok()?;
        if options.max_running > 0 && running.all >= options.max_running {
            return Some(format!(
                "project {project} is at its limit of {} running operations",
                options.max_running
            ));
        }
        let cap = longrun_store::export_cap(running.own_export_cap, options.max_exports);
        if export && running.exports >= cap {
            return Some(format!(
                "project {project} is at its limit of {cap} running exports \
                 (maxConcurrentExports)"
            ));
        }
        match key {
            Some(key) if running.keyed >= key_limit => Some(format!(
                "concurrencyKey {key} of type {} in project {project} is at its limit of \
                 {key_limit} running operations (key_concurrency)",
                op.op_type
            )),
            _ => None,
        }
    }
}
