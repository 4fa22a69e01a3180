//! Why work is waiting: which operation types a worker or built-in executor has asked
//! this server for (a lease request names its types), and since when. A PENDING operation
//! of a type nobody asked for is said to wait for that (in the `x-longrun-waiting` header
//! of a get, shown by the page and `longrun operations describe`), and the first submit of
//! such a type is logged. What a server knows is its own lease requests: with several
//! servers on one store, a worker that asks another server is not seen here. A PENDING
//! operation whose project is at its running limit (`project_defaults.max_running`), or
//! whose `concurrencyKey` is at its type's `key_concurrency` (docs/projects.md), is said
//! to be held back by it (`held_back`).

use longrun_types::{Operation, State, Timestamp};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// The header that says why a PENDING operation waits.
pub const HEADER: &str = "x-longrun-waiting";

#[derive(Debug)]
pub struct Demand {
    /// When this server started listening for lease requests.
    since: Timestamp,
    /// Type → the last time a lease request named it.
    asked: Mutex<HashMap<String, Timestamp>>,
    /// Types already logged as queued with nobody asking.
    warned: Mutex<HashSet<String>>,
}

impl Demand {
    pub fn new() -> Demand {
        Demand {
            since: Timestamp::now(),
            asked: Mutex::new(HashMap::new()),
            warned: Mutex::new(HashSet::new()),
        }
    }

    /// A lease request named these types.
    pub fn asked(&self, types: &[String]) {
        let now = Timestamp::now();
        let mut asked = self.asked.lock().expect("demand lock");
        for t in types {
            asked.insert(t.clone(), now);
        }
    }

    /// When a lease request last named `op_type`.
    pub fn last_asked(&self, op_type: &str) -> Option<Timestamp> {
        self.asked
            .lock()
            .expect("demand lock")
            .get(op_type)
            .copied()
    }

    /// Why `op` waits, if it is PENDING and nobody asked for its type.
    pub fn why_waiting(&self, op: &Operation) -> Option<String> {
        if op.state != State::Pending || self.last_asked(&op.op_type).is_some() {
            return None;
        }
        Some(format!(
            "no executor or worker has asked for operations of type {} since {} (when this \
             server started); configure a [[task_type]] executor for it or start a worker \
             that serves it",
            op.op_type, self.since
        ))
    }

    /// An operation entered the queue: logs once per type that nobody has asked for.
    pub fn queued(&self, op: &Operation) {
        if self.last_asked(&op.op_type).is_some() {
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

/// Why a PENDING operation waits, if a limit holds it back: its project is at its
/// running limit (counting the project's RUNNING and CANCELLING operations, at most
/// `max_running` of them read), or its key at its type's `key_concurrency` (at most that
/// many read).
pub async fn held_back(
    engine: &longrun_engine::Engine,
    op: &Operation,
    max_running: u64,
) -> Option<String> {
    if op.state != State::Pending {
        return None;
    }
    if let Some(why) = running_limit(engine, op, max_running).await {
        return Some(why);
    }
    key_limit(engine, op).await
}

/// A filter's quoted literal of `text`, matched exactly (no wildcard).
fn literal(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        if matches!(c, '\\' | '"' | '*') {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

async fn key_limit(engine: &longrun_engine::Engine, op: &Operation) -> Option<String> {
    let key = op.concurrency_key.as_deref()?;
    let limit = engine.key_concurrency(&op.op_type);
    if limit == 0 {
        return None;
    }
    let filter = format!(
        "metadata.type = {} AND metadata.concurrencyKey = {} \
         AND (metadata.state = RUNNING OR metadata.state = CANCELLING)",
        literal(&op.op_type),
        literal(key)
    );
    let running = count_up_to(engine, op, &filter, limit).await?;
    (running >= limit).then(|| {
        format!(
            "concurrencyKey {key} of type {} in project {} is at its limit of {limit} \
             running operations (key_concurrency)",
            op.op_type,
            op.name.project().as_str()
        )
    })
}

/// How many operations of `op`'s project match `filter`, counted up to `limit` (at most
/// 1,000, one page); None when the list fails.
async fn count_up_to(
    engine: &longrun_engine::Engine,
    op: &Operation,
    filter: &str,
    limit: u64,
) -> Option<u64> {
    let project = op.name.project();
    let page = engine.list(&project, filter, limit.min(1000) as i64, "");
    Some(page.await.ok()?.operations.len() as u64)
}

async fn running_limit(
    engine: &longrun_engine::Engine,
    op: &Operation,
    max_running: u64,
) -> Option<String> {
    if max_running == 0 {
        return None;
    }
    let filter = "metadata.state = RUNNING OR metadata.state = CANCELLING";
    let running = count_up_to(engine, op, filter, max_running).await?;
    (running >= max_running).then(|| {
        format!(
            "project {} is at its limit of {max_running} running operations",
            op.name.project().as_str()
        )
    })
}

impl Default for Demand {
    fn default() -> Self {
        Demand::new()
    }
}
