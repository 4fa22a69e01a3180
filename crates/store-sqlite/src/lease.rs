//! Leasing in the writer's transaction (docs/projects.md#fair-leasing): projects in turn
//! (`fair::Rotation`), each project's queue head by priority then age, and the limits held
//! exactly because nothing else writes meanwhile: `max_running`, the export cap and each
//! type's `key_concurrency`.

use super::{backend, own_export_cap, record, write_update};
use longrun_store::{LeaseQuery, Result, Running};
use longrun_types::Operation;
use rusqlite::types::Value as Sql;
use rusqlite::{Connection, OptionalExtension, params};
use std::sync::Mutex;

/// The conditions of a queue head of (project ?1, type ?2) at time ?5: no capped export
/// (?3), no key at its limit (?4, a JSON list), not past its start deadline, no parent or a
/// RUNNING one.
macro_rules! head_conditions {
    () => {
        "project = ?1 AND op_type = ?2 AND (?3 = 0 OR op_type NOT GLOB 'EXPORT_*') \
         AND (?4 IS NULL OR concurrency_key IS NULL \
         OR concurrency_key NOT IN (SELECT value FROM json_each(?4))) \
         AND (start_deadline IS NULL OR start_deadline >= ?5 OR start_time IS NOT NULL) \
         AND (operations.parent = '' OR EXISTS (SELECT 1 FROM operations AS p \
         WHERE p.name = operations.parent AND p.state = 'RUNNING'))"
    };
}

/// The queue head among operations without a scheduleTime (`operations_fair`).
const HEAD_READY: &str = concat!(
    "SELECT priority, create_time, name, record, payload FROM operations \
     WHERE state = 'PENDING' AND schedule_time IS NULL AND ",
    head_conditions!(),
    " ORDER BY priority DESC, create_time ASC, name ASC LIMIT 1"
);

/// The queue head among scheduled operations that are due (`operations_scheduled`: the due
/// ones are read and ranked, and they are few, as leases take them when they come due).
const HEAD_SCHEDULED: &str = concat!(
    "SELECT priority, create_time, name, record, payload FROM operations \
     WHERE state = 'PENDING' AND schedule_time IS NOT NULL AND schedule_time <= ?5 AND ",
    head_conditions!(),
    " ORDER BY priority DESC, create_time ASC, name ASC LIMIT 1"
);

/// A row's place in lease order: priority negated (highest first), then age, then name.
type Rank = (i64, i64, String);

/// Leases up to `query.limit` PENDING operations on `conn` (the writer's connection),
/// starting after the project in `cursor`, which it moves when it took something.
pub(crate) fn lease(
    conn: &Connection,
    query: &LeaseQuery,
    cursor: &Mutex<String>,
) -> Result<Vec<(Operation, serde_json::Value)>> {
    // A project's queue head: the head of each type's queue (one probe of
    // `operations_fair` for operations without a scheduleTime and one of
    // `operations_scheduled` for those that are due, passing over capped exports, keys at
    // their limit and operations past their start deadline), then the first of those in
    // lease order.
    let head =
        |project: &str, fair: &longrun_store::fair::Rotation| -> Result<Option<(String, String)>> {
            let no_exports = fair.exports_capped(project);
            let mut best: Option<(Rank, (String, String))> = None;
            for op_type in &query.types {
                // A capped type is passed over without reading its queue: its queries
                // would find nothing after reading every PENDING operation of the type.
                let capped = no_exports && op_type.starts_with(longrun_store::EXPORT_PREFIX);
                if capped || paused(conn, project, op_type)? {
                    continue;
                }
                let held = match fair.held_keys(project, op_type) {
                    [] => Sql::Null,
                    keys => Sql::Text(serde_json::to_string(keys).map_err(backend)?),
                };
                for sql in [HEAD_READY, HEAD_SCHEDULED] {
                    let found = conn
                        .prepare_cached(sql)
                        .and_then(|mut s| {
                            s.query_row(
                                rusqlite::params![
                                    project,
                                    op_type,
                                    i64::from(no_exports),
                                    held,
                                    query.now.millis()
                                ],
                                |r| {
                                    // Lease order: priority descending, then age, then name.
                                    let key = (-r.get::<_, i64>(0)?, r.get(1)?, r.get(2)?);
                                    Ok((key, (r.get(3)?, r.get(4)?)))
                                },
                            )
                            .optional()
                        })
                        .map_err(backend)?;
                    if let Some(found) = found
                        && best.as_ref().is_none_or(|b| found.0 < b.0)
                    {
                        best = Some(found);
                    }
                }
            }
            Ok(best.map(|(_, row)| row))
        };
    let within: Option<std::collections::HashSet<&String>> =
        query.projects.as_ref().map(|p| p.iter().collect());
    let mut fair = longrun_store::fair::Rotation::new(cursor.lock().expect("cursor").clone());
    let mut leased = Vec::new();
    while leased.len() < query.limit {
        let next: Option<String> = conn
            .prepare_cached(
                "SELECT project FROM operations WHERE state = 'PENDING' \
                 AND project > ?1 ORDER BY project LIMIT 1",
            )
            .and_then(|mut s| s.query_row([fair.after()], |r| r.get(0)).optional())
            .map_err(backend)?;
        let Some(project) = fair.visit(next) else {
            break;
        };
        if fair.is_closed(&project) || within.as_ref().is_some_and(|w| !w.contains(&project)) {
            continue;
        }
        if query.max_running > 0 {
            let count: u64 = conn
                .prepare_cached(
                    "SELECT count(*) FROM operations WHERE project = ?1 \
                     AND state IN ('RUNNING', 'CANCELLING')",
                )
                .and_then(|mut s| s.query_row([&project], |r| r.get(0)))
                .map_err(backend)?;
            if count >= query.max_running {
                fair.close(&project);
                continue;
            }
        }
        let taken = loop {
            let Some((text, payload)) = head(&project, &fair)? else {
                break None;
            };
            let op = record(text)?;
            if !fair.exports_capped(&project)
                && longrun_store::caps_exports(query)
                && op.op_type.starts_with(longrun_store::EXPORT_PREFIX)
            {
                let (count, cap) = export_count(conn, &project, query.max_exports)?;
                if count >= cap {
                    fair.cap_exports(&project);
                    continue;
                }
            }
            if let Some((key, limit)) = longrun_store::key_limited(query, &op)
                && key_count(conn, &project, &op.op_type, key)? >= limit
            {
                fair.hold_key(&project, &op.op_type, key);
                continue;
            }
            break Some((op, payload));
        };
        let Some((op, payload)) = taken else {
            fair.close(&project);
            continue;
        };
        let started = write_update(conn, (query.start)(op))?;
        leased.push((started, serde_json::from_str(&payload).map_err(backend)?));
        fair.took(&project);
    }
    if !leased.is_empty() {
        *cursor.lock().expect("cursor") = fair.into_cursor();
    }
    Ok(leased)
}

