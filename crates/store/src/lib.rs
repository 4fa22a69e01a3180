//! The storage boundary: narrow traits in domain terms, one per concern ([`Operations`],
//! [`Leasing`], [`Accounts`], [`Assets`], [`Projects`], [`Schedules`], [`Queues`]) under one [`Store`], and the
//! conformance suite that every backend must pass (behind the `conformance` feature, which
//! backends enable for their tests only). Storage keeps operation records without interpreting them; it
//! only indexes the fields that queries need, and it applies every update as a
//! compare-and-set on the record's version.

#[cfg(feature = "conformance")]
pub mod conformance;
pub mod fair;
mod queues;
mod schedules;
pub mod sql;
mod trees;

use async_trait::async_trait;
use longrun_types::filter::Expr;
use longrun_types::limits::{self, TooLong};
use longrun_types::{Name, Operation, Project, Timestamp};
use std::collections::HashMap;

pub use queues::{EVERY_TYPE, QueueCounts, QueueStat, Queues, StateCount};
pub use schedules::{Schedules, storable_schedule};
pub use trees::Trees;

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("operation not found")]
    NotFound,
    /// The stored version is not the one the update was based on.
    #[error("the operation changed concurrently")]
    Conflict,
    #[error("operation {0} already exists")]
    AlreadyExists(Name),
    #[error("project queue is full ({limit} pending operations)")]
    QueueFull { limit: u64 },
    /// The parent named by an insert does not exist or is not PENDING or RUNNING
    /// (docs/operations.md#parents-and-children); nothing was written.
    #[error("parent {0} is not PENDING or RUNNING")]
    ParentClosed(Name),
    /// A value no backend can hold (see [`storable_text`]); nothing was written or read.
    #[error("{0}")]
    InvalidArgument(String),
    /// A value longer than its limit (`longrun_types::limits`); nothing was written.
    #[error("{0}")]
    TooLong(TooLong),
    /// The backend cannot take writes (or reads) for now, and nothing was done: a full
    /// disk, a failed fsync or other I/O error, a database that does not answer. Answered
    /// 503 UNAVAILABLE, which clients retry; the store recovers by itself once the cause
    /// goes away.
    #[error("storage is unavailable: {0}")]
    Unavailable(String),
    #[error("storage failure: {0}")]
    Backend(String),
}

/// Checks a text value that a backend keeps in an indexed column (or compares with one):
/// U+0000 is refused, because PostgreSQL's `text` cannot hold it, and every backend must
/// give the same answer to the same input. `field` names the value in the error, as the
/// API spells it (`metadata.description`, `types[0]`).
pub fn storable_text(field: &str, value: &str) -> Result<()> {
    if value.contains('\0') {
        return Err(Error::InvalidArgument(format!(
            "{field} contains the character U+0000, which cannot be stored"
        )));
    }
    Ok(())
}

/// Checks the text fields of an operation that backends index (its type, description,
/// request id and concurrency key; names are percent-encoded, so they never hold U+0000).
/// Every backend calls it before writing an operation.
pub fn storable(op: &Operation) -> Result<()> {
    storable_text("metadata.type", &op.op_type)?;
    storable_text("metadata.description", &op.description)?;
    op.request_id
        .as_deref()
        .map_or(Ok(()), |id| storable_text("requestId", id))?;
    op.concurrency_key
        .as_deref()
        .map_or(Ok(()), |key| storable_text("concurrencyKey", key))?;
    within("name", op.name.as_str(), limits::OPERATION_NAME)?;
    within("metadata.type", &op.op_type, limits::TYPE)?;
    within("metadata.description", &op.description, limits::DESCRIPTION)?;
    if let Some(id) = &op.request_id {
        within("requestId", id, limits::REQUEST_ID)?;
    }
    if let Some(key) = &op.concurrency_key {
        within("concurrencyKey", key, limits::CONCURRENCY_KEY)?;
    }
    if let Some(lease) = &op.lease {
        within("worker", &lease.worker, limits::WORKER_ID)?;
    }
    if let Some(parent) = &op.parent {
        within("metadata.parent", parent.as_str(), limits::OPERATION_NAME)?;
    }
    if let Some(schedule) = &op.schedule {
        storable_text("metadata.schedule", schedule)?;
        within("metadata.schedule", schedule, limits::OPERATION_NAME)?;
    }
    Ok(())
}

