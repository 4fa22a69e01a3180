//! Schema migrations, applied in order on open; `PRAGMA user_version` records how many ran.

use rusqlite::Connection;

/// Each entry is one migration; never edit a released one, append a new one.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE operations (
    name         TEXT PRIMARY KEY,
    project      TEXT NOT NULL,
    state        TEXT NOT NULL,
    op_type      TEXT NOT NULL,
    description  TEXT NOT NULL,
    priority     INTEGER NOT NULL,
    attempt      INTEGER NOT NULL,
    create_time  INTEGER NOT NULL,
    update_time  INTEGER NOT NULL,
    start_time   INTEGER,
    end_time     INTEGER,
    error_code   INTEGER,
    request_id   TEXT,
    lease_expire INTEGER,
    deadline     INTEGER,
    cancel_time  INTEGER,
    version      INTEGER NOT NULL,
    record       TEXT NOT NULL,
    payload      TEXT NOT NULL
);
CREATE INDEX operations_list ON operations (project, create_time DESC, name);
CREATE UNIQUE INDEX operations_request ON operations (project, request_id)
    WHERE request_id IS NOT NULL;
CREATE INDEX operations_ended ON operations (end_time) WHERE end_time IS NOT NULL;
CREATE INDEX operations_queue ON operations (op_type, priority DESC, create_time)
    WHERE state = 'PENDING';

