//! The PostgreSQL store, for several servers on one database. Inserts and updates are
//! gathered into shared transactions (`batch`); the queue limit and the running limit are
//! exact across servers thanks to per-project advisory locks, and leasing uses
//! `FOR UPDATE SKIP LOCKED` so no operation is handed out twice.

mod assets;
mod batch;
mod lease;
mod list;
mod listen;
mod queues;
mod schedules;
mod schema;
#[cfg(feature = "testing")]
pub mod testing;
mod trees;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod};
use longrun_store::{
    Accounts, Asset, AssetWrite, Assets, Error, Inserted, LeaseQuery, Leasing, ListPage, ListQuery,
    NewOperation, Operations, Projects, Registration, Result, Running, ServiceAccount,
};
use longrun_types::{Name, Operation, Timestamp};
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

type Param = Box<dyn ToSql + Sync + Send>;

#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    writes: batch::Writers,
    /// Fed by the LISTEN connection; it stops once every store handle is gone.
    signals: std::sync::Arc<tokio::sync::broadcast::Sender<longrun_store::Signal>>,
    /// The project this server's last lease took from: the next starts after it (fair
    /// leasing; each server keeps its own).
    fair_cursor: std::sync::Arc<std::sync::Mutex<String>>,
}

fn backend(e: impl std::fmt::Display) -> Error {
    Error::Backend(e.to_string())
}

/// PostgreSQL errors say "db error" unless asked for the server's message. A full disk or
/// other lack of resources (SQLSTATE class 53), an I/O error (58030), a connection lost or
/// refused (class 08, 57P01..57P03) make the store `Unavailable`: nothing was done, and a
/// retry may succeed.
fn pg(e: tokio_postgres::Error) -> Error {
    match e.as_db_error() {
        Some(db) => {
            let code = db.code().code();
            let message = format!("{code}: {}", db.message());
            match code {
                _ if code.starts_with("53") || code.starts_with("08") => {
                    Error::Unavailable(message)
                }
                "58030" | "57P01" | "57P02" | "57P03" => Error::Unavailable(message),
                _ => Error::Backend(message),
            }
        }
        None if e.is_closed() => Error::Unavailable(e.to_string()),
        None => backend(e),
    }
}

/// How long a call waits for a connection while the database refuses new ones because it
/// has too many (SQLSTATE 53300: its `max_connections` or the role's connection limit).
const REFUSED_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// A connection from `pool`. When the database refuses a new one because it has too many
/// connections, the call waits (backing off from 5 ms to 100 ms, at most [`REFUSED_WAIT`])
/// for one to come back to the pool or for the database to take another, rather than failing
/// at once: with several servers on one database, a burst on one would otherwise answer 503
/// while connections free up elsewhere. Errors: `Unavailable` when the database does not
/// answer, or still refuses after the wait.
pub(crate) async fn connection(pool: &Pool) -> Result<deadpool_postgres::Object> {
    let deadline = tokio::time::Instant::now() + REFUSED_WAIT;
    let mut pause = std::time::Duration::from_millis(5);
    loop {
        match pool.get().await {
            Ok(client) => return Ok(client),
            Err(deadpool_postgres::PoolError::Backend(e))
                if e.code() == Some(&tokio_postgres::error::SqlState::TOO_MANY_CONNECTIONS)
                    && tokio::time::Instant::now() + pause < deadline =>
            {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_millis(100));
            }
            Err(deadpool_postgres::PoolError::Backend(e)) => {
                return Err(match pg(e) {
                    Error::Backend(message) => Error::Unavailable(message),
                    unavailable => unavailable,
                });
            }
            Err(e) => return Err(Error::Unavailable(e.to_string())),
        }
    }
}

/// Connections kept by each server.
const POOL_SIZE: usize = 16;

impl PostgresStore {
    /// Connects to `url` (`postgres://user@host/db`) and applies pending migrations.
    pub async fn connect(url: &str) -> Result<PostgresStore> {
        let config: tokio_postgres::Config = url.parse().map_err(backend)?;
        PostgresStore::connect_with(config).await
    }