/// `value` unless it is longer than `limit` bytes ([`Error::TooLong`]): every backend
/// checks the ids and names it indexes with the limits of `longrun_types::limits` before it
/// writes, so that a value one backend takes is never refused by another's index.
fn within(field: &str, value: &str, limit: usize) -> Result<()> {
    limits::check(field, value, limit).map_err(Error::TooLong)
}

/// Checks the text fields of a service account (see [`storable_text`]) and its lengths.
pub fn storable_account(account: &ServiceAccount) -> Result<()> {
    storable_text("email", &account.email)?;
    storable_text("project", &account.project)?;
    storable_text("keyId", &account.key_id)?;
    storable_text("publicKeyPem", &account.public_key_pem)?;
    let name = account.email.split('@').next().unwrap_or_default();
    within("accountId", name, limits::ACCOUNT_NAME)?;
    within("project", &account.project, limits::PROJECT_ID)?;
    within("keyId", &account.key_id, limits::KEY_ID)
}

/// Checks the operation types of a lease (see [`storable_text`]) and their lengths.
pub fn storable_types(types: &[String]) -> Result<()> {
    types.iter().enumerate().try_for_each(|(i, t)| {
        let field = format!("types[{i}]");
        storable_text(&field, t)?;
        within(&field, t, limits::TYPE)
    })
}

/// The id of an asset name: what follows `/assets/` (the whole name if it has none).
pub fn asset_id(name: &str) -> &str {
    name.split_once("/assets/").map_or(name, |(_, id)| id)
}

/// Checks an asset's name: its id is at most [`limits::ASSET_ID`] bytes.
pub fn storable_asset(asset: &Asset) -> Result<()> {
    storable_text("name", &asset.name)?;
    within("name", asset_id(&asset.name), limits::ASSET_ID)
}

/// Whether moving the assets under `from` (and `from`), whose longest name is `longest`
/// bytes, to `to` keeps every id within [`limits::ASSET_ID`].
pub fn move_fits(from: &str, to: &str, longest: usize) -> bool {
    let prefix = to.len() - asset_id(to).len();
    longest.saturating_sub(from.len()) + to.len() - prefix <= limits::ASSET_ID
}

pub type Result<T> = std::result::Result<T, Error>;

/// A new operation with what only insertion needs.
#[derive(Debug, Clone)]
pub struct NewOperation {
    pub operation: Operation,
    /// The submit payload, kept apart from the record (workers read it, lists never do).
    pub payload: serde_json::Value,
    /// Most PENDING operations the project may hold, this one included.
    pub max_queued: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Inserted {
    Created(Operation),
    /// The project already had an operation with this request id: nothing was written.
    Existing(Operation),
}

/// A service account: the public half of its key checks the assertions it signs at the
/// token endpoint. Accounts are kept in the store so that every server sharing it knows them.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceAccount {
    /// `NAME@PROJECT.iam.longrun`, the account's member name after `serviceAccount:`.
    pub email: String,
    pub project: String,
    /// The key's id: `private_key_id` in the key file, `kid` in what it signs.
    pub key_id: String,
    /// The key's public half, PEM (SubjectPublicKeyInfo).
    pub public_key_pem: String,
    pub disabled: bool,
    pub create_time: Timestamp,
}

/// An Earth Engine asset of the emulator's registry (docs/earth-engine.md#assets). Storage keeps
/// the record whole; it reads only the name, the parent and the type.
#[derive(Debug, Clone, PartialEq)]
pub struct Asset {
    /// `projects/P/assets/ID`, where `ID` is one or more `/`-separated segments.
    pub name: String,
    /// The folder or collection holding it (`projects/P/assets/...`), or `projects/P` for a
    /// top-level asset.
    pub parent: String,
    /// `FOLDER`, `IMAGE_COLLECTION`, `IMAGE`, `TABLE`, ...
    pub asset_type: String,
    /// Everything else, as the wire shows it (`updateTime`, `properties`, ...), without
    /// `name` and `id`, which are rendered from `name` (so a move rewrites no record).
    pub record: serde_json::Value,
}

