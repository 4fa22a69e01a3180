//! Why a PENDING operation waits (`metadata.waitingReason`, docs/operations.md#why-work-waits):
//! the rules a lease applies, as a reason (`waiting::Reason`) and in words (the
//! `x-longrun-waiting` header of a get). Its `scheduleTime` has not come. Or its queue is
//! paused (docs/queues.md), read from the store once per project of a page. Or nobody asked
//! for its type: the engine learns which types workers and built-in executors ask for from
//! the lease requests it serves (what it knows is its own lease requests: with several
//! servers on one store, a worker that asks another server is not seen here), counts a type
//! as asked for while a lease request naming it waits and for a minute after, and logs the
//! first submit of a type nobody asked for. Or a limit holds it back: its project's running
//! limit (`Options::max_running`), the export cap (the project's `maxConcurrentExports`
//! within `Options::max_exports`, docs/projects.md), or its type's `key_concurrency` for
//! its `concurrencyKey`, counted from the store in one read (`Leasing::running`) per
//! (project, type, key), however many operations of a page share it. Else it is `QUEUED`:
//! other work is ahead of it.

use crate::Engine;
use longrun_store::Running;
use longrun_types::waiting::Reason;
use longrun_types::{Operation, State, Timestamp};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// How long after its last lease request a type still counts as asked for.
const ASKED_WITHIN_MS: i64 = 60_000;

/// The operation types lease requests named, and when.
#[derive(Debug)]
pub(crate) struct Demand {
    /// When this engine started serving lease requests.
    since: Timestamp,
    /// Type → the last time a lease request naming it started or ended, and how many such
    /// requests wait now.
    asked: Mutex<HashMap<String, (Timestamp, usize)>>,
    /// Types already logged as queued with nobody asking.
    warned: Mutex<HashSet<String>>,
}

/// A lease request in progress: its types count as asked for until it is dropped, and for
/// a minute after.
pub(crate) struct Asking {
    demand: Arc<Demand>,
    types: Vec<String>,
}

impl Drop for Asking {
    fn drop(&mut self) {
        let now = Timestamp::now();
        let mut asked = self.demand.asked.lock().expect("demand lock");
        for t in &self.types {
            if let Some((last, waiting)) = asked.get_mut(t) {
                *last = now;
                *waiting = waiting.saturating_sub(1);
            }
        }
    }
}

impl Demand {
    pub(crate) fn new() -> Demand {
        Demand {
            since: Timestamp::now(),
            asked: Mutex::new(HashMap::new()),
            warned: Mutex::new(HashSet::new()),
        }
    }

    /// A lease request names these types, until the guard is dropped.
    pub(crate) fn asking(self: &Arc<Demand>, types: &[String]) -> Asking {
        let now = Timestamp::now();
        let mut asked = self.asked.lock().expect("demand lock");
        for t in types {
            let entry = asked.entry(t.clone()).or_insert((now, 0));
            *entry = (now, entry.1 + 1);
        }
        Asking {
            demand: self.clone(),
            types: types.to_vec(),
        }
    }

    fn was_asked(&self, op_type: &str) -> bool {
        let now = Timestamp::now();
        self.asked
            .lock()
            .expect("demand lock")
            .get(op_type)
            .is_some_and(|(last, waiting)| *waiting > 0 || last.plus_millis(ASKED_WITHIN_MS) >= now)
    }