    pub async fn connect_with(config: tokio_postgres::Config) -> Result<PostgresStore> {
        let listen_config = config.clone();
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .build()
            .map_err(backend)?;
        let mut client = connection(&pool).await?;
        schema::migrate(&mut client).await.map_err(pg)?;
        let signals = std::sync::Arc::new(tokio::sync::broadcast::channel(4096).0);
        tokio::spawn(listen::run(
            listen_config,
            std::sync::Arc::downgrade(&signals),
        ));
        tokio::spawn(queues::fold(
            pool.clone(),
            std::sync::Arc::downgrade(&signals),
        ));
        let writes = batch::Writers::start(&pool);
        Ok(PostgresStore {
            pool,
            writes,
            signals,
            fair_cursor: Default::default(),
        })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        connection(&self.pool).await
    }
}

const INSERT: &str = "INSERT INTO operations (name, project, state, op_type, description, \
    priority, attempt, create_time, update_time, start_time, end_time, error_code, request_id, \
    lease_expire, deadline, cancel_time, version, record, has_children, payload, concurrency_key, \
    retry_of, schedule_time, start_timeout, start_deadline, schedule, parent) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, \
    $20, $21, $22, $23, $24, $25, $26, $27)";

const UPDATE: &str = "UPDATE operations SET project = $2, state = $3, op_type = $4, description = $5, \
    priority = $6, attempt = $7, create_time = $8, update_time = $9, start_time = $10, \
    end_time = $11, error_code = $12, request_id = $13, lease_expire = $14, deadline = $15, \
    cancel_time = $16, version = $17, record = $18, has_children = $19 \
    WHERE name = $1 AND version = $20";

/// The indexed copies of an operation's fields and its record, in the table's column order.
/// They are derived here and nowhere else: single writes box them (`row`), batches gather
/// them into arrays (`batch::Rows`). `concurrency_key`, `retry_of`, the delayed start's
/// columns, `schedule` and `parent` are written by inserts only: no update changes them.
pub(crate) struct Columns {
    pub name: String,
    pub project: String,
    pub state: &'static str,
    pub op_type: String,
    pub description: String,
    pub priority: i64,
    pub attempt: i64,
    pub create_time: i64,
    pub update_time: i64,
    pub start_time: Option<i64>,
    pub end_time: Option<i64>,
    pub error_code: Option<i64>,
    pub request_id: Option<String>,
    pub lease_expire: Option<i64>,
    pub deadline: Option<i64>,
    pub cancel_time: Option<i64>,
    pub version: i64,
    pub record: String,
    pub has_children: bool,
    pub concurrency_key: Option<String>,
    pub retry_of: Option<String>,
    pub schedule_time: Option<i64>,
    pub start_timeout: Option<i64>,
    pub start_deadline: Option<i64>,
    pub schedule: Option<String>,
    /// `""` for an operation without a parent.
    pub parent: String,
}

impl Columns {
    pub fn of(op: &Operation) -> Result<Columns> {
        longrun_store::storable(op)?;
        let opt = |t: Option<Timestamp>| t.map(Timestamp::millis);
        Ok(Columns {
            name: op.name.as_str().to_string(),
            project: op.name.project().as_str().to_string(),
            state: op.state.as_str(),
            op_type: op.op_type.clone(),
            description: op.description.clone(),
            priority: i64::from(op.priority),
            attempt: i64::from(op.attempt),
            create_time: op.create_time.millis(),
            update_time: op.update_time.millis(),
            start_time: opt(op.start_time),
            end_time: opt(op.end_time),
            error_code: op.error_code().map(i64::from),
            request_id: op.request_id.clone(),
            lease_expire: opt(op.lease.as_ref().map(|l| l.expire_time)),
            deadline: opt(op.deadline),
            cancel_time: opt(op.cancel.as_ref().map(|c| c.time)),
            version: op.version,
            record: serde_json::to_string(op).map_err(backend)?,
            has_children: op.has_children,
            concurrency_key: op.concurrency_key.clone(),
            retry_of: op.retry_of.as_ref().map(|n| n.as_str().to_string()),
            schedule_time: opt(op.schedule_time),
            start_timeout: op.start_timeout_ms,
            start_deadline: opt(op.start_deadline()),
            schedule: op.schedule.clone(),
            parent: op
                .parent
                .as_ref()
                .map_or_else(String::new, |p| p.as_str().to_string()),
        })
    }
}

