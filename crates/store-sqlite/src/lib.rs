//! The embedded store: one SQLite database in WAL mode under the data directory.
//!
//! Writes go to one writer thread that commits them in groups: it takes every write that is
//! waiting, runs each in its own savepoint, commits once (an fsync with `synchronous=FULL`),
//! and only then answers each caller. Concurrent writers therefore share one fsync, and an
//! answered write is on disk. Reads use a small pool of connections on blocking threads.
//! The directory is locked while the store is open (`lock`), and its files are private.

mod schema;
mod writer;

use async_trait::async_trait;
use insert::{Counts, insert_one};
use longrun_store::{
    Accounts, Asset, AssetWrite, Assets, Error, Inserted, LeaseQuery, Leasing, ListPage, ListQuery,
    NewOperation, Operations, Projects, Registration, Result, Running, ServiceAccount,
};
use longrun_types::{Name, Operation, Timestamp};
use rusqlite::types::Value as Sql;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use writer::Writer;

mod assets;
mod insert;
mod lease;
mod list;
mod lock;
mod queues;
mod schedules;
mod trees;

pub use lock::{DirLock, LOCK_FILE};

/// Most reader connections; reads beyond this many at once queue for a free one. Each
/// connection keeps its prepared statements and a page cache, so they are kept, not reopened.
const READERS: usize = 8;

#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: Arc<PathBuf>,
    writer: Writer,
    /// Reader connections. A read on a blocking thread holds this pool and the path, never
    /// the store: a read whose caller went away (a request ended by shutdown) cannot keep
    /// the directory's lock past the store's last holder.
    readers: Arc<Mutex<Vec<Connection>>>,
    /// One permit per reader connection.
    reader_permits: tokio::sync::Semaphore,
    /// The project the last lease took from: the next starts after it (fair leasing).
    fair_cursor: Arc<Mutex<String>>,
    /// The directory's lock, released last: after the writer thread has stopped.
    _lock: DirLock,
}

/// A failure as the store reports it: SQLite's full disk, I/O errors (a failed fsync
/// among them), a database it cannot open and lock timeouts are `Unavailable` (nothing was
/// written; the next write tries again), anything else a `Backend` failure.
fn backend<E: std::fmt::Display + 'static>(e: E) -> Error {
    use rusqlite::ErrorCode::{
        CannotOpen, DatabaseBusy, DatabaseLocked, DiskFull, SystemIoFailure,
    };
    let sqlite = (&e as &dyn std::any::Any).downcast_ref::<rusqlite::Error>();
    match sqlite.and_then(rusqlite::Error::sqlite_error_code) {
        Some(DiskFull | SystemIoFailure | CannotOpen | DatabaseBusy | DatabaseLocked) => {
            Error::Unavailable(e.to_string())
        }
        _ => Error::Backend(e.to_string()),
    }
}

fn configure(conn: &Connection, cache_kib: i64) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "case_sensitive_like", true)?;
    conn.pragma_update(None, "cache_size", -cache_kib)?;
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies pending migrations. The
    /// store takes the lock of the file's directory (see [`DirLock`]) and holds it while any
    /// clone of it lives, so one directory has one store open at a time, across processes:
    /// `Unavailable` naming the directory when another holds it. The database and its WAL
    /// and shared-memory files are made readable by their owner only (0600).
    pub fn open(path: &Path) -> Result<SqliteStore> {
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let lock = DirLock::acquire(dir)?;
        lock::private_files(path)?;
        let mut conn = Connection::open(path).map_err(backend)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(backend)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Backend(format!(
                "could not enable WAL (journal mode {mode})"
            )));
        }
        configure(&conn, 16 * 1024).map_err(backend)?;
        schema::migrate(&mut conn).map_err(backend)?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path: Arc::new(path.to_path_buf()),
                writer: Writer::start(conn),
                readers: Arc::new(Mutex::new(Vec::new())),
                reader_permits: tokio::sync::Semaphore::new(READERS),
                fair_cursor: Arc::default(),
                _lock: lock,
            }),
        })
    }

    /// Runs `f` on a reader connection on a blocking thread.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let permit = self.inner.reader_permits.acquire().await.map_err(backend)?;
        let (readers, path) = (self.inner.readers.clone(), self.inner.path.clone());
        let result = tokio::task::spawn_blocking(move || {
            let pooled = readers.lock().expect("reader pool lock").pop();
            let conn = match pooled {
                Some(conn) => conn,
                None => {
                    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                    let conn = Connection::open_with_flags(&*path, flags).map_err(backend)?;
                    configure(&conn, 4 * 1024).map_err(backend)?;
                    conn
                }
            };
            let result = f(&conn);
            readers.lock().expect("reader pool lock").push(conn);
            result
        })
        .await
        .map_err(backend)?;
        drop(permit);
        result
    }

    /// Inserts many new operations (version 1, empty payload) in one transaction, bypassing
    /// the queue limit. For seeding benchmarks.
    pub async fn bulk_load(&self, operations: Vec<Operation>) -> Result<()> {
        let operations = operations
            .into_iter()
            .map(|mut op| {
                op.version = 1;
                (op, serde_json::json!({}))
            })
            .collect();
        self.import(operations).await
    }
}

