//! What the `command` executor keeps of an operation's output: read
//! (`operationOutputs.get`), removed with the operation on delete here, and otherwise by a
//! sweep (at start, then every
//! `SWEEP_INTERVAL`) that finds outputs whose operation no longer exists: expired by
//! retention, or deleted through another server sharing the store.

use longrun_engine::{Engine, Error};
use longrun_types::Name;
use longrun_worker::command::name_path;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Deletes a done operation, and what the command executor kept of its output; the audit
/// log names who (`by`, the caller's member string).
pub async fn delete(
    engine: &Engine,
    dir: &Path,
    by: &str,
    name: &Name,
) -> Result<(), crate::kit::error::ApiError> {
    engine.delete(name).await?;
    tracing::info!(operation = %name.as_str(), by, "deleted");
    remove(&longrun_worker::command::output_path(dir, name));
    Ok(())
}

/// What the command executor kept of an operation's output (empty when nothing was kept;
/// `NOT_FOUND` when the operation does not exist), read off the async threads.
pub async fn read(
    engine: &Engine,
    dir: &Path,
    name: &Name,
) -> Result<String, crate::kit::error::ApiError> {
    engine.get(name).await?;
    let path = longrun_worker::command::output_path(dir, name);
    let bytes = tokio::task::spawn_blocking(move || std::fs::read(path).unwrap_or_default())
        .await
        .unwrap_or_default();
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// How often outputs of operations gone are looked for.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(600);

/// Removes an output and the file naming its operation.
pub fn remove(output: &Path) {
    let _ = std::fs::remove_file(output);
    let _ = std::fs::remove_file(name_path(output));
}

/// Outputs under `dir` and the operations they belong to.
fn outputs(dir: &Path) -> Vec<(PathBuf, String)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "name"))
        .filter_map(|p| {
            let name = std::fs::read_to_string(&p).ok()?;
            Some((p.with_extension(""), name))
        })
        .collect()
}

/// Removes the outputs whose operation is gone; returns how many.
pub async fn sweep(engine: &Engine, dir: &Path) -> usize {
    let listed = {
        let dir = dir.to_path_buf();
        tokio::task::spawn_blocking(move || outputs(&dir))
            .await
            .unwrap_or_default()
    };
    let mut removed = 0;
    for (output, name) in listed {
        let gone = match Name::parse(&name) {
            Ok(name) => matches!(engine.get(&name).await, Err(Error::NotFound(_))),
            Err(_) => true,
        };
        if gone {
            remove(&output);
            removed += 1;
        }
    }
    removed
}

/// Sweeps at once, then every `SWEEP_INTERVAL`, until `stopped` turns true.
pub async fn run(engine: Engine, dir: PathBuf, mut stopped: tokio::sync::watch::Receiver<bool>) {
    let mut every = tokio::time::interval(SWEEP_INTERVAL);
    loop {
        tokio::select! {
            _ = async { let _ = stopped.wait_for(|s| *s).await; } => return,
            _ = every.tick() => match sweep(&engine, &dir).await {
                0 => {}
                n => tracing::info!(removed = n, "removed outputs of operations gone"),
            },
        }
    }
}