    /// Why `op` waits, in words, when nobody asked for its type.
    fn unasked(&self, op: &Operation) -> String {
        let a_minute_ago = Timestamp::now().plus_millis(-ASKED_WITHIN_MS);
        let since = if a_minute_ago > self.since {
            format!("{a_minute_ago} (a minute ago)")
        } else {
            format!("{} (when this server started)", self.since)
        };
        format!(
            "no executor or worker has asked for operations of type {} since {since}; \
             configure a [[task_type]] executor for it or start a worker that serves it",
            op.op_type
        )
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

/// What explaining a page read from the store, read once however many of its operations
/// need it (`None`: the read failed).
#[derive(Default)]
pub(crate) struct Counts {
    /// [`Leasing::running`](longrun_store::Leasing::running) per (project, type, key).
    running: HashMap<(String, String, Option<String>), Option<Running>>,
    /// The paused queues of each project (`Queues::paused_queues`).
    pauses: HashMap<String, Option<Vec<String>>>,
    /// The state of each parent read (`None`: gone, or the read failed).
    parents: HashMap<longrun_types::Name, Option<State>>,
}

impl Counts {
    pub(crate) fn new() -> Counts {
        Counts::default()
    }
}

impl Engine {
    /// Why `op` waits, in words, if it is PENDING and something a lease applies holds it
    /// back: its `scheduleTime`, its queue's pause, nobody asking for its type, its project's running limit,
    /// its export cap, its key's `key_concurrency` (the `x-longrun-waiting` header). `None`
    /// when it is not PENDING or only waits its turn (`QUEUED`).
    pub async fn why_waiting(&self, op: &Operation) -> Option<String> {
        self.waiting(op, &mut Counts::new(), true).await.1
    }

    /// Sets `waiting_reason` of each operation: its reason when PENDING, `None` otherwise.
    /// Reads the store at most once per (project, type, key) that a limit applies to.
    pub async fn explain(&self, ops: &mut [Operation]) {
        let mut counts = Counts::new();
        for op in ops {
            op.waiting_reason = self.waiting(op, &mut counts, false).await.0;
        }
    }

    /// The reason `op` waits and, when `words`, the words for it (see
    /// [`Engine::why_waiting`]), with the counts already read in `counts`.
    pub(crate) async fn waiting(
        &self,
        op: &Operation,
        counts: &mut Counts,
        words: bool,
    ) -> (Option<Reason>, Option<String>) {
        if op.state != State::Pending {
            return (None, None);
        }
        if let Some(at) = op.schedule_time.filter(|t| *t > self.now()) {
            return (
                Some(Reason::Scheduled),
                words.then(|| format!("scheduled to start at {at} (scheduleTime)")),
            );
        }
        let project = op.name.project();
        let project = project.as_str();
        if !counts.pauses.contains_key(project) {
            let read = match self.paused_types(project).await {
                Ok(paused) => Some(paused),
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the paused queues");
                    None
                }
            };
            counts.pauses.insert(project.to_string(), read);
        }
        if let Some(Some(paused)) = counts.pauses.get(project)
            && let Some(which) = paused
                .iter()
                .find(|t| *t == &op.op_type || *t == longrun_store::EVERY_TYPE)
        {
            return (
                Some(Reason::Paused),
                words.then(|| {
                    format!(
                        "queue projects/{project}/queues/{which} is paused; resume it to lease \
                     its operations"
                    )
                }),
            );
        }
        if let Some(parent) = &op.parent {
            if !counts.parents.contains_key(parent) {
                let state = match self.inner.store.get(parent).await {
                    Ok(found) => found.map(|p| p.state),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not read a parent");
                        None
                    }
                };
                counts.parents.insert(parent.clone(), state);
            }
            if let Some(Some(state)) = counts.parents.get(parent)
                && *state != State::Running
            {
                return (
                    Some(Reason::Parent),
                    words.then(|| {
                        format!("its parent {parent} is {state}: children start while their parent is RUNNING")
                    }),
                );
            }
        }
        if !self.inner.demand.was_asked(&op.op_type) {
            return (
                Some(Reason::NoWorker),
                words.then(|| self.inner.demand.unasked(op)),
            );
        }
        let options = &self.inner.options;
        let export =
            options.max_exports > 0 && op.op_type.starts_with(longrun_store::EXPORT_PREFIX);
        let key_limit = self.key_concurrency(&op.op_type);
        let key = op.concurrency_key.as_deref().filter(|_| key_limit > 0);
        if options.max_running == 0 && !export && key.is_none() {
            return (Some(Reason::Queued), None);
        }
        let slot = (
            project.to_string(),
            op.op_type.clone(),
            key.map(str::to_string),
        );
        let running = match counts.running.get(&slot) {
            Some(running) => *running,
            None => {
                let read = match self.inner.store.running(project, &op.op_type, key).await {
                    Ok(running) => Some(running),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not read what limits a lease");
                        None
                    }
                };
                counts.running.insert(slot, read);
                read
            }
        };
        let Some(running) = running else {
            return (Some(Reason::Queued), None);
        };
        if options.max_running > 0 && running.all >= options.max_running {
            return (
                Some(Reason::ProjectRunningLimit),
                words.then(|| {
                    format!(
                        "project {project} is at its limit of {} running operations",
                        options.max_running
                    )
                }),
            );
        }
        let cap = longrun_store::export_cap(running.own_export_cap, options.max_exports);
        if export && running.exports >= cap {
            return (
                Some(Reason::ExportLimit),
                words.then(|| {
                    format!(
                        "project {project} is at its limit of {cap} running exports \
                     (maxConcurrentExports)"
                    )
                }),
            );
        }
        match key {
            Some(key) if running.keyed >= key_limit => (
                Some(Reason::KeyLimit),
                words.then(|| {
                    format!(
                        "concurrencyKey {key} of type {} in project {project} is at its limit of \
                     {key_limit} running operations (key_concurrency)",
                        op.op_type
                    )
                }),
            ),
            _ => (Some(Reason::Queued), None),
        }
    }
}