/// How an asset write went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssetWrite {
    Done,
    /// The asset (or a move's source) does not exist.
    NotFound,
    /// The name (or a move's destination) is taken and overwriting was not asked for.
    Exists,
    /// The parent is an asset name that does not exist.
    NoParent,
    /// The asset holds other assets.
    NotEmpty,
    /// A move would make the id of the asset moved, or of one under it, longer than
    /// `longrun_types::limits::ASSET_ID`; nothing moved.
    TooLong,
}

/// True when `parent` names a project (`projects/P`) rather than an asset; projects always
/// exist.
pub fn is_project_parent(parent: &str) -> bool {
    !parent.contains("/assets/")
}

/// A project's entry in the registry (docs/projects.md#registry).
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    /// The project id.
    pub project: String,
    /// False for a noncommercial project, true for a commercial one.
    pub commercial: bool,
    /// The day it registered, `YYYY-MM-DD` (UTC).
    pub registered_on: String,
    /// Whether a noncommercial project's eligibility has been verified.
    pub eligibility_verified: bool,
}

/// Checks the text fields of a registration (see [`storable_text`]).
pub fn storable_registration(r: &Registration) -> Result<()> {
    storable_text("project", &r.project)?;
    storable_text("registeredOn", &r.registered_on)?;
    within("project", &r.project, limits::PROJECT_ID)
}

/// Position after which a page starts, in list order (create time descending, then name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub create_time: Timestamp,
    pub name: Name,
}

#[derive(Debug, Clone)]
pub struct ListQuery {
    pub project: Project,
    pub filter: Option<Expr>,
    pub after: Option<Cursor>,
    pub limit: usize,
    /// Most rows the page examines (docs/operations.md#what-a-page-costs): the rows of the
    /// index the store walks for the filter, in list order. `usize::MAX`: no bound.
    pub scan_budget: usize,
}

impl ListQuery {
    /// A query of every operation `filter` keeps, `limit` at a time, without a scan budget.
    pub fn unbounded(project: Project, filter: Option<Expr>, limit: usize) -> Self {
        ListQuery {
            project,
            filter,
            after: None,
            limit,
            scan_budget: usize::MAX,
        }
    }
}

/// One page of [`Operations::list`].
#[derive(Debug, Clone, Default)]
pub struct ListPage {
    /// At most `limit` operations, in list order.
    pub operations: Vec<Operation>,
    /// Set when the scan budget ran out before `limit` operations were found: the page is
    /// short, and the next one starts after this position (the last row examined).
    pub resume: Option<Cursor>,
}

/// Turns a PENDING operation into its leased form (the engine's transition).
pub type Start = std::sync::Arc<dyn Fn(Operation) -> Operation + Send + Sync>;

#[derive(Clone)]
pub struct LeaseQuery {
    /// Operation types the worker serves.
    pub types: Vec<String>,
    /// The time of the lease: operations whose `scheduleTime` is after it are not leased,
    /// nor those whose start deadline (`Operation::start_deadline`) is before it and that
    /// never started (docs/operations.md#delayed-start).
    pub now: Timestamp,
    /// Most operations to lease.
    pub limit: usize,
    /// Most RUNNING or CANCELLING operations per project; 0 = unlimited.
    pub max_running: u64,
    /// Only operations of these projects (`None`: of every project).
    pub projects: Option<Vec<String>>,
    /// The plan maximum of concurrent exports (docs/projects.md#the-export-cap): at most this many
    /// RUNNING or CANCELLING operations whose type starts with [`EXPORT_PREFIX`] per
    /// project, or the project's own `max_concurrent_exports` when that is set (> 0) and
    /// lower. 0 = exports are not capped.
    pub max_exports: u64,
    /// Per operation type, its `key_concurrency` (docs/projects.md#concurrency-keys): at most this
    /// many RUNNING or CANCELLING operations per (project, type, concurrency key); the rest of a
    /// key wait PENDING while the lease takes other work. Operations without a key, and types
    /// without an entry (or with 0), are not limited by it.
    pub key_limits: HashMap<String, u64>,
    pub start: Start,
}

