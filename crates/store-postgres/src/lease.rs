//! Leasing in one transaction (docs/projects.md#fair-leasing): projects in turn
//! (`fair::Rotation`), each project's queue head read `FOR UPDATE SKIP LOCKED`, and the
//! limits (`max_running`, the export cap, each type's `key_concurrency`) counted under the
//! project's leasing lock, so that they hold exactly across servers.

use super::{backend, pg, record, write_update};
use deadpool_postgres::GenericClient;
use longrun_store::{Error, LeaseQuery, Result, Running};
use longrun_types::Operation;
use std::collections::HashSet;
use std::sync::Mutex;

/// How many times a lease starts again after a pause landed in the middle of it.
const PAUSED_RETRIES: usize = 3;

/// Leases up to `query.limit` PENDING operations in one transaction on `client`, starting
/// after the project in `cursor`, which it moves when it took something. A lease that
/// finds, as it ends, that a queue it took from was paused meanwhile writes nothing and
/// starts again (the queue heads pass over paused queues).
pub(crate) async fn lease(
    client: &mut deadpool_postgres::Object,
    query: &LeaseQuery,
    cursor: &Mutex<String>,
) -> Result<Vec<(Operation, serde_json::Value)>> {
    for _ in 0..PAUSED_RETRIES {
        if let Some(leased) = lease_once(client, query, cursor).await? {
            return Ok(leased);
        }
    }
    Ok(Vec::new())
}

/// One lease transaction; `None` when a queue it took from was paused before it could
/// commit (nothing written).
async fn lease_once(
    client: &mut deadpool_postgres::Object,
    query: &LeaseQuery,
    cursor: &Mutex<String>,
) -> Result<Option<Vec<(Operation, serde_json::Value)>>> {
    let tx = client.transaction().await.map_err(pg)?;
    let next = tx
        .prepare_cached(
            "SELECT project FROM operations WHERE state = 'PENDING' AND project > $1 \
             AND ($2::text[] IS NULL OR project = ANY($2)) ORDER BY project LIMIT 1",
        )
        .await
        .map_err(pg)?;
    // A project's queue head: the head of each type's queue (one probe of
    // `operations_fair` each for operations without a scheduleTime, one of
    // `operations_scheduled` for scheduled ones that are due), then the first of those;
    // rows other leases hold, paused queues, capped exports ($3), keys at their limit (the
    // (type, key) pairs of $4 and $5), operations past their start deadline at $6 and
    // children whose parent is not RUNNING are passed over. A child's parent is read `FOR
    // SHARE` until the lease commits, so the parent's end or cancel waits for it (and the
    // cascade then sees the child RUNNING); a parent locked by a write in flight is passed
    // over (`SKIP LOCKED`) rather than waited for, so a lease never waits on a row.
    let heads = [
        tx.prepare_cached(&head_query("schedule_time IS NULL"))
            .await
            .map_err(pg)?,
        tx.prepare_cached(&head_query(
            "schedule_time IS NOT NULL AND schedule_time <= $6",
        ))
        .await
        .map_err(pg)?,
    ];
    let now = query.now.millis();
    let max_running = i64::try_from(query.max_running).unwrap_or(i64::MAX);
    let caps_exports = longrun_store::caps_exports(query);
    let mut fair = longrun_store::fair::Rotation::new(cursor.lock().expect("cursor").clone());
    let mut leased = Vec::new();
    let mut locked = HashSet::new();
    while leased.len() < query.limit {
        let row = tx
            .query_opt(&next, &[&fair.after(), &query.projects])
            .await
            .map_err(pg)?;
        let Some(project) = fair.visit(row.map(|r| r.get::<_, String>(0))) else {
            break;
        };
        if fair.is_closed(&project) {
            continue;
        }
        if max_running > 0
            && (!lock_project(&tx, &project, &mut locked).await?
                || running_count(&tx, &project).await? >= max_running)
        {
            fair.close(&project);
            continue;
        }
        let taken = loop {
            let no_exports = fair.exports_capped(&project);
            // Capped types are not asked for: their queries would find nothing after
            // reading every PENDING operation of the type.
            let types: Vec<&String> = query
                .types
                .iter()
                .filter(|t| !(no_exports && t.starts_with(longrun_store::EXPORT_PREFIX)))
                .collect();
            if types.is_empty() {
                break None;
            }
            let (held_types, held_keys) = fair.held(&project);
            let mut best: Option<tokio_postgres::Row> = None;
            for head in &heads {
                let found = tx
                    .query_opt(
                        head,
                        &[&project, &types, &no_exports, &held_types, &held_keys, &now],
                    )
                    .await
                    .map_err(pg)?;
                if let Some(found) = found
                    && best.as_ref().is_none_or(|b| rank(&found) < rank(b))
                {
                    best = Some(found);
                }
            }
            let Some(row) = best else {
                break None;
            };
            let op = record(&row)?;
            let limited =
                !no_exports && caps_exports && op.op_type.starts_with(longrun_store::EXPORT_PREFIX);
            let keyed = longrun_store::key_limited(query, &op);
            if (limited || keyed.is_some()) && !lock_project(&tx, &project, &mut locked).await? {
                break None;
            }
            if limited {
                let (count, cap) = export_count(&tx, &project, query.max_exports).await?;
                if count >= cap {
                    fair.cap_exports(&project);
                    continue;
                }
            }
            if let Some((key, limit)) = keyed
                && key_count(&tx, &project, &op.op_type, key).await?
                    >= i64::try_from(limit).unwrap_or(i64::MAX)
            {
                fair.hold_key(&project, &op.op_type, key);
                continue;
            }
            break Some((op, row.get::<_, String>(1)));
        };
        let Some((op, payload)) = taken else {
            fair.close(&project);
            continue;
        };
        // Written at once: the next head read must not see it PENDING.
        let started = write_update(&tx, &(query.start)(op))
            .await?
            .ok_or_else(|| {
                Error::Backend(format!("leased row of {project} changed under its lock"))
            })?;
        leased.push((started, serde_json::from_str(&payload).map_err(backend)?));
        fair.took(&project);
    }
    if paused_meanwhile(&tx, &leased).await? {
        return Ok(None); // rolled back as `tx` drops
    }
    tx.commit().await.map_err(pg)?;
    // Only a lease that took something moves the rotation: a concurrent empty lease
    // (another worker's types) must not put back the cursor it started from.
    if !leased.is_empty() {
        *cursor.lock().expect("cursor") = fair.into_cursor();
    }
    Ok(Some(leased))
}