const INSERT: &str = "INSERT INTO operations (name, project, state, op_type, description, \
    priority, attempt, create_time, update_time, start_time, end_time, error_code, request_id, \
    lease_expire, deadline, cancel_time, version, record, has_children, payload, \
    concurrency_key, retry_of, schedule_time, start_timeout, start_deadline, schedule, parent) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, \
    ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27)";

/// Sets only the columns a change can move: the type, description, priority, create time
/// and request id are fixed at the insert too (`?4`, `?5`, `?6`, `?8`, `?13` are bound and
/// unused). SQLite rewrites the entry of every index on a column an `UPDATE` sets, whether
/// its value changed or not: setting them all cost about 4 times the CPU of this statement.
const UPDATE: &str = "UPDATE operations SET state = ?3, attempt = ?7, update_time = ?9, \
    start_time = ?10, end_time = ?11, error_code = ?12, lease_expire = ?14, deadline = ?15, \
    cancel_time = ?16, version = ?17, record = ?18, has_children = ?19 \
    WHERE name = ?1 AND version = ?20";

/// The indexed columns and the record of one operation, in `INSERT` order. The payload, the
/// concurrency key, the operation retried, the delayed start's columns, the schedule and
/// the parent (the last [`INSERT_ONLY`]) never change after the insert, so `UPDATE` leaves
/// them out.
fn row(op: &Operation, payload: &str) -> Result<Vec<Sql>> {
    longrun_store::storable(op)?;
    let opt = |t: Option<Timestamp>| t.map_or(Sql::Null, |t| Sql::Integer(t.millis()));
    let record = serde_json::to_string(op).map_err(backend)?;
    Ok(vec![
        Sql::Text(op.name.as_str().to_string()),
        Sql::Text(op.name.project().as_str().to_string()),
        Sql::Text(op.state.as_str().to_string()),
        Sql::Text(op.op_type.clone()),
        Sql::Text(op.description.clone()),
        Sql::Integer(op.priority.into()),
        Sql::Integer(op.attempt.into()),
        Sql::Integer(op.create_time.millis()),
        Sql::Integer(op.update_time.millis()),
        opt(op.start_time),
        opt(op.end_time),
        op.error_code()
            .map_or(Sql::Null, |c| Sql::Integer(c.into())),
        op.request_id.clone().map_or(Sql::Null, Sql::Text),
        opt(op.lease.as_ref().map(|l| l.expire_time)),
        opt(op.deadline),
        opt(op.cancel.as_ref().map(|c| c.time)),
        Sql::Integer(op.version),
        Sql::Text(record),
        Sql::Integer(op.has_children.into()),
        Sql::Text(payload.to_string()),
        op.concurrency_key.clone().map_or(Sql::Null, Sql::Text),
        op.retry_of
            .as_ref()
            .map_or(Sql::Null, |n| Sql::Text(n.as_str().to_string())),
        opt(op.schedule_time),
        op.start_timeout_ms.map_or(Sql::Null, Sql::Integer),
        opt(op.start_deadline()),
        op.schedule.clone().map_or(Sql::Null, Sql::Text),
        Sql::Text(
            op.parent
                .as_ref()
                .map_or_else(String::new, |p| p.as_str().to_string()),
        ),
    ])
}