impl LeaseQuery {
    /// The `key_concurrency` of `op_type` (0 = its keys are not limited).
    pub fn key_limit(&self, op_type: &str) -> u64 {
        self.key_limits.get(op_type).copied().unwrap_or(0)
    }
}

/// The limit a key of `op`'s type is held to, when `op` has a key and its type a
/// `key_concurrency` (see [`LeaseQuery::key_limits`]): the key and its limit.
pub fn key_limited<'a>(query: &LeaseQuery, op: &'a Operation) -> Option<(&'a str, u64)> {
    let key = op.concurrency_key.as_deref()?;
    let limit = query.key_limit(&op.op_type);
    (limit > 0).then_some((key, limit))
}

/// Operation types starting with this are exports, capped by `maxConcurrentExports`.
pub const EXPORT_PREFIX: &str = "EXPORT_";

/// Whether a lease of `types` may meet the export cap (and must look past capped exports).
pub fn caps_exports(query: &LeaseQuery) -> bool {
    query.max_exports > 0 && query.types.iter().any(|t| t.starts_with(EXPORT_PREFIX))
}

/// The export cap of a project: its own `max_concurrent_exports` (0 = unset) within the
/// plan maximum `plan` (> 0).
pub fn export_cap(own: u64, plan: u64) -> u64 {
    if own == 0 { plan } else { own.min(plan) }
}

/// The RUNNING or CANCELLING operations of a project that a lease's limits count
/// ([`Leasing::running`]), and the project's own export cap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Running {
    /// All of them (the running limit, `LeaseQuery::max_running`).
    pub all: u64,
    /// Those whose type starts with [`EXPORT_PREFIX`] (the export cap).
    pub exports: u64,
    /// Those of the type and concurrency key asked about (`key_concurrency`); 0 without a
    /// key.
    pub keyed: u64,
    /// The project's `maxConcurrentExports` ([`Projects::max_concurrent_exports`]; 0 when
    /// unset).
    pub own_export_cap: u64,
}

/// What other processes sharing the store changed.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    /// This operation's state changed.
    Changed(String),
    /// Operations entered the queue.
    Queued,
    /// Signals may have been lost (a reconnect): anything may have changed.
    Resync,
}

