//! The schema's migrations, in order: SQL only (`super::migrate` applies them).

/// Each entry is one migration; never edit a released one, append a new one. Text columns
/// use the "C" collation so that ordering is bytewise, as in every other backend.
pub(super) const MIGRATIONS: &[&str] = &[
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
    r#"
-- An upper bound of each project's PENDING operations, so that inserts need not count
-- them. Inserts raise it under the project's lock; a retry puts an operation back in the
-- queue and raises it here; leaving the queue does not lower it (a bound that is too high
-- only makes the next insert count exactly and store the true figure).
CREATE TABLE queue_bounds (
    project TEXT COLLATE "C" PRIMARY KEY,
    pending BIGINT NOT NULL
);
CREATE FUNCTION longrun_requeued() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE queue_bounds SET pending = pending + 1 WHERE project = NEW.project;
    RETURN NULL;
END $$;
CREATE TRIGGER operations_requeued AFTER UPDATE ON operations FOR EACH ROW
    WHEN (NEW.state = 'PENDING' AND OLD.state <> 'PENDING') EXECUTE FUNCTION longrun_requeued();
"#,
    r#"
-- The queue in the exact lease order, so that a lease reads only the rows it takes.
DROP INDEX operations_queue;
CREATE INDEX operations_queue ON operations (op_type, priority DESC, create_time, name)
    WHERE state = 'PENDING';
"#,
    r#"
-- A batch of inserts in one call, so that a project's lock is held for one statement: each
-- project's inserts take turns across servers (locked in name order, so that two batches
-- never wait for each other), which keeps the request-id dedupe and the queue limit exact.
-- Answers one row per insert, in order: created, existing (with its record), taken or full.
CREATE FUNCTION longrun_insert(
    names TEXT[], projects TEXT[], states TEXT[], op_types TEXT[], descriptions TEXT[],
    priorities BIGINT[], attempts BIGINT[], create_times BIGINT[], update_times BIGINT[],
    start_times BIGINT[], end_times BIGINT[], error_codes BIGINT[], request_ids TEXT[],
    lease_expires BIGINT[], deadlines BIGINT[], cancel_times BIGINT[], versions BIGINT[],
    records TEXT[], payloads TEXT[], limits BIGINT[]
) RETURNS TABLE (outcome TEXT, existing TEXT) LANGUAGE plpgsql AS $$
DECLARE
    locked TEXT;
    queued BIGINT;
BEGIN
    FOR locked IN SELECT DISTINCT p FROM unnest(projects) AS p ORDER BY p LOOP
        PERFORM pg_advisory_xact_lock(hashtext(locked));
    END LOOP;
    FOR i IN 1 .. coalesce(array_length(names, 1), 0) LOOP
        existing := NULL;
        IF request_ids[i] IS NOT NULL THEN
            SELECT o.record INTO existing FROM operations AS o
                WHERE o.project = projects[i] AND o.request_id = request_ids[i];
            IF FOUND THEN
                outcome := 'existing';
                RETURN NEXT;
                CONTINUE;
            END IF;
        END IF;
        IF EXISTS (SELECT 1 FROM operations AS o WHERE o.name = names[i]) THEN
            outcome := 'taken';
            RETURN NEXT;
            CONTINUE;
        END IF;
        SELECT b.pending INTO queued FROM queue_bounds AS b WHERE b.project = projects[i];
        IF queued IS NULL OR queued >= limits[i] THEN
            SELECT count(*) INTO queued FROM (SELECT 1 FROM operations AS o
                WHERE o.project = projects[i] AND o.state = 'PENDING' LIMIT limits[i]) AS q;
        END IF;
        IF queued >= limits[i] THEN
            outcome := 'full';
        ELSE
            INSERT INTO operations (name, project, state, op_type, description, priority,
                attempt, create_time, update_time, start_time, end_time, error_code,
                request_id, lease_expire, deadline, cancel_time, version, record, payload)
            VALUES (names[i], projects[i], states[i], op_types[i], descriptions[i],
                priorities[i], attempts[i], create_times[i], update_times[i], start_times[i],
                end_times[i], error_codes[i], request_ids[i], lease_expires[i], deadlines[i],
                cancel_times[i], versions[i], records[i], payloads[i]);
            queued := queued + 1;
            outcome := 'created';
        END IF;
        INSERT INTO queue_bounds (project, pending) VALUES (projects[i], queued)
            ON CONFLICT (project) DO UPDATE SET pending = excluded.pending;
        RETURN NEXT;
    END LOOP;
END $$;
"#,
    r#"
-- No notification for a lease (PENDING to RUNNING): nothing waits for it, and transactions
-- that notify commit one at a time.
DROP TRIGGER operations_notify_update ON operations;
CREATE TRIGGER operations_notify_update AFTER UPDATE ON operations FOR EACH ROW
    WHEN (OLD.state IS DISTINCT FROM NEW.state AND NEW.state <> 'RUNNING')
    EXECUTE FUNCTION longrun_notify();
"#,
    r#"