/// The parameters of `INSERT`: the columns of one operation, then its payload, its
/// concurrency key, the operation it retries, its delayed start's columns, its schedule and
/// its parent (the last [`INSERT_ONLY`], which `UPDATE` leaves out: none ever changes).
fn row(op: &Operation, payload: &str) -> Result<Vec<Param>> {
    let c = Columns::of(op)?;
    Ok(vec![
        Box::new(c.name),
        Box::new(c.project),
        Box::new(c.state),
        Box::new(c.op_type),
        Box::new(c.description),
        Box::new(c.priority),
        Box::new(c.attempt),
        Box::new(c.create_time),
        Box::new(c.update_time),
        Box::new(c.start_time),
        Box::new(c.end_time),
        Box::new(c.error_code),
        Box::new(c.request_id),
        Box::new(c.lease_expire),
        Box::new(c.deadline),
        Box::new(c.cancel_time),
        Box::new(c.version),
        Box::new(c.record),
        Box::new(c.has_children),
        Box::new(payload.to_string()),
        Box::new(c.concurrency_key),
        Box::new(c.retry_of),
        Box::new(c.schedule_time),
        Box::new(c.start_timeout),
        Box::new(c.start_deadline),
        Box::new(c.schedule),
        Box::new(c.parent),
    ])
}

/// How many of [`row`]'s last parameters only an insert writes.
const INSERT_ONLY: usize = 8;

fn refs(params: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

fn record(row: &Row) -> Result<Operation> {
    parse_record(&row.get::<_, String>(0))
}

fn parse_record(text: &str) -> Result<Operation> {
    serde_json::from_str(text).map_err(|e| Error::Backend(format!("corrupt record: {e}")))
}

/// The compare-and-set write of `op` over the stored version `op.version`: the operation as
/// stored, or `None` when no row had that version.
async fn write_update(client: &impl GenericClient, op: &Operation) -> Result<Option<Operation>> {
    let mut op = op.clone();
    let expected = op.version;
    op.version += 1;
    let mut values = row(&op, "")?;
    values.truncate(values.len() - INSERT_ONLY); // they never change
    values.push(Box::new(expected));
    let statement = client.prepare_cached(UPDATE).await.map_err(pg)?;
    let changed = client
        .execute(&statement, &refs(&values))
        .await
        .map_err(pg)?;
    Ok((changed == 1).then_some(op))
}

const ACCOUNTS: &str = "SELECT email, project, key_id, public_key_pem, disabled, create_time \
    FROM service_accounts";

fn account(row: &Row) -> ServiceAccount {
    ServiceAccount {
        email: row.get(0),
        project: row.get(1),
        key_id: row.get(2),
        public_key_pem: row.get(3),
        disabled: row.get(4),
        create_time: Timestamp(row.get(5)),
    }
}

/// After a conditional write changed nothing: was the row missing, or newer?
async fn missing_or_conflict(client: &impl GenericClient, name: &Name) -> Result<Error> {
    let exists: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM operations WHERE name = $1)",
            &[&name.as_str()],
        )
        .await
        .map_err(pg)?
        .get(0);
    Ok(if exists {
        Error::Conflict
    } else {
        Error::NotFound
    })
}

/// A read-only transaction whose reads all see one snapshot (REPEATABLE READ).
pub(crate) async fn snapshot(
    client: &mut deadpool_postgres::Object,
) -> Result<deadpool_postgres::Transaction<'_>> {
    client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(pg)
}

/// Rewrites the `?` placeholders of the shared filter translation as `$first`, `$first+1`, …
fn numbered(sql: &str, first: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = first;
    for c in sql.chars() {
        if c == '?' {
            out.push_str(&format!("${n}"));
            n += 1;
        } else {
            out.push(c);
        }
    }
    out
}

#[async_trait]
impl Operations for PostgresStore {
    fn subscribe(&self) -> Option<tokio::sync::broadcast::Receiver<longrun_store::Signal>> {
        Some(self.signals.subscribe())
    }

