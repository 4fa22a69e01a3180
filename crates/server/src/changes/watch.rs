//! The watch stream (docs/watch.md): `GET /{v}/projects/{p}/operations:watch?filter=`
//! as server-sent events, and the hub of changes behind it.
//!
//! The hub keeps the last [`KEPT`] changes this server learned of, each numbered in order,
//! under an epoch drawn at random when the server starts (and again when changes may have
//! been lost). A cursor (`id:`) is `EPOCH-SEQ` in hex: resuming with it replays what came
//! after, from memory. A cursor of another epoch (another server, a restart, a lost
//! signal) or older than what is kept is not recognised: the stream says `reset` and starts
//! over with a fresh snapshot (docs/watch.md#choices). Snapshot events carry
//! `EPOCH-SEQ-s`, which resumes as a fresh snapshot too (a snapshot cut short cannot be
//! continued); `synced` carries the cursor of the point the snapshot was taken.
//!
//! Stated choices where the API leaves room: a delete enters the hub with the operation
//! as it stood when deleted (as watchers were last told of it), and a filtered watch sends
//! `deleted` only when that operation matches its filter, so a watcher hears of the delete
//! of every operation it shows and of no other; the decision depends on the change and the
//! filter alone, so a stream resumed with `Last-Event-ID` sends exactly what an unbroken one
//! would. An operation that stops matching the filter is sent once more, as it now stands,
//! so the watcher sees it leave (and no `deleted` follows for it); `?snapshot=false` skips
//! the snapshot (the stream starts with `synced`), for clients such as the page that list
//! what they show themselves. A change still on its way to the hub when a snapshot is read
//! may be sent again after `synced` (it is then the operation as it already stood).

use crate::kit::error::ApiError;
use crate::kit::render::{self, Version};
use axum::body::{Body, Bytes};
use axum::response::Response;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use longrun_engine::Engine;
use longrun_types::filter::{self, Expr};
use longrun_types::{Name, Operation, Project};
use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// How many changes the hub keeps for resuming (at least 10,000:
/// docs/watch.md#cursors-and-resuming).
pub const KEPT: usize = 16_384;

/// The longest a stream stays silent: a comment line goes out this often (at least
/// every 15 s: docs/watch.md#the-watch-stream).
pub const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// What changed.
#[derive(Debug, Clone)]
pub enum Kind {
    /// The operation as it now stands (created, or changed in any way).
    Operation(Arc<Shown>),
    /// The operation removed, as it stood when removed: filters match it to decide who is
    /// told (watchers are sent only its name).
    Deleted(Arc<Operation>),
}

impl Kind {
    /// The change of `op` as it now stands.
    pub fn operation(op: Operation) -> Kind {
        Kind::Operation(Arc::new(Shown::new(op)))
    }

    /// The delete of `op`, as it stood when deleted.
    pub fn deleted(op: Operation) -> Kind {
        Kind::Deleted(Arc::new(op))
    }
}

/// An operation as sent to watchers: why it waits is asked of the engine once
/// ([`Shown::explain`]), and its JSON is rendered once per API version, however many
/// watchers send it.
#[derive(Debug)]
pub struct Shown {
    pub op: Arc<Operation>,
    /// `op` with its `waiting_reason`, once explained.
    explained: tokio::sync::OnceCell<Operation>,
    json: [std::sync::OnceLock<String>; 3],
}

impl Shown {
    /// `op`, its JSON not rendered yet.
    pub fn new(op: Operation) -> Shown {
        Shown {
            op: Arc::new(op),
            explained: tokio::sync::OnceCell::new(),
            json: Default::default(),
        }
    }

    /// `op` as it is sent: with why it waits once explained.
    pub fn current(&self) -> &Operation {
        self.explained.get().unwrap_or(&self.op)
    }

    /// Asks the engine why the operation waits, if it is PENDING (once for every watcher),
    /// before it is first sent (`metadata.waitingReason`, docs/operations.md#why-work-waits).
    pub async fn explain(&self, engine: &Engine) {
        if self.op.state != longrun_types::State::Pending || self.op.waiting_reason.is_some() {
            return;
        }
        self.explained
            .get_or_init(|| async {
                let mut op = (*self.op).clone();
                engine.explain(std::slice::from_mut(&mut op)).await;
                op
            })
            .await;
    }