/// Operation records: insert, read, list, compare-and-set, delete, retention and copying,
/// with the signals of other servers' changes and the secret that signs page tokens. The
/// engine alone holds it (through [`Queue`]): every change of an operation is the engine's.
#[async_trait]
pub trait Operations: Send + Sync + 'static {
    /// Signals of changes made through other connections to the same store (other servers),
    /// for a store that several servers share; `None` for a store only this process uses.
    /// Signals are hints: they can be lost, so waiters on a shared store also re-read now
    /// and then.
    fn subscribe(&self) -> Option<tokio::sync::broadcast::Receiver<Signal>> {
        None
    }

    /// The secret that signs page tokens (and, with auth on, issued tokens): `candidate` for a
    /// store only this process uses; for a store several servers share, the one stored there,
    /// which the first server to start sets to its `candidate`, so that a page token or an
    /// access token from one server holds on every other.
    async fn shared_secret(&self, candidate: Vec<u8>) -> Result<Vec<u8>> {
        Ok(candidate)
    }

    /// Inserts a PENDING operation with version 1, unless the project already has one
    /// with the same request id (then returns it untouched). Fails with `AlreadyExists`
    /// when the name is taken, `QueueFull` when the project is at its limit and
    /// `ParentClosed` when it has a parent that is not PENDING or RUNNING (see [`Trees`]).
    async fn insert(&self, new: NewOperation) -> Result<Inserted>;

    /// Inserts every operation of `batch` in one durable write, each as [`Operations::insert`]
    /// would (a repeated request id answers `Existing`, earlier items of the batch
    /// included), or none: the first item whose name is taken (`AlreadyExists`) or that
    /// passes its project's queue limit (`QueueFull`, the items before it counted) ends the
    /// call with that error and nothing written. The outcomes are in `batch`'s order.
    async fn insert_batch(&self, batch: Vec<NewOperation>) -> Result<Vec<Inserted>>;

    async fn get(&self, name: &Name) -> Result<Option<Operation>>;

    /// One page of a project's operations in list order, filtered, examining at most
    /// `query.scan_budget` rows (the page is then short and says where to resume).
    async fn list(&self, query: ListQuery) -> Result<ListPage>;

    /// Compare-and-set: writes `operation` if the stored version equals
    /// `operation.version`, and returns it as stored (version + 1). What a submission
    /// fixed (the name, type, description, priority, create time, request id, payload,
    /// concurrency key, retried operation, delayed start, schedule and parent) must be as
    /// inserted: a store keeps its indexed copies of them from the insert.
    async fn update(&self, operation: Operation) -> Result<Operation>;

    /// Removes `operation` if its stored version still equals `operation.version`: the
    /// record passed is the one removed, so that whoever is told of the delete (watchers)
    /// knows what went, not only its name.
    async fn delete(&self, operation: &Operation) -> Result<()>;

    /// The submit payload of an operation.
    async fn payload(&self, name: &Name) -> Result<Option<serde_json::Value>>;

    /// Removes up to `limit` done operations that ended before `ended_before` (retention);
    /// returns those that went, as they stood, so that watchers can be told.
    async fn expire(&self, ended_before: Timestamp, limit: usize) -> Result<Vec<Operation>>;

    /// Up to `limit` operations with a timer due at `now`: a lease that expired before
    /// `now`, a deadline before `now` on an operation that is not done, or a start
    /// deadline (`Operation::start_deadline`) before `now` on a PENDING operation that
    /// never started.
    async fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<Operation>>;

    /// Up to `limit` operations with their payloads, in name order after `after`: every
    /// operation of every project, for copying a store.
    async fn scan(
        &self,
        after: Option<&Name>,
        limit: usize,
    ) -> Result<Vec<(Operation, serde_json::Value)>>;

    /// Writes operations exactly as given (version, times and leases included), in one
    /// transaction, recording the cascade of each that `Operation::cascades` (see [`Trees`]).
    /// Fails with `AlreadyExists` if any name is taken. For copying a store.
    async fn import(&self, operations: Vec<(Operation, serde_json::Value)>) -> Result<()>;
}

/// Leasing PENDING operations to workers within the limits of docs/projects.md, on the
/// store's clock when several servers share it.
#[async_trait]
pub trait Leasing: Send + Sync + 'static {
    /// Leases PENDING operations of the given types round-robin across the projects that
    /// have some (see [`fair`]), within a project highest priority first, then oldest,
    /// skipping projects at their running limit and children whose parent is not RUNNING:
    /// each is passed through `start` and written in one transaction. Returns them with
    /// their payloads.
    async fn lease(&self, query: LeaseQuery) -> Result<Vec<(Operation, serde_json::Value)>>;

    /// What a lease of a PENDING operation of `project`, of type `op_type` and with
    /// concurrency key `key`, counts against its limits, read in one query (see
    /// [`Running`]).
    async fn running(&self, project: &str, op_type: &str, key: Option<&str>) -> Result<Running>;

    /// The earliest `scheduleTime` after `after` of a PENDING operation, if any: when the
    /// next scheduled operation becomes due (the engine wakes waiting leases then).
    async fn next_scheduled(&self, after: Timestamp) -> Result<Option<Timestamp>>;

    /// The time on the store's own clock, for a store several servers share (`None`
    /// otherwise): the engine judges leases, graces and timeouts on it (`StoreClock`), so
    /// that servers whose clocks disagree still agree on when a lease lapses.
    async fn clock(&self) -> Result<Option<Timestamp>> {
        Ok(None)
    }
}

/// What the engine holds: operations, their leasing, the queues' counts and pauses, and
/// the trees of operations. Every store is one.
pub trait Queue: Operations + Leasing + Queues + Trees {}