/// How many of [`row`]'s last values only an insert writes.
const INSERT_ONLY: usize = 8;

fn record(text: String) -> Result<Operation> {
    serde_json::from_str(&text).map_err(|e| Error::Backend(format!("corrupt record: {e}")))
}

fn get_record(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Option<Operation>> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.query_row(params, |r| r.get::<_, String>(0)).optional())
        .map_err(backend)?
        .map(record)
        .transpose()
}

#[async_trait]
impl Operations for SqliteStore {
    async fn insert(&self, new: NewOperation) -> Result<Inserted> {
        let payload = serde_json::to_string(&new.payload).map_err(backend)?;
        self.inner
            .writer
            .write(move |conn| {
                let mut counts = Counts::default();
                let inserted = insert_one(conn, new, &payload, &mut counts)?;
                counts.write(conn)?;
                Ok(inserted)
            })
            .await
    }

    async fn insert_batch(&self, batch: Vec<NewOperation>) -> Result<Vec<Inserted>> {
        let payloads = batch
            .iter()
            .map(|new| serde_json::to_string(&new.payload).map_err(backend))
            .collect::<Result<Vec<_>>>()?;
        // One savepoint: an error rolls back every insert before it.
        self.inner
            .writer
            .write_bulk(move |conn| {
                let mut counts = Counts::default();
                let inserted = batch
                    .into_iter()
                    .zip(&payloads)
                    .map(|(new, payload)| insert_one(conn, new, payload, &mut counts))
                    .collect::<Result<Vec<_>>>()?;
                counts.write(conn)?;
                Ok(inserted)
            })
            .await
    }

    async fn get(&self, name: &Name) -> Result<Option<Operation>> {
        let name = name.as_str().to_string();
        self.read(move |conn| {
            get_record(
                conn,
                "SELECT record FROM operations WHERE name = ?1",
                [name],
            )
        })
        .await
    }

    async fn list(&self, query: ListQuery) -> Result<ListPage> {
        list::page(self, query).await
    }

    async fn update(&self, operation: Operation) -> Result<Operation> {
        self.inner
            .writer
            .write(move |conn| write_update(conn, operation))
            .await
    }

    async fn delete(&self, operation: &Operation) -> Result<()> {
        let (name, version) = (operation.name.clone(), operation.version);
        self.inner
            .writer
            .write(move |conn| {
                let changed = conn
                    .prepare_cached("DELETE FROM operations WHERE name = ?1 AND version = ?2")
                    .and_then(|mut s| s.execute(params![name.as_str(), version]))
                    .map_err(backend)?;
                if changed == 1 {
                    return Ok(());
                }
                Err(missing_or_conflict(conn, &name)?)
            })
            .await
    }

    async fn payload(&self, name: &Name) -> Result<Option<serde_json::Value>> {
        let name = name.as_str().to_string();
        self.read(move |conn| {
            conn.prepare_cached("SELECT payload FROM operations WHERE name = ?1")
                .and_then(|mut s| s.query_row([name], |r| r.get::<_, String>(0)).optional())
                .map_err(backend)?
                .map(|text| serde_json::from_str(&text).map_err(backend))
                .transpose()
        })
        .await
    }

    async fn expire(&self, ended_before: Timestamp, limit: usize) -> Result<Vec<Operation>> {
        self.inner
            .writer
            .write_bulk(move |conn| {
                let mut delete = conn
                    .prepare_cached(
                        "DELETE FROM operations WHERE name IN (SELECT name FROM operations \
                         WHERE end_time IS NOT NULL AND end_time < ?1 LIMIT ?2) RETURNING record",
                    )
                    .map_err(backend)?;
                let records = delete
                    .query_map(params![ended_before.millis(), limit as i64], |row| {
                        row.get::<_, String>(0)
                    })
                    .and_then(|rows| rows.collect::<rusqlite::Result<Vec<String>>>())
                    .map_err(backend)?;
                records.into_iter().map(record).collect()
            })
            .await
    }