    /// The wire JSON for `version`, on one line.
    pub fn json(&self, version: Version) -> &str {
        let i = match version {
            Version::V1 => 0,
            Version::V1beta => 1,
            Version::V1alpha => 2,
        };
        self.json[i].get_or_init(|| operation_json(self.current(), version))
    }
}

/// One change in the hub.
#[derive(Debug)]
pub struct Change {
    pub seq: u64,
    pub project: String,
    pub kind: Kind,
}

struct Log {
    epoch: u64,
    /// The seq of `changes[0]`; the last seq is `first + len - 1` (`first - 1` when empty).
    first: u64,
    changes: VecDeque<Arc<Change>>,
}

impl Log {
    fn last(&self) -> u64 {
        self.first + self.changes.len() as u64 - 1
    }
}

/// The changes this server learned of, in order (see the module doc).
pub struct Hub {
    log: Mutex<Log>,
    /// Operations seen in a change and not deleted since, each as last published, kept once
    /// [`Hub::remember_operations`] is called (by the follower of a shared store; `None`
    /// before): on a shared store, a notification for a name the store no longer has is a
    /// delete only if the name was seen (another schema on the same database notifies on
    /// the same channel), and the record kept is what the delete is published with (the
    /// store has nothing left to read). Deletes past retention notify too, so the map holds
    /// no more than the store does; a record is shared with the log while the log keeps it.
    known: Mutex<Option<HashMap<String, Arc<Operation>>>>,
    /// The last seq (or a new epoch): watchers wait on it.
    latest: tokio::sync::watch::Sender<u64>,
}

/// A position in the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub epoch: u64,
    pub seq: u64,
}

impl Position {
    /// The `id:` of a change at this position.
    pub fn id(self) -> String {
        format!("{:x}-{:x}", self.epoch, self.seq)
    }

    /// Parses an `id:`; snapshot ids (`…-s`) and anything else give `None`.
    pub fn parse(text: &str) -> Option<Position> {
        let (epoch, seq) = text.trim().split_once('-')?;
        Some(Position {
            epoch: u64::from_str_radix(epoch, 16).ok()?,
            seq: u64::from_str_radix(seq, 16).ok()?,
        })
    }
}

/// What came after a position.
pub(super) enum Since {
    Changes(Vec<Arc<Change>>),
    /// The position is of another epoch or older than what is kept.
    Gone,
}

fn random_epoch() -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the system has a random source");
    // Kept within 48 bits so that ids stay short.
    u64::from_le_bytes(bytes) >> 16
}

impl Hub {
    pub fn new() -> Hub {
        Hub {
            log: Mutex::new(Log {
                epoch: random_epoch(),
                first: 1,
                changes: VecDeque::with_capacity(KEPT),
            }),
            latest: tokio::sync::watch::Sender::new(0),
            known: Mutex::new(None),
        }
    }

    /// From now on, keeps the last published record of each operation (for
    /// [`Hub::publish_deleted_if_known`]). A store only this server uses has its deletes
    /// published as they are made, with the record deleted, so it needs no such map (it
    /// would only grow).
    pub fn remember_operations(&self) {
        self.known
            .lock()
            .expect("hub lock")
            .get_or_insert_with(HashMap::new);
    }

    /// Publishes the delete of `name`, with its record as last published, if an operation
    /// of that name was seen since [`Hub::remember_operations`]; returns whether it did.
    pub fn publish_deleted_if_known(&self, name: &Name) -> bool {
        let last = self
            .known
            .lock()
            .expect("hub lock")
            .as_ref()
            .and_then(|known| known.get(name.as_str()).cloned());
        match last {
            Some(op) => {
                self.publish(Kind::Deleted(op));
                true
            }
            None => false,
        }
    }

    /// Adds a change and wakes the watchers.
    pub fn publish(&self, kind: Kind) {
        let project = match &kind {
            Kind::Operation(shown) => {
                let op = &shown.op;
                if let Some(known) = self.known.lock().expect("hub lock").as_mut() {
                    known.insert(op.name.as_str().to_string(), op.clone());
                }
                op.name.project()
            }
            Kind::Deleted(op) => {
                if let Some(known) = self.known.lock().expect("hub lock").as_mut() {
                    known.remove(op.name.as_str());
                }
                op.name.project()
            }
        }
        .as_str()
        .to_string();
        let mut log = self.log.lock().expect("hub lock");
        let seq = log.last() + 1;
        log.changes
            .push_back(Arc::new(Change { seq, project, kind }));
        if log.changes.len() > KEPT {
            log.changes.pop_front();
            log.first += 1;
        }
        self.latest.send_replace(seq);
    }

