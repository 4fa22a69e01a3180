//! The load generator: concurrent client tasks that time each request, and the figures
//! drawn from their latencies.

use crate::procfs;
use std::future::Future;
use std::time::{Duration, Instant};

/// What one client task measured. Each task gets one, records its requests into it while
/// [`Recorder::running`], and hands it back.
pub struct Recorder {
    deadline: Instant,
    latencies: Vec<Duration>,
    errors: u64,
    first_error: Option<String>,
}

impl Recorder {
    /// True until the run's time is up.
    pub fn running(&self) -> bool {
        Instant::now() < self.deadline
    }

    /// Awaits one request and records its latency. A failed request is counted apart and
    /// gives `None`.
    pub async fn time<T>(
        &mut self,
        request: impl Future<Output = Result<T, longrun_client::Error>>,
    ) -> Option<T> {
        let started = Instant::now();
        match request.await {
            Ok(value) => {
                self.latencies.push(started.elapsed());
                Some(value)
            }
            Err(e) => {
                self.errors += 1;
                self.first_error.get_or_insert_with(|| e.to_string());
                None
            }
        }
    }
}

/// The merged measurements of one run.
pub struct Report {
    clients: usize,
    elapsed: Duration,
    /// Successful requests only, sorted.
    latencies: Vec<Duration>,
    pub errors: u64,
    pub first_error: Option<String>,
    /// CPU cores busy on average during the run, in the server and in this process.
    server_cores: f64,
    bench_cores: f64,
}

impl Report {
    pub fn count(&self) -> usize {
        self.latencies.len()
    }

    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// Successful requests per second.
    pub fn rate(&self) -> f64 {
        self.count() as f64 / self.elapsed.as_secs_f64()
    }

    /// The latency below which `percent` of the successful requests finished, in ms.
    pub fn percentile_ms(&self, percent: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let rank = (percent / 100.0 * self.latencies.len() as f64).ceil() as usize;
        let index = rank.clamp(1, self.latencies.len()) - 1;
        self.latencies[index].as_secs_f64() * 1000.0
    }

    /// One line: `41234 requests/s  p50 1.20 ms  p99 …  (64 clients, 5.0 s, …)`.
    pub fn line(&self, unit: &str) -> String {
        let mut line = format!(
            "{:.0} {unit}/s  p50 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  ({} client{}, {:.1} s, \
             {} {unit}; CPU: server {:.2} cores, bench {:.2} cores)",
            self.rate(),
            self.percentile_ms(50.0),
            self.percentile_ms(99.0),
            self.percentile_ms(99.9),
            self.clients,
            if self.clients == 1 { "" } else { "s" },
            self.elapsed.as_secs_f64(),
            self.count(),
            self.server_cores,
            self.bench_cores,
        );
        if let Some(error) = &self.first_error {
            line.push_str(&format!("\n  {} failed; first: {error}", self.errors));
        }
        line
    }
}

/// Runs `clients` tasks for `duration` against the servers with pids `server_pids`. Task `i`
/// is `task(i, recorder)`; it loops while the recorder is running (or stops early when it
/// runs out of work) and returns the recorder.
pub async fn run<F, Fut>(
    clients: usize,
    duration: Duration,
    server_pids: &[u32],
    task: F,
) -> anyhow::Result<Report>
where
    F: Fn(usize, Recorder) -> Fut,
    Fut: Future<Output = Recorder> + Send + 'static,
{
    let bench_pid = [std::process::id()];
    let server_cpu = procfs::cpu_seconds(server_pids)?;
    let bench_cpu = procfs::cpu_seconds(&bench_pid)?;
    let started = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|i| {
            tokio::spawn(task(
                i,
                Recorder {
                    deadline: started + duration,
                    latencies: Vec::new(),
                    errors: 0,
                    first_error: None,
                },
            ))
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for handle in handles {
        let recorder = handle.await?;
        latencies.extend(recorder.latencies);
        errors += recorder.errors;
        first_error = first_error.or(recorder.first_error);
    }
    let elapsed = started.elapsed();
    let cores = |before: f64, pids: &[u32]| -> anyhow::Result<f64> {
        Ok((procfs::cpu_seconds(pids)? - before) / elapsed.as_secs_f64())
    };
    latencies.sort_unstable();
    Ok(Report {
        clients,
        elapsed,
        latencies,
        errors,
        first_error,
        server_cores: cores(server_cpu, server_pids)?,
        bench_cores: cores(bench_cpu, &bench_pid)?,
    })
}

/// A well-mixed 64-bit value from `seed` (splitmix64), for picking targets at random
/// without shared state.
pub fn mix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