    async fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<Operation>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT record FROM operations WHERE lease_expire < ?1 UNION \
                     SELECT record FROM operations WHERE deadline < ?1 AND end_time IS NULL UNION \
                     SELECT record FROM operations WHERE start_deadline < ?1 \
                     AND state = 'PENDING' AND start_time IS NULL LIMIT ?2",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![now.millis(), limit as i64], |r| {
                    r.get::<_, String>(0)
                })
                .map_err(backend)?;
            rows.map(|r| record(r.map_err(backend)?)).collect()
        })
        .await
    }

    async fn scan(
        &self,
        after: Option<&Name>,
        limit: usize,
    ) -> Result<Vec<(Operation, serde_json::Value)>> {
        let after = after.map(|n| n.as_str().to_string()).unwrap_or_default();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT record, payload FROM operations WHERE name > ?1 ORDER BY name LIMIT ?2",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![after, limit as i64], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(backend)?;
            rows.map(|r| {
                let (text, payload) = r.map_err(backend)?;
                Ok((
                    record(text)?,
                    serde_json::from_str(&payload).map_err(backend)?,
                ))
            })
            .collect()
        })
        .await
    }

    async fn import(&self, operations: Vec<(Operation, serde_json::Value)>) -> Result<()> {
        self.inner
            .writer
            .write_bulk(move |conn| {
                let mut stmt = conn.prepare_cached(INSERT).map_err(backend)?;
                let mut counts = Counts::default();
                for (op, payload) in operations {
                    let payload = serde_json::to_string(&payload).map_err(backend)?;
                    match stmt.execute(rusqlite::params_from_iter(row(&op, &payload)?)) {
                        Ok(_) => counts.inserted(conn, &op)?,
                        Err(rusqlite::Error::SqliteFailure(e, _))
                            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
                        {
                            return Err(Error::AlreadyExists(op.name));
                        }
                        Err(e) => return Err(backend(e)),
                    }
                    if op.cascades() {
                        conn.prepare_cached("INSERT OR IGNORE INTO cascades (name) VALUES (?1)")
                            .and_then(|mut s| s.execute([op.name.as_str()]))
                            .map_err(backend)?;
                    }
                }
                counts.write(conn)
            })
            .await
    }
}

#[async_trait]
impl Leasing for SqliteStore {
    async fn lease(&self, query: LeaseQuery) -> Result<Vec<(Operation, serde_json::Value)>> {
        longrun_store::storable_types(&query.types)?;
        if query.types.is_empty()
            || query.limit == 0
            || query.projects.as_ref().is_some_and(Vec::is_empty)
        {
            return Ok(Vec::new());
        }
        let cursor = self.inner.fair_cursor.clone();
        self.inner
            .writer
            .write(move |conn| lease::lease(conn, &query, &cursor))
            .await
    }

    async fn running(&self, project: &str, op_type: &str, key: Option<&str>) -> Result<Running> {
        let (project, op_type) = (project.to_string(), op_type.to_string());
        let key = key.map(str::to_string);
        self.read(move |conn| lease::running(conn, &project, &op_type, key.as_deref()))
            .await
    }

    async fn next_scheduled(&self, after: Timestamp) -> Result<Option<Timestamp>> {
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT min(schedule_time) FROM operations WHERE state = 'PENDING' \
                 AND schedule_time IS NOT NULL AND schedule_time > ?1",
            )
            .and_then(|mut s| s.query_row([after.millis()], |r| r.get::<_, Option<i64>>(0)))
            .map(|t| t.map(Timestamp))
            .map_err(backend)
        })
        .await
    }
}