-- The secret shared by every server on this database (see Store::shared_secret).
CREATE TABLE longrun_secret (
    id     BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    secret BYTEA NOT NULL
);
"#,
    r#"
CREATE TABLE service_accounts (
    email          TEXT COLLATE "C" PRIMARY KEY,
    project        TEXT COLLATE "C" NOT NULL,
    key_id         TEXT NOT NULL,
    public_key_pem TEXT NOT NULL,
    disabled       BOOLEAN NOT NULL,
    create_time    BIGINT NOT NULL
);
"#,
    r#"
CREATE TABLE assets (
    name       TEXT COLLATE "C" PRIMARY KEY,
    parent     TEXT COLLATE "C" NOT NULL,
    asset_type TEXT NOT NULL,
    record     TEXT NOT NULL
);
CREATE INDEX assets_by_parent ON assets (parent, name);
"#,
    r#"
-- Watch streams on every server learn of every change: creates, leases, progress and
-- deletes too, not only the state changes that wake waiters (docs/watch.md). The
-- empty payload still says that work entered the queue.
CREATE OR REPLACE FUNCTION longrun_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('longrun', OLD.name);
        RETURN NULL;
    END IF;
    IF NEW.state = 'PENDING' AND (TG_OP = 'INSERT' OR OLD.state IS DISTINCT FROM NEW.state) THEN
        PERFORM pg_notify('longrun', '');
    END IF;
    PERFORM pg_notify('longrun', NEW.name);
    RETURN NULL;
END $$;
DROP TRIGGER operations_notify_update ON operations;
CREATE TRIGGER operations_notify_update AFTER UPDATE ON operations FOR EACH ROW
    EXECUTE FUNCTION longrun_notify();
CREATE TRIGGER operations_notify_delete AFTER DELETE ON operations FOR EACH ROW
    EXECUTE FUNCTION longrun_notify();
"#,
    r#"
-- Per-project settings of docs/projects.md (0 = the plan maximum).
CREATE TABLE project_configs (
    project                TEXT COLLATE "C" PRIMARY KEY,
    max_concurrent_exports BIGINT NOT NULL
);
CREATE INDEX operations_exports ON operations (project)
    WHERE state IN ('RUNNING', 'CANCELLING') AND op_type LIKE 'EXPORT\_%';
"#,
    r#"