    async fn shared_secret(&self, candidate: Vec<u8>) -> Result<Vec<u8>> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO longrun_secret (secret) VALUES ($1) ON CONFLICT (id) DO NOTHING",
                &[&candidate],
            )
            .await
            .map_err(pg)?;
        let row = client
            .query_one("SELECT secret FROM longrun_secret", &[])
            .await
            .map_err(pg)?;
        Ok(row.get(0))
    }

    async fn insert(&self, new: NewOperation) -> Result<Inserted> {
        self.writes.insert(new).await
    }

    /// One `longrun_insert` call in a transaction of its own, committed only when every
    /// item was inserted or found by its request id.
    async fn insert_batch(&self, batch: Vec<NewOperation>) -> Result<Vec<Inserted>> {
        use batch::Batch;
        let mut client = self.client().await?;
        // Rolled back when dropped: an error, or a caller gone, writes nothing.
        let tx = client.transaction().await.map_err(pg)?;
        let inserted = NewOperation::write(&tx, &batch)
            .await?
            .into_iter()
            .collect::<Result<Vec<_>>>()?;
        tx.commit().await.map_err(pg)?;
        Ok(inserted)
    }

    async fn get(&self, name: &Name) -> Result<Option<Operation>> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT record FROM operations WHERE name = $1")
            .await
            .map_err(pg)?;
        let row = client
            .query_opt(&statement, &[&name.as_str()])
            .await
            .map_err(pg)?;
        row.as_ref().map(record).transpose()
    }

    async fn list(&self, query: ListQuery) -> Result<ListPage> {
        list::page(&mut self.client().await?, query).await
    }

    async fn update(&self, operation: Operation) -> Result<Operation> {
        self.writes.update(operation).await
    }

    async fn delete(&self, operation: &Operation) -> Result<()> {
        let (name, version) = (&operation.name, operation.version);
        let client = self.client().await?;
        let changed = client
            .execute(
                "DELETE FROM operations WHERE name = $1 AND version = $2",
                &[&name.as_str(), &version],
            )
            .await
            .map_err(pg)?;
        if changed == 1 {
            return Ok(());
        }
        Err(missing_or_conflict(&client, name).await?)
    }

    async fn payload(&self, name: &Name) -> Result<Option<serde_json::Value>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT payload FROM operations WHERE name = $1",
                &[&name.as_str()],
            )
            .await
            .map_err(pg)?;
        row.map(|r| serde_json::from_str(&r.get::<_, String>(0)).map_err(backend))
            .transpose()
    }

    async fn expire(&self, ended_before: Timestamp, limit: usize) -> Result<Vec<Operation>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "DELETE FROM operations WHERE name IN (SELECT name FROM operations \
                 WHERE end_time IS NOT NULL AND end_time < $1 LIMIT $2) RETURNING record",
                &[&ended_before.millis(), &(limit as i64)],
            )
            .await
            .map_err(pg)?;
        rows.iter().map(record).collect()
    }

    async fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<Operation>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT record FROM operations WHERE lease_expire < $1 UNION \
                 SELECT record FROM operations WHERE deadline < $1 AND end_time IS NULL UNION \
                 SELECT record FROM operations WHERE start_deadline < $1 \
                 AND state = 'PENDING' AND start_time IS NULL LIMIT $2",
                &[&now.millis(), &(limit as i64)],
            )
            .await
            .map_err(pg)?;
        rows.iter().map(record).collect()
    }

    async fn scan(
        &self,
        after: Option<&Name>,
        limit: usize,
    ) -> Result<Vec<(Operation, serde_json::Value)>> {
        let after = after.map(|n| n.as_str().to_string()).unwrap_or_default();
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT record, payload FROM operations WHERE name > $1 ORDER BY name LIMIT $2",
                &[&after, &(limit as i64)],
            )
            .await
            .map_err(pg)?;
        rows.iter()
            .map(|r| {
                Ok((
                    record(r)?,
                    serde_json::from_str(&r.get::<_, String>(1)).map_err(backend)?,
                ))
            })
            .collect()
    }

    async fn import(&self, operations: Vec<(Operation, serde_json::Value)>) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        for (op, payload) in operations {
            let payload = serde_json::to_string(&payload).map_err(backend)?;
            if let Err(e) = tx.execute(INSERT, &refs(&row(&op, &payload)?)).await {
                if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
                    return Err(Error::AlreadyExists(op.name));
                }
                return Err(pg(e));
            }
            if op.cascades() {
                tx.execute(
                    "INSERT INTO cascades (name) VALUES ($1) ON CONFLICT DO NOTHING",
                    &[&op.name.as_str()],
                )
                .await
                .map_err(pg)?;
            }
        }
        tx.commit().await.map_err(pg)
    }
}