/// `Leasing::running`: one read of the counts a lease's limits apply to.
pub(crate) fn running(
    conn: &Connection,
    project: &str,
    op_type: &str,
    key: Option<&str>,
) -> Result<Running> {
    conn.prepare_cached(
        "SELECT count(*), coalesce(sum(op_type GLOB 'EXPORT_*'), 0), \
         coalesce(sum(op_type = ?2 AND concurrency_key = ?3), 0), \
         (SELECT max_concurrent_exports FROM project_configs WHERE project = ?1) \
         FROM operations WHERE project = ?1 AND state IN ('RUNNING', 'CANCELLING')",
    )
    .and_then(|mut s| {
        s.query_row(params![project, op_type, key], |r| {
            Ok(Running {
                all: r.get(0)?,
                exports: r.get(1)?,
                keyed: r.get(2)?,
                own_export_cap: r.get::<_, Option<i64>>(3)?.map_or(0, |n| n.max(0) as u64),
            })
        })
    })
    .map_err(backend)
}

/// A project's exports RUNNING or CANCELLING, and its export cap within `plan`.
fn export_count(conn: &Connection, project: &str, plan: u64) -> Result<(u64, u64)> {
    let count: u64 = conn
        .prepare_cached(
            "SELECT count(*) FROM operations WHERE project = ?1 \
             AND state IN ('RUNNING', 'CANCELLING') AND op_type GLOB 'EXPORT_*'",
        )
        .and_then(|mut s| s.query_row([project], |r| r.get(0)))
        .map_err(backend)?;
    Ok((
        count,
        longrun_store::export_cap(own_export_cap(conn, project)?, plan),
    ))
}

/// The RUNNING or CANCELLING operations of one (project, type, concurrency key).
fn key_count(conn: &Connection, project: &str, op_type: &str, key: &str) -> Result<u64> {
    conn.prepare_cached(
        "SELECT count(*) FROM operations WHERE project = ?1 AND op_type = ?2 \
         AND concurrency_key = ?3 AND state IN ('RUNNING', 'CANCELLING')",
    )
    .and_then(|mut s| s.query_row(params![project, op_type, key], |r| r.get(0)))
    .map_err(backend)
}

/// Whether the queue of `op_type` in `project` is paused, alone or with every type of the
/// project (docs/queues.md).
fn paused(conn: &Connection, project: &str, op_type: &str) -> Result<bool> {
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM queue_pauses WHERE project = ?1 AND op_type IN (?2, '-'))",
    )
    .and_then(|mut s| s.query_row(params![project, op_type], |r| r.get(0)))
    .map_err(backend)
}