    /// Forgets every change under a new epoch: every watcher starts over (`reset`).
    pub fn reset(&self) {
        let mut log = self.log.lock().expect("hub lock");
        let last = log.last();
        log.epoch = random_epoch();
        log.first = last + 1;
        log.changes.clear();
        drop(log);
        self.latest.send_modify(|_| {});
    }

    /// The current position: a snapshot taken now covers everything up to it.
    pub fn position(&self) -> Position {
        let log = self.log.lock().expect("hub lock");
        Position {
            epoch: log.epoch,
            seq: log.last(),
        }
    }

    /// Whether resuming from `at` is possible (nothing after it was forgotten).
    pub fn recognises(&self, at: Position) -> bool {
        let log = self.log.lock().expect("hub lock");
        at.epoch == log.epoch && at.seq + 1 >= log.first && at.seq <= log.last()
    }

    pub(super) fn since(&self, at: Position) -> Since {
        let log = self.log.lock().expect("hub lock");
        if at.epoch != log.epoch || at.seq + 1 < log.first || at.seq > log.last() {
            return Since::Gone;
        }
        let skip = (at.seq + 1 - log.first) as usize;
        Since::Changes(log.changes.range(skip..).cloned().collect())
    }

    /// How many changes are kept now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.log.lock().expect("hub lock").changes.len()
    }
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new()
    }
}

/// One watch: what to send and to whom.
pub struct Watch {
    pub engine: Engine,
    pub hub: Arc<Hub>,
    pub project: Project,
    pub filter_text: String,
    pub version: Version,
    /// The `Last-Event-ID` the client sent, if any.
    pub resume: Option<String>,
    /// False: no snapshot, the stream starts with `synced`.
    pub snapshot: bool,
}

/// The client's `Last-Event-ID`, if it sent one.
pub fn last_event_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// `?snapshot=`: true unless `false`; anything else is 400.
pub fn snapshot_parameter(value: Option<&str>) -> Result<bool, ApiError> {
    match value {
        None | Some("") | Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(ApiError::invalid(
            "INVALID_ARGUMENT",
            format!("snapshot takes true or false, not `{other}`"),
        )),
    }
}

/// One event of a watch, before encoding (SSE for REST, messages for gRPC).
#[derive(Debug)]
pub enum Item {
    /// An operation as it stands, with its cursor.
    Operation(String, Arc<Shown>),
    /// A deleted operation's name, with its cursor.
    Deleted(String, Name),
    /// The snapshot or replay is complete, up to this cursor.
    Synced(String),
    /// The cursor was not recognised: a fresh snapshot follows.
    Reset,
    /// Nothing happened for a while (SSE sends a comment line).
    KeepAlive,
}

/// Checks the filter and starts the watch: its items arrive on the receiver until the
/// receiver is dropped or the server shuts down. A filter that does not parse is 400
/// `INVALID_FILTER`, as list answers it.
pub fn open(watch: Watch) -> Result<mpsc::Receiver<Item>, ApiError> {
    let filter = filter::parse(&watch.filter_text)
        .map_err(|e| ApiError::invalid("INVALID_FILTER", e.to_string()))?;
    let (tx, rx) = mpsc::channel::<Item>(64);
    tokio::spawn(async move {
        let engine = watch.engine.clone();
        tokio::select! {
            _ = run(watch, filter, Sender(tx)) => {}
            // The server is shutting down: streams end so that it can drain.
            _ = engine.closed() => {}
        }
    });
    Ok(rx)
}