#[async_trait]
impl Accounts for SqliteStore {
    async fn create_account(&self, a: ServiceAccount) -> Result<bool> {
        longrun_store::storable_account(&a)?;
        self.inner
            .writer
            .write(move |conn| {
                conn.execute(
                    "INSERT OR IGNORE INTO service_accounts (email, project, key_id, \
                     public_key_pem, disabled, create_time) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        a.email,
                        a.project,
                        a.key_id,
                        a.public_key_pem,
                        a.disabled,
                        a.create_time.millis()
                    ],
                )
                .map(|n| n == 1)
                .map_err(backend)
            })
            .await
    }

    async fn account(&self, email: &str) -> Result<Option<ServiceAccount>> {
        let email = email.to_string();
        self.read(move |conn| {
            conn.query_row(&format!("{ACCOUNTS} WHERE email = ?1"), [email], account)
                .optional()
                .map_err(backend)
        })
        .await
    }

    async fn accounts(&self) -> Result<Vec<ServiceAccount>> {
        self.read(|conn| {
            let mut statement = conn
                .prepare(&format!("{ACCOUNTS} ORDER BY email"))
                .map_err(backend)?;
            let rows = statement.query_map([], account).map_err(backend)?;
            rows.collect::<rusqlite::Result<_>>().map_err(backend)
        })
        .await
    }

    async fn set_account_disabled(&self, email: &str, disabled: bool) -> Result<bool> {
        let email = email.to_string();
        self.inner
            .writer
            .write(move |conn| {
                conn.execute(
                    "UPDATE service_accounts SET disabled = ?2 WHERE email = ?1",
                    params![email, disabled],
                )
                .map(|n| n == 1)
                .map_err(backend)
            })
            .await
    }

    async fn delete_account(&self, email: &str) -> Result<bool> {
        let email = email.to_string();
        self.inner
            .writer
            .write(move |conn| {
                conn.execute("DELETE FROM service_accounts WHERE email = ?1", [email])
                    .map(|n| n == 1)
                    .map_err(backend)
            })
            .await
    }
}

#[async_trait]
impl Assets for SqliteStore {
    async fn asset(&self, name: &str) -> Result<Option<Asset>> {
        let name = name.to_string();
        self.read(move |conn| assets::get(conn, &name)).await
    }

    async fn assets(&self, parent: &str, after: Option<&str>, limit: usize) -> Result<Vec<Asset>> {
        let (parent, after) = (parent.to_string(), after.unwrap_or("").to_string());
        self.read(move |conn| assets::children(conn, &parent, &after, limit))
            .await
    }

    async fn put_asset(&self, asset: Asset, overwrite: bool) -> Result<AssetWrite> {
        self.inner
            .writer
            .write(move |conn| assets::put(conn, &asset, overwrite))
            .await
    }

    async fn delete_asset(&self, name: &str) -> Result<AssetWrite> {
        let name = name.to_string();
        self.inner
            .writer
            .write(move |conn| assets::delete(conn, &name))
            .await
    }

    async fn move_asset(&self, from: &str, to: &str, to_parent: &str) -> Result<AssetWrite> {
        let (from, to, to_parent) = (from.to_string(), to.to_string(), to_parent.to_string());
        self.inner
            .writer
            .write_bulk(move |conn| assets::rename(conn, &from, &to, &to_parent))
            .await
    }

    async fn scan_assets(&self, after: Option<&str>, limit: usize) -> Result<Vec<Asset>> {
        let after = after.unwrap_or("").to_string();
        self.read(move |conn| assets::scan(conn, &after, limit))
            .await
    }
}

#[async_trait]
impl Projects for SqliteStore {
    async fn max_concurrent_exports(&self, project: &str) -> Result<u64> {
        let project = project.to_string();
        self.read(move |conn| own_export_cap(conn, &project)).await
    }

    async fn set_max_concurrent_exports(&self, project: &str, value: u64) -> Result<()> {
        longrun_store::storable_text("project", project)?;
        let project = project.to_string();
        let value = i64::try_from(value).unwrap_or(i64::MAX);
        self.inner
            .writer
            .write(move |conn| {
                conn.execute(
                    "INSERT INTO project_configs (project, max_concurrent_exports) VALUES (?1, ?2) \
                     ON CONFLICT (project) DO UPDATE SET max_concurrent_exports = excluded.max_concurrent_exports",
                    params![project, value],
                )
                .map(drop)
                .map_err(backend)
            })
            .await
    }

    async fn register_project(&self, r: Registration) -> Result<bool> {
        longrun_store::storable_registration(&r)?;
        self.inner
            .writer
            .write(move |conn| {
                conn.execute(
                    "INSERT INTO project_registry (project, commercial, registered_on, \
                     eligibility_verified) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (project) DO NOTHING",
                    params![r.project, r.commercial, r.registered_on, r.eligibility_verified],
                )
                .map(|n| n == 1)
                .map_err(backend)
            })
            .await
    }

