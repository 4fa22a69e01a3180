//! Schema migrations, applied on connect under an advisory lock so that several servers
//! starting at once apply each exactly once.

use tokio_postgres::Client;

/// Any fixed number: the advisory lock that serializes migrations.
const MIGRATION_LOCK: i64 = 0x6c6f_6e67_7275_6e00;

/// Each entry is one migration; never edit a released one, append a new one. Text columns
/// use the "C" collation so that ordering is bytewise, as in every other backend.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE operations (
    name         TEXT COLLATE "C" PRIMARY KEY,
    project      TEXT COLLATE "C" NOT NULL,
    state        TEXT COLLATE "C" NOT NULL,
    op_type      TEXT COLLATE "C" NOT NULL,
    description  TEXT COLLATE "C" NOT NULL,
    priority     BIGINT NOT NULL,
    attempt      BIGINT NOT NULL,
    create_time  BIGINT NOT NULL,
    update_time  BIGINT NOT NULL,
    start_time   BIGINT,
    end_time     BIGINT,
    error_code   BIGINT,
    request_id   TEXT COLLATE "C",
    lease_expire BIGINT,
    deadline     BIGINT,
    cancel_time  BIGINT,
    version      BIGINT NOT NULL,
    record       TEXT NOT NULL,
    payload      TEXT NOT NULL
);
CREATE INDEX operations_list ON operations (project, create_time DESC, name);
CREATE UNIQUE INDEX operations_request ON operations (project, request_id)
    WHERE request_id IS NOT NULL;
CREATE INDEX operations_ended ON operations (end_time) WHERE end_time IS NOT NULL;
CREATE INDEX operations_queue ON operations (op_type, priority DESC, create_time)
    WHERE state = 'PENDING';
CREATE INDEX operations_pending ON operations (project) WHERE state = 'PENDING';
CREATE INDEX operations_running ON operations (project)
    WHERE state IN ('RUNNING', 'CANCELLING');
CREATE INDEX operations_lease ON operations (lease_expire) WHERE lease_expire IS NOT NULL;
CREATE INDEX operations_deadline ON operations (deadline)
    WHERE deadline IS NOT NULL AND end_time IS NULL;
"#,
    r#"
-- Every server learns of state changes and queued work at once (LISTEN longrun).
CREATE FUNCTION longrun_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state = 'PENDING' THEN
        PERFORM pg_notify('longrun', '');
    END IF;
    IF TG_OP = 'UPDATE' THEN
        PERFORM pg_notify('longrun', NEW.name);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER operations_notify_insert AFTER INSERT ON operations
    FOR EACH ROW EXECUTE FUNCTION longrun_notify();
CREATE TRIGGER operations_notify_update AFTER UPDATE ON operations
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state) EXECUTE FUNCTION longrun_notify();
"#,
];

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