impl<T: Operations + Leasing + Queues + Trees + ?Sized> Queue for T {}

/// Service accounts, kept in the store so that every server sharing it knows them.
#[async_trait]
pub trait Accounts: Send + Sync + 'static {
    /// Registers a service account; false when the email is taken.
    async fn create_account(&self, account: ServiceAccount) -> Result<bool>;

    async fn account(&self, email: &str) -> Result<Option<ServiceAccount>>;

    /// Every service account, by email.
    async fn accounts(&self) -> Result<Vec<ServiceAccount>>;

    /// Disables or enables an account; false when there is none.
    async fn set_account_disabled(&self, email: &str, disabled: bool) -> Result<bool>;

    /// Removes an account; false when there is none.
    async fn delete_account(&self, email: &str) -> Result<bool>;
}

/// The Earth Engine emulator's asset registry (docs/earth-engine.md).
#[async_trait]
pub trait Assets: Send + Sync + 'static {
    /// An asset by name.
    async fn asset(&self, name: &str) -> Result<Option<Asset>>;

    /// Up to `limit` assets whose parent is `parent`, in name order (bytewise) after
    /// `after`.
    async fn assets(&self, parent: &str, after: Option<&str>, limit: usize) -> Result<Vec<Asset>>;

    /// Writes an asset in one transaction: `NoParent` when its parent is an asset name
    /// that does not exist; `Exists` when the name is taken and `overwrite` is false;
    /// `NotEmpty` when overwriting an asset that holds others.
    async fn put_asset(&self, asset: Asset, overwrite: bool) -> Result<AssetWrite>;

    /// Removes an asset: `NotFound`, or `NotEmpty` when it holds others.
    async fn delete_asset(&self, name: &str) -> Result<AssetWrite>;

    /// Renames `from` and everything under it to `to`, under `to_parent`, in one
    /// transaction: `NotFound` without `from`, `Exists` when `to` is taken, `NoParent`
    /// without `to_parent`. The caller makes sure `to` is not inside `from`.
    async fn move_asset(&self, from: &str, to: &str, to_parent: &str) -> Result<AssetWrite>;

    /// Up to `limit` assets of every project in name order (bytewise) after `after`, for
    /// copying a store; a parent comes before what it holds.
    async fn scan_assets(&self, after: Option<&str>, limit: usize) -> Result<Vec<Asset>>;
}

/// The project registry (docs/projects.md) and each project's settings.
#[async_trait]
pub trait Projects: Send + Sync + 'static {
    /// A project's `maxConcurrentExports` as set with
    /// [`Projects::set_max_concurrent_exports`]; 0 when never set (the plan maximum
    /// applies).
    async fn max_concurrent_exports(&self, project: &str) -> Result<u64>;

    /// Sets a project's `maxConcurrentExports` (0: back to the plan maximum); the next
    /// lease on any server sharing the store applies it.
    async fn set_max_concurrent_exports(&self, project: &str, value: u64) -> Result<()>;

    /// Adds a project to the registry; false (and nothing written) when it is there.
    async fn register_project(&self, registration: Registration) -> Result<bool>;

    /// Replaces a registered project's entry; false when it is not registered.
    async fn update_project(&self, registration: Registration) -> Result<bool>;

    /// A project's registry entry.
    async fn registration(&self, project: &str) -> Result<Option<Registration>>;

    /// Every registered project, by project id (bytewise).
    async fn registrations(&self) -> Result<Vec<Registration>>;

    /// Removes a project from the registry; false when it was not registered. Its
    /// operations and settings stay.
    async fn unregister_project(&self, project: &str) -> Result<bool>;
}

/// A whole store: every concern, implemented by each backend as one `impl` per trait.
/// `Arc<dyn Store>` upcasts to the part a caller needs (`Arc<dyn Accounts>`, the engine's
/// `Arc<dyn Queue>`, ...).
pub trait Store: Queue + Accounts + Assets + Projects + Schedules {}

impl<T: Queue + Accounts + Assets + Projects + Schedules + ?Sized> Store for T {}