#[async_trait]
impl Leasing for PostgresStore {
    async fn lease(&self, query: LeaseQuery) -> Result<Vec<(Operation, serde_json::Value)>> {
        longrun_store::storable_types(&query.types)?;
        if query.types.is_empty() || query.limit == 0 {
            return Ok(Vec::new());
        }
        let mut client = self.client().await?;
        lease::lease(&mut client, &query, &self.fair_cursor).await
    }

    async fn running(&self, project: &str, op_type: &str, key: Option<&str>) -> Result<Running> {
        lease::running(&self.client().await?, project, op_type, key).await
    }

    async fn next_scheduled(&self, after: Timestamp) -> Result<Option<Timestamp>> {
        let client = self.client().await?;
        let next = client
            .prepare_cached(
                "SELECT min(schedule_time) FROM operations WHERE state = 'PENDING' \
                 AND schedule_time IS NOT NULL AND schedule_time > $1",
            )
            .await
            .map_err(pg)?;
        let row = client
            .query_one(&next, &[&after.millis()])
            .await
            .map_err(pg)?;
        Ok(row.get::<_, Option<i64>>(0).map(Timestamp))
    }

    async fn clock(&self) -> Result<Option<Timestamp>> {
        let row = self
            .client()
            .await?
            .query_one(
                "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::int8",
                &[],
            )
            .await
            .map_err(pg)?;
        Ok(Some(Timestamp(row.get(0))))
    }
}

#[async_trait]
impl Accounts for PostgresStore {
    async fn create_account(&self, a: ServiceAccount) -> Result<bool> {
        longrun_store::storable_account(&a)?;
        let client = self.client().await?;
        let created = client
            .execute(
                "INSERT INTO service_accounts (email, project, key_id, public_key_pem, disabled, \
                 create_time) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (email) DO NOTHING",
                &[
                    &a.email,
                    &a.project,
                    &a.key_id,
                    &a.public_key_pem,
                    &a.disabled,
                    &a.create_time.millis(),
                ],
            )
            .await
            .map_err(pg)?;
        Ok(created == 1)
    }

    async fn account(&self, email: &str) -> Result<Option<ServiceAccount>> {
        let client = self.client().await?;
        let row = client
            .query_opt(&format!("{ACCOUNTS} WHERE email = $1"), &[&email])
            .await
            .map_err(pg)?;
        Ok(row.as_ref().map(account))
    }

    async fn accounts(&self) -> Result<Vec<ServiceAccount>> {
        let client = self.client().await?;
        let rows = client
            .query(&format!("{ACCOUNTS} ORDER BY email"), &[])
            .await
            .map_err(pg)?;
        Ok(rows.iter().map(account).collect())
    }

    async fn set_account_disabled(&self, email: &str, disabled: bool) -> Result<bool> {
        let client = self.client().await?;
        let changed = client
            .execute(
                "UPDATE service_accounts SET disabled = $2 WHERE email = $1",
                &[&email, &disabled],
            )
            .await
            .map_err(pg)?;
        Ok(changed == 1)
    }

    async fn delete_account(&self, email: &str) -> Result<bool> {
        let client = self.client().await?;
        let changed = client
            .execute("DELETE FROM service_accounts WHERE email = $1", &[&email])
            .await
            .map_err(pg)?;
        Ok(changed == 1)
    }
}

#[async_trait]
impl Assets for PostgresStore {
    async fn asset(&self, name: &str) -> Result<Option<Asset>> {
        assets::get(&self.client().await?, name).await
    }