    async fn update_project(&self, r: Registration) -> Result<bool> {
        longrun_store::storable_registration(&r)?;
        self.inner
            .writer
            .write(move |conn| {
                conn.execute(
                    "UPDATE project_registry SET commercial = ?2, registered_on = ?3, \
                     eligibility_verified = ?4 WHERE project = ?1",
                    params![
                        r.project,
                        r.commercial,
                        r.registered_on,
                        r.eligibility_verified
                    ],
                )
                .map(|n| n == 1)
                .map_err(backend)
            })
            .await
    }

    async fn registration(&self, project: &str) -> Result<Option<Registration>> {
        let project = project.to_string();
        self.read(move |conn| {
            conn.query_row(
                &format!("{REGISTRY} WHERE project = ?1"),
                [project],
                registration,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn registrations(&self) -> Result<Vec<Registration>> {
        self.read(|conn| {
            let mut statement = conn
                .prepare(&format!("{REGISTRY} ORDER BY project"))
                .map_err(backend)?;
            let rows = statement.query_map([], registration).map_err(backend)?;
            rows.collect::<rusqlite::Result<_>>().map_err(backend)
        })
        .await
    }

    async fn unregister_project(&self, project: &str) -> Result<bool> {
        let project = project.to_string();
        self.inner
            .writer
            .write(move |conn| {
                conn.execute("DELETE FROM project_registry WHERE project = ?1", [project])
                    .map(|n| n == 1)
                    .map_err(backend)
            })
            .await
    }
}

/// The compare-and-set write of `op` over the stored version `op.version`.
const ACCOUNTS: &str = "SELECT email, project, key_id, public_key_pem, disabled, create_time \
    FROM service_accounts";

fn account(row: &rusqlite::Row) -> rusqlite::Result<ServiceAccount> {
    Ok(ServiceAccount {
        email: row.get(0)?,
        project: row.get(1)?,
        key_id: row.get(2)?,
        public_key_pem: row.get(3)?,
        disabled: row.get(4)?,
        create_time: Timestamp(row.get(5)?),
    })
}

fn write_update(conn: &Connection, mut op: Operation) -> Result<Operation> {
    let expected = op.version;
    op.version += 1;
    let mut values = row(&op, "")?;
    values.truncate(values.len() - INSERT_ONLY); // they never change
    values.push(Sql::Integer(expected));
    let changed = conn
        .prepare_cached(UPDATE)
        .and_then(|mut s| s.execute(rusqlite::params_from_iter(values)))
        .map_err(backend)?;
    if changed == 1 {
        return Ok(op);
    }
    Err(missing_or_conflict(conn, &op.name)?)
}

/// After a conditional write changed nothing: was the row missing, or newer?
fn missing_or_conflict(conn: &Connection, name: &Name) -> Result<Error> {
    let exists: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM operations WHERE name = ?1)")
        .and_then(|mut s| s.query_row([name.as_str()], |r| r.get(0)))
        .map_err(backend)?;
    Ok(if exists {
        Error::Conflict
    } else {
        Error::NotFound
    })
}

/// A project's own `max_concurrent_exports` (0: unset).
fn own_export_cap(conn: &Connection, project: &str) -> Result<u64> {
    let own: Option<i64> = conn
        .prepare_cached("SELECT max_concurrent_exports FROM project_configs WHERE project = ?1")
        .and_then(|mut s| s.query_row([project], |r| r.get(0)).optional())
        .map_err(backend)?;
    Ok(own.map_or(0, |n| n.max(0) as u64))
}

const REGISTRY: &str = "SELECT project, commercial, registered_on, eligibility_verified \
                        FROM project_registry";

fn registration(row: &rusqlite::Row) -> rusqlite::Result<Registration> {
    Ok(Registration {
        project: row.get(0)?,
        commercial: row.get(1)?,
        registered_on: row.get(2)?,
        eligibility_verified: row.get(3)?,
    })
}
