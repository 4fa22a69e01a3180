//! A fresh schema in the test database, for a store or for servers to share: every test
//! on PostgreSQL runs in a schema of its own, named after the process, so that tests and
//! test runs side by side never meet. Behind the `testing` feature; the test kit
//! (`longrun_testkit::postgres`) hands it on to every suite.

use std::sync::atomic::{AtomicUsize, Ordering};
use tokio_postgres::NoTls;

/// The variable naming the test database; without it PostgreSQL tests skip.
pub const DATABASE_URL: &str = "LONGRUN_TEST_DATABASE_URL";

/// A schema of its own in a database, dropped with everything in it when the value is
/// dropped (or by [`Schema::remove`], which reports a failure). Every connection made
/// through [`Schema::url`] or [`Schema::config`] carries the schema's name as its
/// `application_name`, so that the drop can end the ones still open first: a test that
/// panics drops the schema while its servers' connections may be inside a transaction on
/// the test's (now blocked) runtime, and a `DROP SCHEMA` waiting on their locks would hang
/// the test binary for good.
pub struct Schema {
    admin: tokio_postgres::Client,
    database_url: String,
    name: String,
    url: String,
    removed: bool,
}

impl Schema {
    /// A fresh schema `longrun_<tag>_<pid>_<n>` in the test database
    /// (`LONGRUN_TEST_DATABASE_URL`); `None`, with a notice, when that is not set.
    pub async fn create(tag: &str) -> Option<Schema> {
        let Ok(url) = std::env::var(DATABASE_URL) else {
            eprintln!("skipped: set {DATABASE_URL} to run the tests on PostgreSQL");
            return None;
        };
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "longrun_{tag}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        Some(Schema::create_in(&url, &name).await.unwrap())
    }

    /// Creates the schema `name` in the database at `database_url`, replacing a leftover of
    /// the same name.
    pub async fn create_in(
        database_url: &str,
        name: &str,
    ) -> Result<Schema, tokio_postgres::Error> {
        let (admin, connection) = connect(database_url).await?;
        tokio::spawn(connection);
        admin
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
            ))
            .await?;
        let separator = if database_url.contains('?') { '&' } else { '?' };
        Ok(Schema {
            admin,
            database_url: database_url.to_string(),
            name: name.to_string(),
            url: format!(
                "{database_url}{separator}options=-c%20search_path%3D{name}&application_name={name}"
            ),
            removed: false,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The database URL with the schema as its search path (`--database-url`,
    /// `Config::database_url`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The connection configuration with the schema as its search path
    /// (`PostgresStore::connect_with`).
    pub fn config(&self) -> tokio_postgres::Config {
        let mut config: tokio_postgres::Config = self.database_url.parse().unwrap();
        config.options(format!("-c search_path={}", self.name));
        config.application_name(&self.name);
        config
    }

    /// A connection of the schema's creator, for the checks a test makes in SQL (name the
    /// schema's tables as `{schema}.operations`).
    pub fn admin(&self) -> &tokio_postgres::Client {
        &self.admin
    }

    /// Drops the schema and everything in it ([`drop_schema`]).
    pub async fn remove(mut self) -> Result<(), tokio_postgres::Error> {
        self.removed = true;
        drop_schema(&self.admin, &self.name).await
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        let (url, name) = (self.database_url.clone(), self.name.clone());
        // Drop cannot await, and the test's runtime may be ending: a short-lived runtime on
        // a thread of its own drops the schema.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok((client, connection)) = connect(&url).await {
                    tokio::spawn(connection);
                    if let Err(e) = drop_schema(&client, &name).await {
                        eprintln!("schema {name} left in the test database: {e}");
                    }
                }
            });
        })
        .join();
    }
}

/// Ends the connections still open on schema `name` (by their `application_name`), then
/// drops it, waiting at most 10 s for a lock: never forever.
async fn drop_schema(
    client: &tokio_postgres::Client,
    name: &str,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = $1 AND pid <> pg_backend_pid()",
            &[&name],
        )
        .await?;
    client
        .batch_execute(&format!(
            "SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS {name} CASCADE; RESET lock_timeout"
        ))
        .await
}

/// A connection to `database_url`, waiting up to a minute while the database refuses new
/// ones for having too many (SQLSTATE 53300): the suites' servers, side by side, may hold
/// most of its `max_connections` for a while.
async fn connect(
    database_url: &str,
) -> Result<
    (
        tokio_postgres::Client,
        tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>,
    ),
    tokio_postgres::Error,
> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        match tokio_postgres::connect(database_url, NoTls).await {
            Err(e)
                if e.code() == Some(&tokio_postgres::error::SqlState::TOO_MANY_CONNECTIONS)
                    && std::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            connected => return connected,
        }
    }
}
