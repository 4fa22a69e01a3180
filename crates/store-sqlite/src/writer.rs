//! The single writer thread and its group commit.

use longrun_store::{Error, Result};
use rusqlite::Connection;
use std::sync::mpsc;
use std::thread::JoinHandle;

/// Most writes committed together in one transaction.
const MAX_BATCH: usize = 512;

/// Runs against the writer's connection inside a savepoint (or, given none, only notes that
/// it did not run because the transaction could not begin); returns how to answer the
/// caller once the commit's fate is known.
type Job = Box<dyn FnOnce(Option<&Connection>) -> Box<dyn FnOnce(Result<()>) + Send> + Send>;

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
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn| {
            // Without a connection the commit's error (which comes first) is the answer.
            let result = conn.map_or_else(
                || Err(Error::Backend("not run".into())),
                |c| savepoint(c, f),
            );
            Box::new(move |committed: Result<()>| {
                let _ = tx.send(committed.and(result));
            })
        });
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
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let begun = conn.execute_batch("BEGIN IMMEDIATE");
        // Nothing runs if the transaction could not begin, but every caller is answered.
        let run_on = begun.is_ok().then_some(&conn);
        let answers: Vec<_> = batch.into_iter().map(|job| job(run_on)).collect();
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