/// Whether a queue that `leased` took from is paused now, read under each of its projects'
/// queue locks (shared, in project order, held until the transaction ends; see `queues`):
/// a pause takes the lock exclusively, so one that commits before this read is seen here,
/// and one that comes after waits for this lease's commit. Its answer then comes after
/// every lease that did not see it, and the locks are held only for this read and the
/// commit, not for the whole lease. The read is a statement after the locks', so that its
/// snapshot is taken once they are held (a pause that committed meanwhile is seen).
async fn paused_meanwhile(
    tx: &impl GenericClient,
    leased: &[(Operation, serde_json::Value)],
) -> Result<bool> {
    if leased.is_empty() {
        return Ok(false);
    }
    let mut queues: Vec<(String, String)> = leased
        .iter()
        .map(|(op, _)| (op.name.project().as_str().to_string(), op.op_type.clone()))
        .collect();
    queues.sort();
    queues.dedup();
    let mut projects: Vec<&str> = queues.iter().map(|(p, _)| p.as_str()).collect();
    projects.dedup();
    let lock = tx
        .prepare_cached("SELECT pg_advisory_xact_lock_shared($1, hashtext($2))")
        .await
        .map_err(pg)?;
    for project in projects {
        tx.execute(&lock, &[&crate::queues::QUEUE_LOCK, &project])
            .await
            .map_err(pg)?;
    }
    let (projects, types): (Vec<String>, Vec<String>) = queues.into_iter().unzip();
    let paused = tx
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM queue_pauses AS p \
             JOIN unnest($1::text[], $2::text[]) AS l(project, op_type) \
             ON p.project = l.project AND p.op_type IN (l.op_type, '-'))",
        )
        .await
        .map_err(pg)?;
    Ok(tx
        .query_one(&paused, &[&projects, &types])
        .await
        .map_err(pg)?
        .get(0))
}

/// The queue head of (project $1, types $2) among the rows that meet `which` (see
/// [`lease`]): record, payload, and its place in lease order.
fn head_query(which: &str) -> String {
    format!(
        "SELECT o.record, o.payload, o.priority, o.create_time, o.name \
         FROM unnest($2::text[]) AS t(op_type) \
         CROSS JOIN LATERAL (SELECT record, payload, priority, create_time, name \
         FROM operations AS q WHERE state = 'PENDING' AND {which} AND project = $1 \
         AND op_type = t.op_type AND (NOT $3 OR op_type NOT LIKE 'EXPORT\\_%') \
         AND NOT EXISTS (SELECT 1 FROM queue_pauses AS p WHERE p.project = $1 \
         AND p.op_type IN (t.op_type, '-')) \
         AND NOT EXISTS (SELECT 1 FROM unnest($4::text[], $5::text[]) AS h(op_type, k) \
         WHERE h.op_type = t.op_type AND h.k = q.concurrency_key) \
         AND (start_deadline IS NULL OR start_deadline >= $6::bigint OR start_time IS NOT NULL) \
         AND (q.parent = '' OR EXISTS (SELECT 1 FROM operations AS pa \
         WHERE pa.name = q.parent AND pa.state = 'RUNNING' FOR SHARE SKIP LOCKED)) \
         ORDER BY priority DESC, create_time ASC, name ASC \
         LIMIT 1 FOR UPDATE SKIP LOCKED) AS o \
         ORDER BY o.priority DESC, o.create_time ASC, o.name ASC LIMIT 1"
    )
}