/// The REST form: 200 `text/event-stream`, one SSE event per item; once `revoked` resolves
/// (the caller's credentials no longer hold), one `event: error` with the error's envelope
/// as data, and the end.
pub fn start(
    watch: Watch,
    revoked: impl std::future::Future<Output = ApiError> + Send + 'static,
) -> Result<Response, ApiError> {
    use tokio_stream::StreamExt;
    let version = watch.version;
    let items = tokio_stream::wrappers::ReceiverStream::new(open(watch)?)
        .map(move |item| sse(&item, version));
    let events = crate::auth::until_revoked(items, revoked, |error| {
        Bytes::from(format!("event: error\ndata: {}\n\n", error.body()))
    });
    let body = Body::from_stream(events.map(Ok::<_, Infallible>));
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// One item in the SSE text format (`data:` JSON on one line).
fn sse(item: &Item, version: Version) -> Bytes {
    let event = |event: &str, id: Option<&str>, data: &str| {
        let id = id.map(|id| format!("id: {id}\n")).unwrap_or_default();
        Bytes::from(format!("event: {event}\n{id}data: {data}\n\n"))
    };
    match item {
        Item::Operation(id, shown) => event("operation", Some(id), shown.json(version)),
        Item::Deleted(id, name) => event(
            "deleted",
            Some(id),
            &serde_json::json!({"name": name.as_str()}).to_string(),
        ),
        Item::Synced(id) => event("synced", Some(id), "{}"),
        Item::Reset => event("reset", None, "{}"),
        Item::KeepAlive => Bytes::from_static(b": keep-alive\n\n"),
    }
}

/// The client went away.
struct Gone;

struct Sender(mpsc::Sender<Item>);

impl Sender {
    async fn send(&self, item: Item) -> Result<(), Gone> {
        self.0.send(item).await.map_err(|_| Gone)
    }
}

/// What a watcher remembers between events.
struct State {
    filter: Option<Expr>,
    /// With a filter: the operations last sent as matching, so that one that stops
    /// matching is sent once more.
    shown: HashSet<String>,
}

impl State {
    /// Whether to send this change, remembering what was sent. A delete is sent when the
    /// operation, as it stood when deleted, matches the filter: the change and the filter
    /// decide, not what this stream sent before, so a resumed stream decides alike.
    fn wants(&mut self, project: &Project, change: &Change) -> bool {
        if change.project != project.as_str() {
            return false;
        }
        match (&change.kind, &self.filter) {
            (Kind::Deleted(op), filter) => {
                self.shown.remove(op.name.as_str());
                filter.as_ref().is_none_or(|filter| filter.matches(op))
            }
            (Kind::Operation(_), None) => true,
            (Kind::Operation(shown), Some(filter)) => {
                let op = shown.current();
                let reason = op.waiting_reason.map_or("", |r| r.as_str());
                if filter.matches_waiting(op, reason) {
                    self.shown.insert(op.name.as_str().to_string());
                    true
                } else {
                    self.shown.remove(op.name.as_str())
                }
            }
        }
    }
}

fn operation_json(op: &Operation, version: Version) -> String {
    serde_json::to_string(&render::operation(op, version)).expect("wire types always serialize")
}

/// Makes a change of `watch`'s project ready to be matched and sent: a PENDING operation
/// learns why it waits.
async fn explain(watch: &Watch, change: &Change) {
    if let Kind::Operation(shown) = &change.kind
        && change.project == watch.project.as_str()
    {
        shown.explain(&watch.engine).await;
    }
}

async fn send_change(tx: &Sender, epoch: u64, change: &Change) -> Result<(), Gone> {
    let id = Position {
        epoch,
        seq: change.seq,
    }
    .id();
    tx.send(match &change.kind {
        Kind::Operation(op) => Item::Operation(id, op.clone()),
        Kind::Deleted(op) => Item::Deleted(id, op.name.clone()),
    })
    .await
}

/// Sends the snapshot (unless the watch skips it) and `synced`; returns the position it
/// covers.
async fn snapshot(tx: &Sender, watch: &Watch, state: &mut State) -> Result<Position, Gone> {
    let at = watch.hub.position();
    if watch.snapshot {
        let id = format!("{}-s", at.id());
        let mut token = String::new();
        loop {
            let page = match watch
                .engine
                .list(&watch.project, &watch.filter_text, 1000, &token)
                .await
            {
                Ok(page) => page,
                Err(e) => {
                    // The store failed mid-snapshot: the stream ends and the client
                    // reconnects (its snapshot cursor starts it over).
                    tracing::warn!(error = %e, "watch snapshot failed");
                    return Err(Gone);
                }
            };
            for op in &page.operations {
                if state.filter.is_some() {
                    state.shown.insert(op.name.as_str().to_string());
                }
                tx.send(Item::Operation(
                    id.clone(),
                    Arc::new(Shown::new(op.clone())),
                ))
                .await?;
            }
            match page.next_page_token {
                Some(next) => token = next,
                None => break,
            }
        }
    }
    tx.send(Item::Synced(at.id())).await?;
    Ok(at)
}

async fn run(watch: Watch, filter: Option<Expr>, tx: Sender) -> Result<(), Gone> {
    let mut latest = watch.hub.latest.subscribe();
    let mut state = State {
        filter,
        shown: HashSet::new(),
    };
    let resume = watch.resume.as_deref().map(|id| (id, Position::parse(id)));
    let mut at = match resume {
        Some((_, Some(at))) if watch.hub.recognises(at) => {
            // Replay, then `synced`, then live.
            let mut at = at;
            if let Since::Changes(changes) = watch.hub.since(at) {
                for change in changes {
                    at.seq = change.seq;
                    explain(&watch, &change).await;
                    if state.wants(&watch.project, &change) {
                        send_change(&tx, at.epoch, &change).await?;
                    }
                }
            }
            tx.send(Item::Synced(at.id())).await?;
            at
        }
        Some(_) => {
            tx.send(Item::Reset).await?;
            snapshot(&tx, &watch, &mut state).await?
        }
        None => snapshot(&tx, &watch, &mut state).await?,
    };
    let mut keep_alive =
        tokio::time::interval_at(tokio::time::Instant::now() + KEEP_ALIVE, KEEP_ALIVE);
    loop {
        tokio::select! {
            changed = latest.changed() => if changed.is_err() { return Ok(()) },
            _ = keep_alive.tick() => {
                tx.send(Item::KeepAlive).await?;
                continue;
            }
            _ = tx.0.closed() => return Err(Gone),
        }
        match watch.hub.since(at) {
            Since::Changes(changes) => {
                for change in changes {
                    at.seq = change.seq;
                    explain(&watch, &change).await;
                    if state.wants(&watch.project, &change) {
                        send_change(&tx, at.epoch, &change).await?;
                    }
                }
            }
            Since::Gone => {
                tx.send(Item::Reset).await?;
                state.shown.clear();
                at = snapshot(&tx, &watch, &mut state).await?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use longrun_types::Timestamp;

    fn op(id: &str) -> Operation {
        let project = Project::parse("p").unwrap();
        Operation::new(
            Name::new(&project, id).unwrap(),
            "T".into(),
            Timestamp::now(),
        )
    }

    #[test]
    fn cursors_resume_within_what_is_kept() {
        let hub = Hub::new();
        let start = hub.position();
        assert_eq!(Position::parse(&start.id()), Some(start));
        for i in 0..KEPT + 5 {
            hub.publish(Kind::operation(op(&format!("o{i}"))));
        }
        assert_eq!(hub.len(), KEPT);
        // The first five changes were forgotten: the start cursor is too old.
        assert!(!hub.recognises(start));
        let recent = Position {
            seq: start.seq + 5,
            ..start
        };
        assert!(hub.recognises(recent));
        let Since::Changes(after) = hub.since(recent) else {
            panic!("gone")
        };
        assert_eq!(after.len(), KEPT);
        assert_eq!(after[0].seq, recent.seq + 1);
        hub.reset();
        assert!(!hub.recognises(hub.position().into_other_epoch()));
        assert!(!hub.recognises(recent));
        assert!(Position::parse("zz").is_none());
        assert!(Position::parse(&format!("{}-s", recent.id())).is_none());
    }

    /// Records are kept only for a follower of a shared store, and only until deleted; a
    /// delete is published with the record last published.
    #[test]
    fn records_are_kept_only_when_deletes_must_be_recognised() {
        let hub = Hub::new();
        hub.publish(Kind::operation(op("a")));
        assert!(
            hub.known.lock().unwrap().is_none(),
            "nothing kept by default"
        );
        assert!(!hub.publish_deleted_if_known(&op("a").name));

        hub.remember_operations();
        hub.publish(Kind::operation(op("b")));
        let mut b = op("b");
        b.description = "latest".into();
        hub.publish(Kind::operation(b));
        hub.publish(Kind::operation(op("c")));
        hub.publish(Kind::deleted(op("c")));
        let before = hub.position();
        assert!(hub.publish_deleted_if_known(&op("b").name));
        let Since::Changes(changes) = hub.since(before) else {
            panic!("gone")
        };
        assert!(
            matches!(&changes[..], [c] if matches!(&c.kind, Kind::Deleted(op) if op.description == "latest"))
        );
        assert!(
            !hub.publish_deleted_if_known(&op("c").name),
            "already deleted"
        );
        assert!(!hub.publish_deleted_if_known(&op("x").name), "never seen");
        assert!(hub.known.lock().unwrap().as_ref().unwrap().is_empty());
    }

    impl Position {
        fn into_other_epoch(self) -> Position {
            Position {
                epoch: self.epoch ^ 1,
                ..self
            }
        }
    }
}