-- PENDING operations per project, kept by triggers so the queue limit costs one lookup.
CREATE TABLE project_queue (
    project TEXT PRIMARY KEY,
    pending INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TRIGGER queue_insert AFTER INSERT ON operations WHEN NEW.state = 'PENDING'
BEGIN
    INSERT INTO project_queue (project, pending) VALUES (NEW.project, 1)
        ON CONFLICT (project) DO UPDATE SET pending = pending + 1;
END;
CREATE TRIGGER queue_update AFTER UPDATE OF state ON operations
    WHEN (OLD.state = 'PENDING') != (NEW.state = 'PENDING')
BEGIN
    UPDATE project_queue
        SET pending = pending + (CASE WHEN NEW.state = 'PENDING' THEN 1 ELSE -1 END)
        WHERE project = NEW.project;
END;
CREATE TRIGGER queue_delete AFTER DELETE ON operations WHEN OLD.state = 'PENDING'
BEGIN
    UPDATE project_queue SET pending = pending - 1 WHERE project = OLD.project;
END;
"#,
    r#"
CREATE INDEX operations_running ON operations (project, state)
    WHERE state IN ('RUNNING', 'CANCELLING');
CREATE INDEX operations_lease ON operations (lease_expire) WHERE lease_expire IS NOT NULL;
CREATE INDEX operations_deadline ON operations (deadline)
    WHERE deadline IS NOT NULL AND end_time IS NULL;
"#,
    r#"
CREATE TABLE service_accounts (
    email          TEXT PRIMARY KEY,
    project        TEXT NOT NULL,
    key_id         TEXT NOT NULL,
    public_key_pem TEXT NOT NULL,
    disabled       INTEGER NOT NULL,
    create_time    INTEGER NOT NULL
) STRICT;
"#,
    r#"
CREATE TABLE assets (
    name       TEXT PRIMARY KEY,
    parent     TEXT NOT NULL,
    asset_type TEXT NOT NULL,
    record     TEXT NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX assets_by_parent ON assets (parent, name);
"#,
    r#"
-- Per-project settings of docs/projects.md (0 = the plan maximum).
CREATE TABLE project_configs (
    project                TEXT PRIMARY KEY,
    max_concurrent_exports INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX operations_exports ON operations (project)
    WHERE state IN ('RUNNING', 'CANCELLING') AND op_type GLOB 'EXPORT_*';
"#,
    r#"
-- The project registry (docs/projects.md#registry).
CREATE TABLE project_registry (
    project              TEXT PRIMARY KEY,
    commercial           INTEGER NOT NULL,
    registered_on        TEXT NOT NULL,
    eligibility_verified INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
"#,
    r#"
-- Fair leasing walks the projects with PENDING work and reads each one's queue head.
CREATE INDEX operations_fair ON operations (project, priority DESC, create_time, name)
    WHERE state = 'PENDING';
"#,
    r#"
-- Each type's queue head within a project in one index probe: a lease for a type that a
-- project's backlog does not hold reads none of that backlog.
DROP INDEX operations_fair;
CREATE INDEX operations_fair ON operations (project, op_type, priority DESC, create_time, name)
    WHERE state = 'PENDING';
"#,
    r#"
-- The submit's concurrencyKey (docs/projects.md), and the count of each (project, type,
-- key)'s RUNNING and CANCELLING operations that a task type's key_concurrency limits.
ALTER TABLE operations ADD COLUMN concurrency_key TEXT;
CREATE INDEX operations_keys ON operations (project, op_type, concurrency_key)
    WHERE state IN ('RUNNING', 'CANCELLING') AND concurrency_key IS NOT NULL;
"#,
    r#"
-- The operation a retry retries (docs/operations.md#retry), set by the insert and never
-- changed; a filter on metadata.retryOf lists the retries of one operation.
ALTER TABLE operations ADD COLUMN retry_of TEXT;
CREATE INDEX operations_retries ON operations (project, retry_of) WHERE retry_of IS NOT NULL;
"#,
    r#"
-- Delayed start (docs/operations.md#delayed-start): the submit's scheduleTime and
-- startTimeout, and the start deadline they make (a timer, like lease_expire). Leases read
-- the queue heads of operations without a scheduleTime from operations_fair and those of
-- scheduled ones that are due from operations_scheduled, so that operations waiting for
-- their time cost a lease nothing.
ALTER TABLE operations ADD COLUMN schedule_time INTEGER;
ALTER TABLE operations ADD COLUMN start_timeout INTEGER;
ALTER TABLE operations ADD COLUMN start_deadline INTEGER;
CREATE INDEX operations_pending ON operations (project) WHERE state = 'PENDING';
DROP INDEX operations_fair;
CREATE INDEX operations_fair ON operations (project, op_type, priority DESC, create_time, name)
    WHERE state = 'PENDING' AND schedule_time IS NULL;
CREATE INDEX operations_scheduled ON operations (project, op_type, schedule_time)
    WHERE state = 'PENDING' AND schedule_time IS NOT NULL;
CREATE INDEX operations_next_scheduled ON operations (schedule_time)
    WHERE state = 'PENDING' AND schedule_time IS NOT NULL;
CREATE INDEX operations_start_deadline ON operations (start_deadline)
    WHERE state = 'PENDING' AND start_time IS NULL AND start_deadline IS NOT NULL;
"#,
    r#"
-- Schedules (docs/schedules.md), kept whole in `record`; the due ones are found by their
-- next fire time (none while paused). Each operation a firing submits records its schedule,
-- set by the insert and never changed, for `metadata.schedule` filters.
CREATE TABLE schedules (
    name           TEXT PRIMARY KEY,
    project        TEXT NOT NULL,
    next_fire_time INTEGER,
    version        INTEGER NOT NULL,
    record         TEXT NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX schedules_project ON schedules (project, name);
CREATE INDEX schedules_due ON schedules (next_fire_time) WHERE next_fire_time IS NOT NULL;
ALTER TABLE operations ADD COLUMN schedule TEXT;
CREATE INDEX operations_schedule ON operations (project, schedule) WHERE schedule IS NOT NULL;
"#,
    r#"
-- Queues (docs/queues.md): each (project, type)'s PENDING and RUNNING-or-CANCELLING counts,
-- kept by the triggers below in the transaction of every change, so that reading them
-- scans nothing; the oldest leasable PENDING operation of a queue is one probe of
-- operations_oldest (or operations_scheduled). A pause is a row of queue_pauses (op_type
-- '-': every type of the project), read by every lease.
CREATE TABLE queue_counts (
    project TEXT NOT NULL,
    op_type TEXT NOT NULL,
    pending INTEGER NOT NULL,
    running INTEGER NOT NULL,
    PRIMARY KEY (project, op_type)
) STRICT, WITHOUT ROWID;
INSERT INTO queue_counts (project, op_type, pending, running)
    SELECT project, op_type, sum(state = 'PENDING'), sum(state IN ('RUNNING', 'CANCELLING'))
    FROM operations WHERE state IN ('PENDING', 'RUNNING', 'CANCELLING')
    GROUP BY project, op_type;
CREATE TRIGGER operations_count_insert AFTER INSERT ON operations
    WHEN NEW.state IN ('PENDING', 'RUNNING', 'CANCELLING')
BEGIN
    INSERT INTO queue_counts (project, op_type, pending, running)
        VALUES (NEW.project, NEW.op_type, NEW.state = 'PENDING', NEW.state <> 'PENDING')
        ON CONFLICT (project, op_type) DO UPDATE SET pending = pending + excluded.pending,
            running = running + excluded.running;
END;
CREATE TRIGGER operations_count_update AFTER UPDATE OF state ON operations
    WHEN OLD.state IS NOT NEW.state
        AND (OLD.state IN ('PENDING', 'RUNNING', 'CANCELLING')
            OR NEW.state IN ('PENDING', 'RUNNING', 'CANCELLING'))
BEGIN
    INSERT INTO queue_counts (project, op_type, pending, running)
        VALUES (NEW.project, NEW.op_type,
            (NEW.state = 'PENDING') - (OLD.state = 'PENDING'),
            (NEW.state IN ('RUNNING', 'CANCELLING')) - (OLD.state IN ('RUNNING', 'CANCELLING')))
        ON CONFLICT (project, op_type) DO UPDATE SET pending = pending + excluded.pending,
            running = running + excluded.running;
END;
CREATE TRIGGER operations_count_delete AFTER DELETE ON operations
    WHEN OLD.state IN ('PENDING', 'RUNNING', 'CANCELLING')
BEGIN
    UPDATE queue_counts SET pending = pending - (OLD.state = 'PENDING'),
        running = running - (OLD.state <> 'PENDING')
        WHERE project = OLD.project AND op_type = OLD.op_type;
END;
CREATE INDEX operations_oldest ON operations (project, op_type, create_time)
    WHERE state = 'PENDING' AND schedule_time IS NULL;
CREATE TABLE queue_pauses (
    project TEXT NOT NULL,
    op_type TEXT NOT NULL,
    PRIMARY KEY (project, op_type)
) STRICT, WITHOUT ROWID;
"#,
    r#"
-- Parents and children (docs/operations.md#parents-and-children): each operation's parent
-- ('' for none), set by the insert and never changed, and whether it ever had a child.
-- The move of an operation with children out of PENDING or RUNNING records its cascade in
-- the same transaction; the cascade's row stays until every descendant is done.
ALTER TABLE operations ADD COLUMN parent TEXT NOT NULL DEFAULT '';
ALTER TABLE operations ADD COLUMN has_children INTEGER NOT NULL DEFAULT 0;
CREATE INDEX operations_children ON operations (parent, state);
CREATE TABLE cascades (name TEXT PRIMARY KEY) STRICT, WITHOUT ROWID;
CREATE TRIGGER operations_cascade AFTER UPDATE OF state ON operations
    WHEN NEW.has_children AND OLD.state IN ('PENDING', 'RUNNING')
        AND NEW.state NOT IN ('PENDING', 'RUNNING')
BEGIN
    INSERT OR IGNORE INTO cascades (name) VALUES (NEW.name);
END;
"#,
    r#"
-- List filters answered from indexes at any size (docs/operations.md#filter): one index per
-- filterable column in list order, the end time, and the words of descriptions (FTS5 over
-- the table's own rows, kept by triggers).
CREATE INDEX operations_by_state ON operations (project, state, create_time DESC, name);
CREATE INDEX operations_by_type ON operations (project, op_type, create_time DESC, name);
CREATE INDEX operations_by_parent ON operations (project, parent, create_time DESC, name);
CREATE INDEX operations_by_key ON operations (project, concurrency_key, create_time DESC, name)
    WHERE concurrency_key IS NOT NULL;
CREATE INDEX operations_by_retry ON operations (project, retry_of, create_time DESC, name)
    WHERE retry_of IS NOT NULL;
CREATE INDEX operations_by_schedule ON operations (project, schedule, create_time DESC, name)
    WHERE schedule IS NOT NULL;
CREATE INDEX operations_by_end ON operations (project, end_time) WHERE end_time IS NOT NULL;
CREATE VIRTUAL TABLE operations_words USING fts5(
    description, content = 'operations', content_rowid = 'rowid',
    tokenize = 'unicode61 remove_diacritics 0'
);
INSERT INTO operations_words (operations_words) VALUES ('rebuild');
CREATE TRIGGER operations_words_insert AFTER INSERT ON operations BEGIN
    INSERT INTO operations_words (rowid, description) VALUES (NEW.rowid, NEW.description);
END;
CREATE TRIGGER operations_words_delete AFTER DELETE ON operations BEGIN
    INSERT INTO operations_words (operations_words, rowid, description)
        VALUES ('delete', OLD.rowid, OLD.description);
END;
CREATE TRIGGER operations_words_update AFTER UPDATE OF description ON operations
    WHEN OLD.description IS NOT NEW.description
BEGIN
    INSERT INTO operations_words (operations_words, rowid, description)
        VALUES ('delete', OLD.rowid, OLD.description);
    INSERT INTO operations_words (rowid, description) VALUES (NEW.rowid, NEW.description);
END;
"#,
    r#"
-- How many operations each (project, type) holds in each state, kept by the triggers below
-- in the transaction of every change, so that the metrics read them without a scan.
CREATE TABLE state_counts (
    project TEXT NOT NULL,
    op_type TEXT NOT NULL,
    state   TEXT NOT NULL,
    n       INTEGER NOT NULL,
    PRIMARY KEY (project, op_type, state)
) STRICT, WITHOUT ROWID;
INSERT INTO state_counts (project, op_type, state, n)
    SELECT project, op_type, state, count(*) FROM operations GROUP BY project, op_type, state;
CREATE TRIGGER operations_state_count_insert AFTER INSERT ON operations BEGIN
    INSERT INTO state_counts (project, op_type, state, n) VALUES (NEW.project, NEW.op_type, NEW.state, 1)
        ON CONFLICT (project, op_type, state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER operations_state_count_update AFTER UPDATE OF state ON operations
    WHEN OLD.state IS NOT NEW.state
BEGIN
    UPDATE state_counts SET n = n - 1
        WHERE project = OLD.project AND op_type = OLD.op_type AND state = OLD.state;
    INSERT INTO state_counts (project, op_type, state, n) VALUES (NEW.project, NEW.op_type, NEW.state, 1)
        ON CONFLICT (project, op_type, state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER operations_state_count_delete AFTER DELETE ON operations BEGIN
    UPDATE state_counts SET n = n - 1
        WHERE project = OLD.project AND op_type = OLD.op_type AND state = OLD.state;
END;
"#,
    r#"
-- An insert's words and counts are written by the statements of `Counts` (insert.rs),
-- not by triggers: SQLite journals every page a statement that fires a trigger changes, and
-- with these four a write of 1,000 submits inserted about a third as many rows a second.
DROP TRIGGER queue_insert;
DROP TRIGGER operations_count_insert;
DROP TRIGGER operations_words_insert;
DROP TRIGGER operations_state_count_insert;
"#,
];

pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)?;
    let applied: usize = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tracing::info!(migration = i + 1, "applied schema migration");
    }
    tx.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrating_twice_is_a_no_op() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        let version: usize = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len());
    }
}