/// A head's place in lease order: priority descending, then age, then name.
fn rank(row: &tokio_postgres::Row) -> (i64, i64, String) {
    (-row.get::<_, i64>(2), row.get(3), row.get(4))
}

/// Takes `project`'s leasing lock for the rest of this transaction; leases on other
/// servers take turns with it, so the counts read under it (the running limit, the export
/// cap, each key's `key_concurrency`) hold exactly across servers. `locked` lists the
/// projects this lease holds already. The first is waited for; a lease that holds one only
/// tries for another and answers false when another lease has it (the caller passes that
/// project over for this lease), so two leases that walk the projects in different orders
/// never wait for each other.
async fn lock_project(
    tx: &impl GenericClient,
    project: &str,
    locked: &mut HashSet<String>,
) -> Result<bool> {
    if locked.contains(project) {
        return Ok(true);
    }
    let sql = if locked.is_empty() {
        "SELECT true FROM pg_advisory_xact_lock(hashtext('running ' || $1))"
    } else {
        "SELECT pg_try_advisory_xact_lock(hashtext('running ' || $1))"
    };
    let lock = tx.prepare_cached(sql).await.map_err(pg)?;
    let taken: bool = tx.query_one(&lock, &[&project]).await.map_err(pg)?.get(0);
    if taken {
        locked.insert(project.to_string());
    }
    Ok(taken)
}

/// The RUNNING and CANCELLING operations of `project` (under its leasing lock, see
/// [`lock_project`]).
async fn running_count(tx: &impl GenericClient, project: &str) -> Result<i64> {
    let count = tx
        .prepare_cached(
            "SELECT count(*) FROM operations WHERE project = $1 \
             AND state IN ('RUNNING', 'CANCELLING')",
        )
        .await
        .map_err(pg)?;
    Ok(tx.query_one(&count, &[&project]).await.map_err(pg)?.get(0))
}

/// `Leasing::running`: one read of the counts a lease's limits apply to.
pub(crate) async fn running(
    client: &impl GenericClient,
    project: &str,
    op_type: &str,
    key: Option<&str>,
) -> Result<Running> {
    let counts = client
        .prepare_cached(
            "SELECT count(*), count(*) FILTER (WHERE op_type LIKE 'EXPORT\\_%'), \
             count(*) FILTER (WHERE op_type = $2 AND concurrency_key = $3), \
             (SELECT max_concurrent_exports FROM project_configs WHERE project = $1) \
             FROM operations WHERE project = $1 AND state IN ('RUNNING', 'CANCELLING')",
        )
        .await
        .map_err(pg)?;
    let row = client
        .query_one(&counts, &[&project, &op_type, &key])
        .await
        .map_err(pg)?;
    let count = |i: usize| row.get::<_, i64>(i).max(0) as u64;
    Ok(Running {
        all: count(0),
        exports: count(1),
        keyed: count(2),
        own_export_cap: row.get::<_, Option<i64>>(3).unwrap_or(0).max(0) as u64,
    })
}

/// The exports (types starting `EXPORT_`) RUNNING or CANCELLING of `project` and its
/// export cap within `plan` (under its leasing lock, see [`lock_project`]).
async fn export_count(tx: &impl GenericClient, project: &str, plan: u64) -> Result<(i64, i64)> {
    let count = tx
        .prepare_cached(
            "SELECT (SELECT count(*) FROM operations WHERE project = $1 \
             AND state IN ('RUNNING', 'CANCELLING') AND op_type LIKE 'EXPORT\\_%'), \
             (SELECT max_concurrent_exports FROM project_configs WHERE project = $1)",
        )
        .await
        .map_err(pg)?;
    let row = tx.query_one(&count, &[&project]).await.map_err(pg)?;
    let own = row.get::<_, Option<i64>>(1).unwrap_or(0).max(0) as u64;
    let cap = longrun_store::export_cap(own, plan);
    Ok((row.get(0), i64::try_from(cap).unwrap_or(i64::MAX)))
}

/// The RUNNING and CANCELLING operations of one (project, type, concurrency key) (under
/// the project's leasing lock, see [`lock_project`]).
async fn key_count(
    tx: &impl GenericClient,
    project: &str,
    op_type: &str,
    key: &str,
) -> Result<i64> {
    let count = tx
        .prepare_cached(
            "SELECT count(*) FROM operations WHERE project = $1 AND op_type = $2 \
             AND concurrency_key = $3 AND state IN ('RUNNING', 'CANCELLING')",
        )
        .await
        .map_err(pg)?;
    Ok(tx
        .query_one(&count, &[&project, &op_type, &key])
        .await
        .map_err(pg)?
        .get(0))
}
