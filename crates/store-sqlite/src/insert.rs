//! An insert's statements: the checks of `Operations::insert` (request-id dedup, a taken
//! name, the queue limit, the parent) and what goes beside the row (`Counts`).

use crate::{INSERT, backend, get_record, row, trees};
use longrun_store::{Error, Inserted, NewOperation, Result};
use longrun_types::{Operation, State};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;

/// Inserts `new` on the writer's connection with the request-id dedup and the queue limit
/// (see [`longrun_store::Operations::insert`]), adding what it counts to `counts` (which the caller writes
/// once its inserts are done).
pub fn insert_one(
    conn: &Connection,
    new: NewOperation,
    payload: &str,
    counts: &mut Counts,
) -> Result<Inserted> {
    let mut op = new.operation;
    let project = op.name.project();
    if let Some(request_id) = &op.request_id {
        let sql = "SELECT record FROM operations WHERE project = ?1 AND request_id = ?2";
        if let Some(existing) = get_record(conn, sql, params![project.as_str(), request_id])? {
            return Ok(Inserted::Existing(existing));
        }
    }
    let taken: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM operations WHERE name = ?1)")
        .and_then(|mut s| s.query_row([op.name.as_str()], |r| r.get(0)))
        .map_err(backend)?;
    if taken {
        return Err(Error::AlreadyExists(op.name));
    }
    if counts.pending(conn, project.as_str())? >= new.max_queued {
        return Err(Error::QueueFull {
            limit: new.max_queued,
        });
    }
    if let Some(parent) = &op.parent {
        trees::adopt(conn, parent)?;
    }
    op.version = 1;
    let values = row(&op, payload)?;
    conn.prepare_cached(INSERT)
        .and_then(|mut s| s.execute(rusqlite::params_from_iter(values)))
        .map_err(backend)?;
    counts.inserted(conn, &op)?;
    Ok(Inserted::Created(op))
}

/// What a write's inserts add beside their rows: the words of each in the full-text index
/// (written at once, by row id), and the counts, gathered and written once at the end of
/// the write ([`Counts::write`]): each project's PENDING count (`project_queue`, what the
/// queue limit reads), each queue's PENDING and RUNNING counts (`queue_counts`) and each
/// state's count (`state_counts`). Updates and deletes keep them by triggers; inserts,
/// which are most of a bulk write, by these statements (migration 17 says why).
#[derive(Default)]
pub struct Counts {
    /// Project → its PENDING count as stored before this write, and what this write added.
    pending: HashMap<String, (u64, u64)>,
    /// (project, type) → PENDING and RUNNING added.
    queues: HashMap<(String, String), (i64, i64)>,
    /// (project, type, state) → operations added.
    states: HashMap<(String, String, State), i64>,
}

impl Counts {
    /// The project's PENDING operations, with this write's inserts.
    pub fn pending(&mut self, conn: &Connection, project: &str) -> Result<u64> {
        let (stored, added) = *self.project(conn, project)?;
        Ok(stored + added)
    }

    /// The project's PENDING count as stored before this write (read on first use), and
    /// what this write added.
    fn project(&mut self, conn: &Connection, project: &str) -> Result<&mut (u64, u64)> {
        if !self.pending.contains_key(project) {
            let stored: u64 = conn
                .prepare_cached("SELECT pending FROM project_queue WHERE project = ?1")
                .and_then(|mut s| s.query_row([project], |r| r.get(0)).optional())
                .map_err(backend)?
                .unwrap_or(0);
            self.pending.insert(project.to_string(), (stored, 0));
        }
        Ok(self.pending.get_mut(project).expect("inserted above"))
    }

    /// `op`'s row was just inserted (the connection's last insert).
    pub fn inserted(&mut self, conn: &Connection, op: &Operation) -> Result<()> {
        conn.prepare_cached("INSERT INTO operations_words (rowid, description) VALUES (?1, ?2)")
            .and_then(|mut s| s.execute(params![conn.last_insert_rowid(), op.description]))
            .map_err(backend)?;
        let project = op.name.project().as_str().to_string();
        let (pending, running) = match op.state {
            State::Pending => (1, 0),
            State::Running | State::Cancelling => (0, 1),
            _ => (0, 0),
        };
        if pending > 0 {
            self.project(conn, &project)?.1 += 1;
        }
        if pending + running > 0 {
            let queue = self
                .queues
                .entry((project.clone(), op.op_type.clone()))
                .or_default();
            queue.0 += pending;
            queue.1 += running;
        }
        *self
            .states
            .entry((project, op.op_type.clone(), op.state))
            .or_default() += 1;
        Ok(())
    }

    /// Writes the counts gathered, one statement per project, queue and state.
    pub fn write(self, conn: &Connection) -> Result<()> {
        let run = |sql: &str, params: &[&dyn rusqlite::ToSql]| {
            conn.prepare_cached(sql)
                .and_then(|mut s| s.execute(params))
                .map_err(backend)
        };
        for (project, (_, added)) in self.pending {
            if added > 0 {
                run(
                    "INSERT INTO project_queue (project, pending) VALUES (?1, ?2) \
                     ON CONFLICT (project) DO UPDATE SET pending = pending + excluded.pending",
                    &[&project, &added],
                )?;
            }
        }
        for ((project, op_type), (pending, running)) in self.queues {
            run(
                "INSERT INTO queue_counts (project, op_type, pending, running) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (project, op_type) DO UPDATE \
                 SET pending = pending + excluded.pending, running = running + excluded.running",
                &[&project, &op_type, &pending, &running],
            )?;
        }
        for ((project, op_type, state), n) in self.states {
            run(
                "INSERT INTO state_counts (project, op_type, state, n) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (project, op_type, state) DO UPDATE SET n = n + excluded.n",
                &[&project, &op_type, &state.as_str(), &n],
            )?;
        }
        Ok(())
    }
}
