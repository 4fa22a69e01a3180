//! The server under test: a `longrun serve` child process on a temporary data directory
//! (and, when told, a store elsewhere), started and stopped by the benchmark.

use anyhow::Context;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The operation type the server runs itself, with the built-in `simulate` executor: each
/// operation hangs until cancelled. Nothing but the `cancel-builtin` scenario submits it.
pub const SIMULATE_TYPE: &str = "BENCH_SIMULATE";

/// Submits are never refused for a full queue: the benchmark queues far more than the
/// default limit. [`SIMULATE_TYPE`] is run by the server. `top` goes first: top-level keys
/// a scenario sets.
fn config_toml(top: &str) -> String {
    format!(
        "{top}\n[project_defaults]\nmax_queued = 100000000\n\n\
         [[task_type]]\ntype = \"{SIMULATE_TYPE}\"\nexecutor = \"simulate\"\noutcome = \"HANG\"\n\
         duration = \"0s\"\nconcurrency = 8\n"
    )
}

/// How long the server gets to stop after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// A fresh temporary directory for one server's data.
pub fn data_dir() -> anyhow::Result<TempDir> {
    tempfile::Builder::new()
        .prefix("longrun-bench-")
        .tempdir()
        .context("cannot create a temporary directory")
}

pub struct Server {
    child: Child,
    base: String,
    /// Kept open so the server never writes to a closed pipe.
    stdout: BufReader<ChildStdout>,
    stopped: bool,
    /// Removed after the child is gone (fields drop after `Drop::drop`).
    dir: TempDir,
}

impl Server {
    /// Starts `bin serve` on `dir` (which may already hold a database), with `extra`
    /// arguments after the benchmark's own, and returns once it accepts connections.
    pub fn start(bin: &Path, dir: TempDir, extra: &[&str]) -> anyhow::Result<Server> {
        Server::start_with(bin, dir, extra, "")
    }

    /// `start`, with top-level config keys (`retention = "1m"`, say) in the server's config.
    pub fn start_with(
        bin: &Path,
        dir: TempDir,
        extra: &[&str],
        config_top: &str,
    ) -> anyhow::Result<Server> {
        let config = dir.path().join("config.toml");
        std::fs::write(&config, config_toml(config_top))
            .context("cannot write the server config")?;
        let log = std::fs::File::create(dir.path().join("server.log"))
            .context("cannot create the server log")?;
        let mut child = Command::new(bin)
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .arg("--config")
            .arg(&config)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        // From here on, dropping the server on an error stops the child.
        let mut server = Server {
            child,
            base: String::new(),
            stdout,
            stopped: false,
            dir,
        };
        server.base = server.listening()?;
        Ok(server)
    }

    /// Reads the child's output up to its `listening on URL` line and returns the URL.
    fn listening(&mut self) -> anyhow::Result<String> {
        let mut line = String::new();
        loop {
            line.clear();
            if self.stdout.read_line(&mut line)? == 0 {
                let log =
                    std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
                anyhow::bail!("the server exited before listening:\n{log}");
            }
            if let Some(base) = line.trim().strip_prefix("listening on ") {
                return Ok(base.to_string());
            }
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server with SIGTERM (killing it if it does not stop within the grace) and
    /// removes its data. Returns how long the stop took.
    pub fn stop(mut self) -> anyhow::Result<Duration> {
        self.stopped = true;
        let started = Instant::now();
        let graceful = self.terminate()?;
        let took = started.elapsed();
        anyhow::ensure!(
            graceful,
            "the server did not stop within {} s of SIGTERM and was killed",
            STOP_GRACE.as_secs()
        );
        Ok(took)
    }

    /// Stops the server as [`Server::stop`] does and starts it again on the same data
    /// directory, with `config_top` in its config.
    pub fn restart(
        mut self,
        bin: &Path,
        extra: &[&str],
        config_top: &str,
    ) -> anyhow::Result<Server> {
        self.stopped = true;
        anyhow::ensure!(
            self.terminate()?,
            "the server did not stop within the grace"
        );
        let dir = std::mem::replace(&mut self.dir, data_dir()?);
        Server::start_with(bin, dir, extra, config_top)
    }

    /// Sends SIGTERM and waits; kills the server if it outlives the grace. True when it
    /// stopped by itself.
    fn terminate(&mut self) -> anyhow::Result<bool> {
        let pid = libc::pid_t::try_from(self.child.id()).context("pid out of range")?;
        // SAFETY: kill only sends a signal to the child this struct owns and still waits on.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(true);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child.kill()?;
        self.child.wait()?;
        Ok(false)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = self.terminate();
        }
    }
}

/// Total size of the files directly in `dir`, in megabytes.
pub fn directory_mb(dir: &Path) -> f64 {
    let bytes: u64 = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.metadata().ok())
        .filter(|meta| meta.is_file())
        .map(|meta| meta.len())
        .sum();
    bytes as f64 / 1e6
}
