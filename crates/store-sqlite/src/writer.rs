//! The single writer thread and its group commit.
//!
//! Each write runs in a savepoint of the group's transaction, so SQLite copies every page a
//! write first changes into the savepoint's statement journal. A submit changes about
//! thirty pages (the row, its indexes, the full-text index, the counters), past the 64 KiB
//! SQLite holds in memory, so each group created, wrote and unlinked a temporary file for
//! them. Groups of small writes therefore keep that journal in memory (`temp_store =
//! MEMORY`, which SQLite reads at each `BEGIN`): one client's submits went from about 1,070
//! to 1,250 a second, a worker's drain from 1,410 to 1,690 jobs a second. A bulk write (an
//! import, a batch of a thousand, an expiry) keeps it on a file: an in-memory journal makes
//! each statement's own savepoint slower as it grows (batches of 1,000 submits went from
//! 9,400-10,300 to 5,600-5,800 operations a second with it; seeding a million operations in
//! writes of 20,000 took 20 minutes instead of 80 s).

use longrun_store::{Error, Result};
use rusqlite::Connection;
use std::sync::mpsc;
use std::thread::JoinHandle;

/// Most writes committed together in one transaction.
const MAX_BATCH: usize = 512;

/// Runs against the writer's connection inside a savepoint (or, given none, only notes that
/// it did not run because the transaction could not begin); returns how to answer the
/// caller once the commit's fate is known.
type Run = Box<dyn FnOnce(Option<&Connection>) -> Box<dyn FnOnce(Result<()>) + Send> + Send>;

/// A write; a bulk one (many rows) has its group's statement journal on a file.
struct Job {
    run: Run,
    bulk: bool,
}

pub struct Writer {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    pub fn start(conn: Connection) -> Writer {
        let (jobs, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(conn, rx))
            .expect("spawn the writer thread");
        Writer {
            jobs: Some(jobs),
            thread: Some(thread),
        }
    }

    /// Runs `f` in the next group commit and answers once that commit is durable. If `f`
    /// fails, its own changes are rolled back and the rest of the group commits.
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.write_sized(false, f).await
    }

    /// `write`, for a write of many rows: its group's statement journal goes to a file.
    pub async fn write_bulk<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.write_sized(true, f).await
    }

    async fn write_sized<T, F>(&self, bulk: bool, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let run: Run = Box::new(move |conn| {
            // Without a connection the commit's error (which comes first) is the answer.
            let result = conn.map_or_else(
                || Err(Error::Backend("not run".into())),
                |c| savepoint(c, f),
            );
            Box::new(move |committed: Result<()>| {
                let _ = tx.send(committed.and(result));
            })
        });
        let job = Job { run, bulk };
        self.jobs
            .as_ref()
            .expect("writer runs until dropped")
            .send(job)
            .map_err(|_| Error::Backend("the writer thread has stopped".into()))?;
        rx.await
            .map_err(|_| Error::Backend("the writer thread has stopped".into()))?
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn savepoint<T>(conn: &Connection, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    let sql = |s: &str| conn.execute_batch(s).map_err(crate::backend);
    sql("SAVEPOINT job")?;
    let result = f(conn);
    if result.is_err() {
        sql("ROLLBACK TO job")?;
    }
    sql("RELEASE job")?;
    result
}

fn run(conn: Connection, rx: mpsc::Receiver<Job>) {
    // What `temp_store` is set to: `None` until the first group sets it.
    let mut journal_on_file = None;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let on_file = batch.iter().any(|job| job.bulk);
        if journal_on_file != Some(on_file) {
            let store = if on_file { "FILE" } else { "MEMORY" };
            // Only speed depends on it: a failure leaves the setting as it was.
            match conn.pragma_update(None, "temp_store", store) {
                Ok(()) => journal_on_file = Some(on_file),
                Err(e) => tracing::warn!(error = %e, "cannot set temp_store"),
            }
        }
        let begun = conn.execute_batch("BEGIN IMMEDIATE");
        // Nothing runs if the transaction could not begin, but every caller is answered.
        let run_on = begun.is_ok().then_some(&conn);
        let answers: Vec<_> = batch.into_iter().map(|job| (job.run)(run_on)).collect();
        let committed = begun.and_then(|_| conn.execute_batch("COMMIT"));
        if let Err(e) = &committed {
            tracing::error!(error = %e, "group commit failed");
            let _ = conn.execute_batch("ROLLBACK");
        }
        let committed = committed.map_err(crate::backend);
        for answer in answers {
            answer(committed.clone());
        }
    }
}