    async fn assets(&self, parent: &str, after: Option<&str>, limit: usize) -> Result<Vec<Asset>> {
        assets::children(&self.client().await?, parent, after.unwrap_or(""), limit).await
    }

    async fn put_asset(&self, asset: Asset, overwrite: bool) -> Result<AssetWrite> {
        assets::put(&mut self.client().await?, &asset, overwrite).await
    }

    async fn delete_asset(&self, name: &str) -> Result<AssetWrite> {
        assets::delete(&mut self.client().await?, name).await
    }

    async fn move_asset(&self, from: &str, to: &str, to_parent: &str) -> Result<AssetWrite> {
        assets::rename(&mut self.client().await?, from, to, to_parent).await
    }

    async fn scan_assets(&self, after: Option<&str>, limit: usize) -> Result<Vec<Asset>> {
        assets::scan(&self.client().await?, after.unwrap_or(""), limit).await
    }
}

#[async_trait]
impl Projects for PostgresStore {
    async fn max_concurrent_exports(&self, project: &str) -> Result<u64> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT max_concurrent_exports FROM project_configs WHERE project = $1",
                &[&project],
            )
            .await
            .map_err(pg)?;
        Ok(row.map_or(0, |r| r.get::<_, i64>(0).max(0) as u64))
    }

    async fn set_max_concurrent_exports(&self, project: &str, value: u64) -> Result<()> {
        longrun_store::storable_text("project", project)?;
        let value = i64::try_from(value).unwrap_or(i64::MAX);
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO project_configs (project, max_concurrent_exports) VALUES ($1, $2) \
                 ON CONFLICT (project) DO UPDATE SET max_concurrent_exports = EXCLUDED.max_concurrent_exports",
                &[&project, &value],
            )
            .await
            .map_err(pg)?;
        Ok(())
    }

    async fn register_project(&self, r: Registration) -> Result<bool> {
        longrun_store::storable_registration(&r)?;
        let client = self.client().await?;
        let n = client
            .execute(
                "INSERT INTO project_registry (project, commercial, registered_on, \
                 eligibility_verified) VALUES ($1, $2, $3, $4) ON CONFLICT (project) DO NOTHING",
                &[
                    &r.project,
                    &r.commercial,
                    &r.registered_on,
                    &r.eligibility_verified,
                ],
            )
            .await
            .map_err(pg)?;
        Ok(n == 1)
    }

    async fn update_project(&self, r: Registration) -> Result<bool> {
        longrun_store::storable_registration(&r)?;
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE project_registry SET commercial = $2, registered_on = $3, \
                 eligibility_verified = $4 WHERE project = $1",
                &[
                    &r.project,
                    &r.commercial,
                    &r.registered_on,
                    &r.eligibility_verified,
                ],
            )
            .await
            .map_err(pg)?;
        Ok(n == 1)
    }

    async fn registration(&self, project: &str) -> Result<Option<Registration>> {
        longrun_store::storable_text("project", project)?;
        let client = self.client().await?;
        let row = client
            .query_opt(&format!("{REGISTRY} WHERE project = $1"), &[&project])
            .await
            .map_err(pg)?;
        Ok(row.as_ref().map(registration))
    }

    async fn registrations(&self) -> Result<Vec<Registration>> {
        let client = self.client().await?;
        let rows = client
            .query(&format!("{REGISTRY} ORDER BY project"), &[])
            .await
            .map_err(pg)?;
        Ok(rows.iter().map(registration).collect())
    }

    async fn unregister_project(&self, project: &str) -> Result<bool> {
        longrun_store::storable_text("project", project)?;
        let client = self.client().await?;
        let n = client
            .execute(
                "DELETE FROM project_registry WHERE project = $1",
                &[&project],
            )
            .await
            .map_err(pg)?;
        Ok(n == 1)
    }
}

const REGISTRY: &str = "SELECT project, commercial, registered_on, eligibility_verified \
                        FROM project_registry";

fn registration(row: &tokio_postgres::Row) -> Registration {
    Registration {
        project: row.get(0),
        commercial: row.get(1),
        registered_on: row.get(2),
        eligibility_verified: row.get(3),
    }
}
