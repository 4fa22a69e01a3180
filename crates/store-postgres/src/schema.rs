//! Schema migrations, applied on connect under an advisory lock so that several servers
//! starting at once apply each exactly once.

use tokio_postgres::Client;

/// Any fixed number: the advisory lock that serializes migrations.
const MIGRATION_LOCK: i64 = 0x6c6f_6e67_7275_6e00;

mod migrations;
use migrations::MIGRATIONS;

pub async fn migrate(client: &mut Client) -> Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS longrun_migrations (version BIGINT PRIMARY KEY)")
        .await?;
    let applied: i64 = tx
        .query_one("SELECT count(*) FROM longrun_migrations", &[])
        .await?
        .get(0);
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO longrun_migrations (version) VALUES ($1)",
            &[&(i as i64 + 1)],
        )
        .await?;
        tracing::info!(migration = i + 1, "applied schema migration");
    }
    tx.commit().await
}