-- The project registry (docs/projects.md#registry).
CREATE TABLE project_registry (
    project              TEXT COLLATE "C" PRIMARY KEY,
    commercial           BOOLEAN NOT NULL,
    registered_on        TEXT NOT NULL,
    eligibility_verified BOOLEAN NOT NULL
);
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
-- The submit's concurrencyKey (docs/projects.md), set by the insert and never changed,
-- and the count of each (project, type, key)'s RUNNING and CANCELLING operations that a
-- task type's key_concurrency limits. longrun_insert takes the keys as a last array.
ALTER TABLE operations ADD COLUMN concurrency_key TEXT COLLATE "C";
CREATE INDEX operations_keys ON operations (project, op_type, concurrency_key)
    WHERE state IN ('RUNNING', 'CANCELLING') AND concurrency_key IS NOT NULL;
DROP FUNCTION longrun_insert(TEXT[], TEXT[], TEXT[], TEXT[], TEXT[], BIGINT[], BIGINT[],
    BIGINT[], BIGINT[], BIGINT[], BIGINT[], BIGINT[], TEXT[], BIGINT[], BIGINT[], BIGINT[],
    BIGINT[], TEXT[], TEXT[], BIGINT[]);
CREATE FUNCTION longrun_insert(
    names TEXT[], projects TEXT[], states TEXT[], op_types TEXT[], descriptions TEXT[],
    priorities BIGINT[], attempts BIGINT[], create_times BIGINT[], update_times BIGINT[],
    start_times BIGINT[], end_times BIGINT[], error_codes BIGINT[], request_ids TEXT[],
    lease_expires BIGINT[], deadlines BIGINT[], cancel_times BIGINT[], versions BIGINT[],
    records TEXT[], payloads TEXT[], limits BIGINT[], concurrency_keys TEXT[]
) RETURNS TABLE (outcome TEXT, existing TEXT) LANGUAGE plpgsql AS $$
DECLARE
    locked TEXT;
    queued BIGINT;
BEGIN
    FOR locked IN SELECT DISTINCT p FROM unnest(projects) AS p ORDER BY p LOOP
        PERFORM pg_advisory_xact_lock(hashtext(locked));
    END LOOP;
    FOR i IN 1 .. coalesce(array_length(names, 1), 0) LOOP
        existing := NULL;
        IF request_ids[i] IS NOT NULL THEN
            SELECT o.record INTO existing FROM operations AS o
                WHERE o.project = projects[i] AND o.request_id = request_ids[i];
            IF FOUND THEN
                outcome := 'existing';
                RETURN NEXT;
                CONTINUE;
            END IF;
        END IF;
        IF EXISTS (SELECT 1 FROM operations AS o WHERE o.name = names[i]) THEN
            outcome := 'taken';
            RETURN NEXT;
            CONTINUE;
        END IF;
        SELECT b.pending INTO queued FROM queue_bounds AS b WHERE b.project = projects[i];
        IF queued IS NULL OR queued >= limits[i] THEN
            SELECT count(*) INTO queued FROM (SELECT 1 FROM operations AS o
                WHERE o.project = projects[i] AND o.state = 'PENDING' LIMIT limits[i]) AS q;
        END IF;
        IF queued >= limits[i] THEN
            outcome := 'full';
        ELSE
            INSERT INTO operations (name, project, state, op_type, description, priority,
                attempt, create_time, update_time, start_time, end_time, error_code,
                request_id, lease_expire, deadline, cancel_time, version, record, payload,
                concurrency_key)
            VALUES (names[i], projects[i], states[i], op_types[i], descriptions[i],
                priorities[i], attempts[i], create_times[i], update_times[i], start_times[i],
                end_times[i], error_codes[i], request_ids[i], lease_expires[i], deadlines[i],
                cancel_times[i], versions[i], records[i], payloads[i], concurrency_keys[i]);
            queued := queued + 1;
            outcome := 'created';
        END IF;
        INSERT INTO queue_bounds (project, pending) VALUES (projects[i], queued)
            ON CONFLICT (project) DO UPDATE SET pending = excluded.pending;
        RETURN NEXT;
    END LOOP;
END $$;
"#,
    r#"
-- The operation a retry retries (docs/operations.md#retry), set by the insert and never
-- changed; a filter on metadata.retryOf lists the retries of one operation.
-- longrun_insert takes them as a last array.
ALTER TABLE operations ADD COLUMN retry_of TEXT COLLATE "C";
CREATE INDEX operations_retries ON operations (project, retry_of) WHERE retry_of IS NOT NULL;
DROP FUNCTION longrun_insert(TEXT[], TEXT[], TEXT[], TEXT[], TEXT[], BIGINT[], BIGINT[],
    BIGINT[], BIGINT[], BIGINT[], BIGINT[], BIGINT[], TEXT[], BIGINT[], BIGINT[], BIGINT[],
    BIGINT[], TEXT[], TEXT[], BIGINT[], TEXT[]);
CREATE FUNCTION longrun_insert(
    names TEXT[], projects TEXT[], states TEXT[], op_types TEXT[], descriptions TEXT[],
    priorities BIGINT[], attempts BIGINT[], create_times BIGINT[], update_times BIGINT[],
    start_times BIGINT[], end_times BIGINT[], error_codes BIGINT[], request_ids TEXT[],
    lease_expires BIGINT[], deadlines BIGINT[], cancel_times BIGINT[], versions BIGINT[],
    records TEXT[], payloads TEXT[], limits BIGINT[], concurrency_keys TEXT[],
    retry_ofs TEXT[]
) RETURNS TABLE (outcome TEXT, existing TEXT) LANGUAGE plpgsql AS $$
DECLARE
    locked TEXT;
    queued BIGINT;
BEGIN
    FOR locked IN SELECT DISTINCT p FROM unnest(projects) AS p ORDER BY p LOOP
        PERFORM pg_advisory_xact_lock(hashtext(locked));
    END LOOP;
    FOR i IN 1 .. coalesce(array_length(names, 1), 0) LOOP
        existing := NULL;
        IF request_ids[i] IS NOT NULL THEN
            SELECT o.record INTO existing FROM operations AS o
                WHERE o.project = projects[i] AND o.request_id = request_ids[i];
            IF FOUND THEN
                outcome := 'existing';
                RETURN NEXT;
                CONTINUE;
            END IF;
        END IF;
        IF EXISTS (SELECT 1 FROM operations AS o WHERE o.name = names[i]) THEN
            outcome := 'taken';
            RETURN NEXT;
            CONTINUE;
        END IF;
        SELECT b.pending INTO queued FROM queue_bounds AS b WHERE b.project = projects[i];
        IF queued IS NULL OR queued >= limits[i] THEN
            SELECT count(*) INTO queued FROM (SELECT 1 FROM operations AS o
                WHERE o.project = projects[i] AND o.state = 'PENDING' LIMIT limits[i]) AS q;
        END IF;
        IF queued >= limits[i] THEN
            outcome := 'full';
        ELSE
            INSERT INTO operations (name, project, state, op_type, description, priority,
                attempt, create_time, update_time, start_time, end_time, error_code,
                request_id, lease_expire, deadline, cancel_time, version, record, payload,
                concurrency_key, retry_of)
            VALUES (names[i], projects[i], states[i], op_types[i], descriptions[i],
                priorities[i], attempts[i], create_times[i], update_times[i], start_times[i],
                end_times[i], error_codes[i], request_ids[i], lease_expires[i], deadlines[i],
                cancel_times[i], versions[i], records[i], payloads[i], concurrency_keys[i],
                retry_ofs[i]);
            queued := queued + 1;
            outcome := 'created';
        END IF;
        INSERT INTO queue_bounds (project, pending) VALUES (projects[i], queued)
            ON CONFLICT (project) DO UPDATE SET pending = excluded.pending;
        RETURN NEXT;
    END LOOP;
END $$;
"#,
    r#"
-- Delayed start (docs/operations.md#delayed-start): the submit's scheduleTime and
-- startTimeout, and the start deadline they make (a timer, like lease_expire), set by the
-- insert and never changed. Leases read the queue heads of operations without a
-- scheduleTime from operations_fair and those of scheduled ones that are due from
-- operations_scheduled, so that operations waiting for their time cost a lease nothing.
-- longrun_insert takes the three as its last arrays.
ALTER TABLE operations ADD COLUMN schedule_time BIGINT;
ALTER TABLE operations ADD COLUMN start_timeout BIGINT;
ALTER TABLE operations ADD COLUMN start_deadline BIGINT;
DROP INDEX operations_fair;
CREATE INDEX operations_fair ON operations (project, op_type, priority DESC, create_time, name)
    WHERE state = 'PENDING' AND schedule_time IS NULL;
CREATE INDEX operations_scheduled ON operations (project, op_type, schedule_time)
    WHERE state = 'PENDING' AND schedule_time IS NOT NULL;
CREATE INDEX operations_next_scheduled ON operations (schedule_time)
    WHERE state = 'PENDING' AND schedule_time IS NOT NULL;
CREATE INDEX operations_start_deadline ON operations (start_deadline)
    WHERE state = 'PENDING' AND start_time IS NULL AND start_deadline IS NOT NULL;
DROP FUNCTION longrun_insert(TEXT[], TEXT[], TEXT[], TEXT[], TEXT[], BIGINT[], BIGINT[],
    BIGINT[], BIGINT[], BIGINT[], BIGINT[], BIGINT[], TEXT[], BIGINT[], BIGINT[], BIGINT[],
    BIGINT[], TEXT[], TEXT[], BIGINT[], TEXT[], TEXT[]);
CREATE FUNCTION longrun_insert(
    names TEXT[], projects TEXT[], states TEXT[], op_types TEXT[], descriptions TEXT[],
    priorities BIGINT[], attempts BIGINT[], create_times BIGINT[], update_times BIGINT[],
    start_times BIGINT[], end_times BIGINT[], error_codes BIGINT[], request_ids TEXT[],
    lease_expires BIGINT[], deadlines BIGINT[], cancel_times BIGINT[], versions BIGINT[],
    records TEXT[], payloads TEXT[], limits BIGINT[], concurrency_keys TEXT[], retry_ofs TEXT[],
    schedule_times BIGINT[], start_timeouts BIGINT[], start_deadlines BIGINT[]
) RETURNS TABLE (outcome TEXT, existing TEXT) LANGUAGE plpgsql AS $$
DECLARE
    locked TEXT;
    queued BIGINT;
BEGIN
    FOR locked IN SELECT DISTINCT p FROM unnest(projects) AS p ORDER BY p LOOP
        PERFORM pg_advisory_xact_lock(hashtext(locked));
    END LOOP;
    FOR i IN 1 .. coalesce(array_length(names, 1), 0) LOOP
        existing := NULL;
        IF request_ids[i] IS NOT NULL THEN
            SELECT o.record INTO existing FROM operations AS o
                WHERE o.project = projects[i] AND o.request_id = request_ids[i];
            IF FOUND THEN
                outcome := 'existing';
                RETURN NEXT;
                CONTINUE;
            END IF;
        END IF;
        IF EXISTS (SELECT 1 FROM operations AS o WHERE o.name = names[i]) THEN
            outcome := 'taken';
            RETURN NEXT;
            CONTINUE;
        END IF;
        SELECT b.pending INTO queued FROM queue_bounds AS b WHERE b.project = projects[i];
        IF queued IS NULL OR queued >= limits[i] THEN
            SELECT count(*) INTO queued FROM (SELECT 1 FROM operations AS o
                WHERE o.project = projects[i] AND o.state = 'PENDING' LIMIT limits[i]) AS q;
        END IF;
        IF queued >= limits[i] THEN
            outcome := 'full';
        ELSE
            INSERT INTO operations (name, project, state, op_type, description, priority,
                attempt, create_time, update_time, start_time, end_time, error_code,
                request_id, lease_expire, deadline, cancel_time, version, record, payload,
                concurrency_key, retry_of, schedule_time, start_timeout, start_deadline)
            VALUES (names[i], projects[i], states[i], op_types[i], descriptions[i],
                priorities[i], attempts[i], create_times[i], update_times[i], start_times[i],
                end_times[i], error_codes[i], request_ids[i], lease_expires[i], deadlines[i],
                cancel_times[i], versions[i], records[i], payloads[i], concurrency_keys[i],
                retry_ofs[i], schedule_times[i], start_timeouts[i], start_deadlines[i]);
            queued := queued + 1;
            outcome := 'created';
        END IF;
        INSERT INTO queue_bounds (project, pending) VALUES (projects[i], queued)
            ON CONFLICT (project) DO UPDATE SET pending = excluded.pending;
        RETURN NEXT;
    END LOOP;
END $$;
"#,
    r#"
-- Schedules (docs/schedules.md), kept whole in `record`; the due ones are found by their
-- next fire time (none while paused). Each operation a firing submits records its
-- schedule, set by the insert and never changed, for `metadata.schedule` filters:
-- longrun_insert takes the schedules as a last array.
CREATE TABLE schedules (
    name           TEXT COLLATE "C" PRIMARY KEY,
    project        TEXT COLLATE "C" NOT NULL,
    next_fire_time BIGINT,
    version        BIGINT NOT NULL,
    record         TEXT NOT NULL
);
CREATE INDEX schedules_project ON schedules (project, name);
CREATE INDEX schedules_due ON schedules (next_fire_time) WHERE next_fire_time IS NOT NULL;
ALTER TABLE operations ADD COLUMN schedule TEXT COLLATE "C";
CREATE INDEX operations_schedule ON operations (project, schedule) WHERE schedule IS NOT NULL;
DROP FUNCTION longrun_insert(TEXT[], TEXT[], TEXT[], TEXT[], TEXT[], BIGINT[], BIGINT[],
    BIGINT[], BIGINT[], BIGINT[], BIGINT[], BIGINT[], TEXT[], BIGINT[], BIGINT[], BIGINT[],
    BIGINT[], TEXT[], TEXT[], BIGINT[], TEXT[], TEXT[], BIGINT[], BIGINT[], BIGINT[]);
CREATE FUNCTION longrun_insert(
    names TEXT[], projects TEXT[], states TEXT[], op_types TEXT[], descriptions TEXT[],
    priorities BIGINT[], attempts BIGINT[], create_times BIGINT[], update_times BIGINT[],
    start_times BIGINT[], end_times BIGINT[], error_codes BIGINT[], request_ids TEXT[],
    lease_expires BIGINT[], deadlines BIGINT[], cancel_times BIGINT[], versions BIGINT[],
    records TEXT[], payloads TEXT[], limits BIGINT[], concurrency_keys TEXT[], retry_ofs TEXT[],
    schedule_times BIGINT[], start_timeouts BIGINT[], start_deadlines BIGINT[], schedules TEXT[]
) RETURNS TABLE (outcome TEXT, existing TEXT) LANGUAGE plpgsql AS $$
DECLARE
    locked TEXT;
    queued BIGINT;
BEGIN
    FOR locked IN SELECT DISTINCT p FROM unnest(projects) AS p ORDER BY p LOOP
        PERFORM pg_advisory_xact_lock(hashtext(locked));
    END LOOP;
    FOR i IN 1 .. coalesce(array_length(names, 1), 0) LOOP
        existing := NULL;
        IF request_ids[i] IS NOT NULL THEN
            SELECT o.record INTO existing FROM operations AS o
                WHERE o.project = projects[i] AND o.request_id = request_ids[i];
            IF FOUND THEN
                outcome := 'existing';
                RETURN NEXT;
                CONTINUE;
            END IF;
        END IF;
        IF EXISTS (SELECT 1 FROM operations AS o WHERE o.name = names[i]) THEN
            outcome := 'taken';
            RETURN NEXT;
            CONTINUE;
        END IF;
        SELECT b.pending INTO queued FROM queue_bounds AS b WHERE b.project = projects[i];
        IF queued IS NULL OR queued >= limits[i] THEN
            SELECT count(*) INTO queued FROM (SELECT 1 FROM operations AS o
                WHERE o.project = projects[i] AND o.state = 'PENDING' LIMIT limits[i]) AS q;
        END IF;
        IF queued >= limits[i] THEN
            outcome := 'full';
        ELSE
            INSERT INTO operations (name, project, state, op_type, description, priority,
                attempt, create_time, update_time, start_time, end_time, error_code,
                request_id, lease_expire, deadline, cancel_time, version, record, payload,
                concurrency_key, retry_of, schedule_time, start_timeout, start_deadline, schedule)
            VALUES (names[i], projects[i], states[i], op_types[i], descriptions[i],
                priorities[i], attempts[i], create_times[i], update_times[i], start_times[i],
                end_times[i], error_codes[i], request_ids[i], lease_expires[i], deadlines[i],
                cancel_times[i], versions[i], records[i], payloads[i], concurrency_keys[i],
                retry_ofs[i], schedule_times[i], start_timeouts[i], start_deadlines[i], schedules[i]);
            queued := queued + 1;
            outcome := 'created';
        END IF;
        INSERT INTO queue_bounds (project, pending) VALUES (projects[i], queued)
            ON CONFLICT (project) DO UPDATE SET pending = excluded.pending;
        RETURN NEXT;
    END LOOP;
END $$;
"#,
    r#"
-- Queues (docs/queues.md). Each statement that changes operations appends its net change
-- of each (project, type)'s PENDING and RUNNING-or-CANCELLING counts to queue_counts, in
-- its own transaction: appends never wait for each other, as updates of one counter row
-- would. A queue's counts are the sums of its rows (exact as of the read, scanning no
-- operations); each server folds the rows of every queue into one every second. The
-- oldest leasable PENDING operation of a queue is one probe of operations_oldest (or
-- operations_scheduled). A pause is a row of queue_pauses (op_type '-': every type of the
-- project), read by every lease under the project's shared queue lock, which a pause
-- takes exclusively: once a pause commits, no lease that read the queue before it is
-- still open.
CREATE TABLE queue_counts (
    project TEXT COLLATE "C" NOT NULL,
    op_type TEXT COLLATE "C" NOT NULL,
    pending BIGINT NOT NULL,
    running BIGINT NOT NULL
);
CREATE INDEX queue_counts_queue ON queue_counts (project, op_type);
INSERT INTO queue_counts (project, op_type, pending, running)
    SELECT project, op_type, count(*) FILTER (WHERE state = 'PENDING'),
        count(*) FILTER (WHERE state <> 'PENDING')
    FROM operations WHERE state IN ('PENDING', 'RUNNING', 'CANCELLING')
    GROUP BY project, op_type;
CREATE FUNCTION longrun_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO queue_counts (project, op_type, pending, running)
            SELECT project, op_type, count(*) FILTER (WHERE state = 'PENDING'),
                count(*) FILTER (WHERE state <> 'PENDING')
            FROM new_rows WHERE state IN ('PENDING', 'RUNNING', 'CANCELLING')
            GROUP BY project, op_type;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO queue_counts (project, op_type, pending, running)
            SELECT project, op_type, -count(*) FILTER (WHERE state = 'PENDING'),
                -count(*) FILTER (WHERE state <> 'PENDING')
            FROM old_rows WHERE state IN ('PENDING', 'RUNNING', 'CANCELLING')
            GROUP BY project, op_type;
    ELSE
        INSERT INTO queue_counts (project, op_type, pending, running)
            SELECT project, op_type, sum(pending), sum(running) FROM (
                SELECT project, op_type, (state = 'PENDING')::int AS pending,
                    (state IN ('RUNNING', 'CANCELLING'))::int AS running FROM new_rows
                UNION ALL
                SELECT project, op_type, -(state = 'PENDING')::int,
                    -(state IN ('RUNNING', 'CANCELLING'))::int FROM old_rows
            ) AS change
            GROUP BY project, op_type HAVING sum(pending) <> 0 OR sum(running) <> 0;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER operations_count_insert AFTER INSERT ON operations
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION longrun_count();
CREATE TRIGGER operations_count_update AFTER UPDATE ON operations
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION longrun_count();
CREATE TRIGGER operations_count_delete AFTER DELETE ON operations
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION longrun_count();
CREATE INDEX operations_oldest ON operations (project, op_type, create_time)
    WHERE state = 'PENDING' AND schedule_time IS NULL;
CREATE TABLE queue_pauses (
    project TEXT COLLATE "C" NOT NULL,
    op_type TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (project, op_type)
);
"#,
    r#"
-- Parents and children (docs/operations.md#parents-and-children): each operation's parent
-- ('' for none), set by the insert and never changed, and whether it ever had a child. A
-- child is inserted only while its parent is PENDING or RUNNING: longrun_insert locks the
-- parent row (the first child also sets has_children and bumps the parent's version), so a
-- parent's end or cancel and the insert of its child take turns. The move of an operation
-- with children out of PENDING or RUNNING records its cascade in the same transaction; the
-- cascade's row stays until every descendant is done.
ALTER TABLE operations ADD COLUMN parent TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE operations ADD COLUMN has_children BOOLEAN NOT NULL DEFAULT false;
CREATE INDEX operations_children ON operations (parent, state);
CREATE TABLE cascades (name TEXT COLLATE "C" PRIMARY KEY);
CREATE FUNCTION longrun_cascade() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO cascades (name) VALUES (NEW.name) ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER operations_cascade AFTER UPDATE OF state ON operations FOR EACH ROW
    WHEN (NEW.has_children AND OLD.state IN ('PENDING', 'RUNNING')
        AND NEW.state NOT IN ('PENDING', 'RUNNING'))
    EXECUTE FUNCTION longrun_cascade();
DROP FUNCTION longrun_insert(TEXT[], TEXT[], TEXT[], TEXT[], TEXT[], BIGINT[], BIGINT[],
    BIGINT[], BIGINT[], BIGINT[], BIGINT[], BIGINT[], TEXT[], BIGINT[], BIGINT[], BIGINT[],
    BIGINT[], TEXT[], TEXT[], BIGINT[], TEXT[], TEXT[], BIGINT[], BIGINT[], BIGINT[], TEXT[]);
CREATE FUNCTION longrun_insert(
    names TEXT[], projects TEXT[], states TEXT[], op_types TEXT[], descriptions TEXT[],
    priorities BIGINT[], attempts BIGINT[], create_times BIGINT[], update_times BIGINT[],
    start_times BIGINT[], end_times BIGINT[], error_codes BIGINT[], request_ids TEXT[],
    lease_expires BIGINT[], deadlines BIGINT[], cancel_times BIGINT[], versions BIGINT[],
    records TEXT[], has_childrens BOOLEAN[], payloads TEXT[], limits BIGINT[],
    concurrency_keys TEXT[], retry_ofs TEXT[], schedule_times BIGINT[],
    start_timeouts BIGINT[], start_deadlines BIGINT[], schedules TEXT[], parents TEXT[]
) RETURNS TABLE (outcome TEXT, existing TEXT) LANGUAGE plpgsql AS $$
DECLARE
    locked TEXT;
    queued BIGINT;
BEGIN
    FOR locked IN SELECT DISTINCT p FROM unnest(projects) AS p ORDER BY p LOOP
        PERFORM pg_advisory_xact_lock(hashtext(locked));
    END LOOP;
    FOR i IN 1 .. coalesce(array_length(names, 1), 0) LOOP
        existing := NULL;
        IF request_ids[i] IS NOT NULL THEN
            SELECT o.record INTO existing FROM operations AS o
                WHERE o.project = projects[i] AND o.request_id = request_ids[i];
            IF FOUND THEN
                outcome := 'existing';
                RETURN NEXT;
                CONTINUE;
            END IF;
        END IF;
        IF EXISTS (SELECT 1 FROM operations AS o WHERE o.name = names[i]) THEN
            outcome := 'taken';
            RETURN NEXT;
            CONTINUE;
        END IF;
        SELECT b.pending INTO queued FROM queue_bounds AS b WHERE b.project = projects[i];
        IF queued IS NULL OR queued >= limits[i] THEN
            SELECT count(*) INTO queued FROM (SELECT 1 FROM operations AS o
                WHERE o.project = projects[i] AND o.state = 'PENDING' LIMIT limits[i]) AS q;
        END IF;
        IF queued >= limits[i] THEN
            outcome := 'full';
        ELSIF parents[i] <> '' AND NOT EXISTS (SELECT 1 FROM operations AS o
                WHERE o.name = parents[i] AND o.state IN ('PENDING', 'RUNNING') FOR SHARE) THEN
            outcome := 'parent_closed';
        ELSE
            UPDATE operations AS o SET has_children = true, version = o.version + 1,
                record = jsonb_set(jsonb_set(o.record::jsonb, '{has_children}', 'true'),
                    '{version}', to_jsonb(o.version + 1))::text
                WHERE o.name = parents[i] AND NOT o.has_children;
            INSERT INTO operations (name, project, state, op_type, description, priority,
                attempt, create_time, update_time, start_time, end_time, error_code,
                request_id, lease_expire, deadline, cancel_time, version, record, has_children,
                payload, concurrency_key, retry_of, schedule_time, start_timeout,
                start_deadline, schedule, parent)
            VALUES (names[i], projects[i], states[i], op_types[i], descriptions[i],
                priorities[i], attempts[i], create_times[i], update_times[i], start_times[i],
                end_times[i], error_codes[i], request_ids[i], lease_expires[i], deadlines[i],
                cancel_times[i], versions[i], records[i], has_childrens[i], payloads[i],
                concurrency_keys[i], retry_ofs[i], schedule_times[i], start_timeouts[i],
                start_deadlines[i], schedules[i], parents[i]);
            queued := queued + 1;
            outcome := 'created';
        END IF;
        INSERT INTO queue_bounds (project, pending) VALUES (projects[i], queued)
            ON CONFLICT (project) DO UPDATE SET pending = excluded.pending;
        RETURN NEXT;
    END LOOP;
END $$;
"#,
    r#"
-- List filters answered from indexes at any size (docs/operations.md#filter): one index per
-- filterable column in list order, the end time, and the words of descriptions (a GIN index
-- of their tsvector: the runs of letters and digits, lowercased).
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
CREATE FUNCTION longrun_words(description TEXT) RETURNS tsvector
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN to_tsvector('simple'::regconfig,
        regexp_replace(lower(description), '[^[:alnum:]]+', ' ', 'g'));
CREATE INDEX operations_words ON operations USING gin (longrun_words(description));
"#,
    r#"
-- How many operations each (project, type) holds in each state: the triggers append each
-- statement's changes as rows, in its own transaction (appends never wait for each other);
-- a count is the sum of its rows, and the servers fold them with queue_counts.
CREATE TABLE state_counts (
    project TEXT COLLATE "C" NOT NULL,
    op_type TEXT COLLATE "C" NOT NULL,
    state   TEXT COLLATE "C" NOT NULL,
    n       BIGINT NOT NULL
);
INSERT INTO state_counts (project, op_type, state, n)
    SELECT project, op_type, state, count(*) FROM operations GROUP BY project, op_type, state;
CREATE FUNCTION longrun_count_states() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO state_counts (project, op_type, state, n)
            SELECT project, op_type, state, count(*) FROM new_rows
            GROUP BY project, op_type, state;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO state_counts (project, op_type, state, n)
            SELECT project, op_type, state, -count(*) FROM old_rows
            GROUP BY project, op_type, state;
    ELSE
        INSERT INTO state_counts (project, op_type, state, n)
            SELECT project, op_type, state, sum(n) FROM (
                SELECT project, op_type, state, 1 AS n FROM new_rows
                UNION ALL
                SELECT project, op_type, state, -1 FROM old_rows
            ) AS change
            GROUP BY project, op_type, state HAVING sum(n) <> 0;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER operations_state_count_insert AFTER INSERT ON operations
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION longrun_count_states();
CREATE TRIGGER operations_state_count_update AFTER UPDATE ON operations
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION longrun_count_states();
CREATE TRIGGER operations_state_count_delete AFTER DELETE ON operations
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION longrun_count_states();
"#,
    r#"
-- The queue limit's exact figure, when the bound in queue_bounds is missing or reached, is
-- the sum of the project's rows in queue_counts (a few rows a type, as of this
-- transaction) instead of a count of its PENDING operations: with a million of them that
-- count read the table for seconds while holding the project's lock.
CREATE OR REPLACE FUNCTION longrun_insert(
    names TEXT[], projects TEXT[], states TEXT[], op_types TEXT[], descriptions TEXT[],
    priorities BIGINT[], attempts BIGINT[], create_times BIGINT[], update_times BIGINT[],
    start_times BIGINT[], end_times BIGINT[], error_codes BIGINT[], request_ids TEXT[],
    lease_expires BIGINT[], deadlines BIGINT[], cancel_times BIGINT[], versions BIGINT[],
    records TEXT[], has_childrens BOOLEAN[], payloads TEXT[], limits BIGINT[],
    concurrency_keys TEXT[], retry_ofs TEXT[], schedule_times BIGINT[],
    start_timeouts BIGINT[], start_deadlines BIGINT[], schedules TEXT[], parents TEXT[]
) RETURNS TABLE (outcome TEXT, existing TEXT) LANGUAGE plpgsql AS $$
DECLARE
    locked TEXT;
    queued BIGINT;
BEGIN
    FOR locked IN SELECT DISTINCT p FROM unnest(projects) AS p ORDER BY p LOOP
        PERFORM pg_advisory_xact_lock(hashtext(locked));
    END LOOP;
    FOR i IN 1 .. coalesce(array_length(names, 1), 0) LOOP
        existing := NULL;
        IF request_ids[i] IS NOT NULL THEN
            SELECT o.record INTO existing FROM operations AS o
                WHERE o.project = projects[i] AND o.request_id = request_ids[i];
            IF FOUND THEN
                outcome := 'existing';
                RETURN NEXT;
                CONTINUE;
            END IF;
        END IF;
        IF EXISTS (SELECT 1 FROM operations AS o WHERE o.name = names[i]) THEN
            outcome := 'taken';
            RETURN NEXT;
            CONTINUE;
        END IF;
        SELECT b.pending INTO queued FROM queue_bounds AS b WHERE b.project = projects[i];
        IF queued IS NULL OR queued >= limits[i] THEN
            SELECT coalesce(sum(c.pending), 0) INTO queued FROM queue_counts AS c
                WHERE c.project = projects[i];
        END IF;
        IF queued >= limits[i] THEN
            outcome := 'full';
        ELSIF parents[i] <> '' AND NOT EXISTS (SELECT 1 FROM operations AS o
                WHERE o.name = parents[i] AND o.state IN ('PENDING', 'RUNNING') FOR SHARE) THEN
            outcome := 'parent_closed';
        ELSE
            UPDATE operations AS o SET has_children = true, version = o.version + 1,
                record = jsonb_set(jsonb_set(o.record::jsonb, '{has_children}', 'true'),
                    '{version}', to_jsonb(o.version + 1))::text
                WHERE o.name = parents[i] AND NOT o.has_children;
            INSERT INTO operations (name, project, state, op_type, description, priority,
                attempt, create_time, update_time, start_time, end_time, error_code,
                request_id, lease_expire, deadline, cancel_time, version, record, has_children,
                payload, concurrency_key, retry_of, schedule_time, start_timeout,
                start_deadline, schedule, parent)
            VALUES (names[i], projects[i], states[i], op_types[i], descriptions[i],
                priorities[i], attempts[i], create_times[i], update_times[i], start_times[i],
                end_times[i], error_codes[i], request_ids[i], lease_expires[i], deadlines[i],
                cancel_times[i], versions[i], records[i], has_childrens[i], payloads[i],
                concurrency_keys[i], retry_ofs[i], schedule_times[i], start_timeouts[i],
                start_deadlines[i], schedules[i], parents[i]);
            queued := queued + 1;
            outcome := 'created';
        END IF;
        INSERT INTO queue_bounds (project, pending) VALUES (projects[i], queued)
            ON CONFLICT (project) DO UPDATE SET pending = excluded.pending;
        RETURN NEXT;
    END LOOP;
END $$;
"#,
];
