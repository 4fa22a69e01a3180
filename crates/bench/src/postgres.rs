//! The PostgreSQL side of the `postgres` scenario: a fresh schema for the servers under test
//! to share, and a database URL scoped to it.

use anyhow::Context;
use tokio_postgres::NoTls;

pub struct Schema {
    name: String,
    url: String,
}

impl Schema {
    /// Creates `longrun_bench_<pid>` in the database at `url` (replacing a leftover of the
    /// same name).
    pub async fn create(url: &str) -> anyhow::Result<Schema> {
        let name = format!("longrun_bench_{}", std::process::id());
        execute(
            url,
            &format!("DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"),
        )
        .await
        .with_context(|| format!("cannot create schema {name}"))?;
        Ok(Schema {
            name,
            url: url.to_string(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The database URL with the schema first on the search path.
    pub fn scoped_url(&self) -> String {
        let separator = if self.url.contains('?') { '&' } else { '?' };
        format!(
            "{}{separator}options=-c%20search_path%3D{}",
            self.url, self.name
        )
    }

    /// Drops the schema and everything in it.
    pub async fn drop(self) -> anyhow::Result<()> {
        execute(&self.url, &format!("DROP SCHEMA {} CASCADE", self.name))
            .await
            .with_context(|| format!("cannot drop schema {}", self.name))
    }
}

/// Runs `sql` on a connection of its own, closed when done.
async fn execute(url: &str, sql: &str) -> anyhow::Result<()> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .context("cannot connect to PostgreSQL")?;
    let connection = tokio::spawn(connection);
    client.batch_execute(sql).await?;
    drop(client);
    connection.await??;
    Ok(())
}
