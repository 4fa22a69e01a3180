//! The soak: a long run of mixed, paced load on one server (submits, gets, lists, waits held
//! open as watchers, cancels, deletes, and SDK workers that lease, heartbeat and complete),
//! with retention short enough that the store reaches a steady size. Every interval it
//! prints the server's resident memory, open file descriptors and threads, and the p99 of
//! each kind of request; at the end it checks that memory and descriptors stayed flat
//! (within ±10 % of the first interval after warm-up) and that p99 stayed within twice the
//! first interval's.

use crate::load::mix;
use crate::procfs;
use crate::scenarios::Setup;
use crate::summary::{Summary, Target};
use longrun_client::Client;
use longrun_types::{Code, Name};
use longrun_worker::{HttpBackend, Status, Worker};
use serde_json::json;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PROJECT: &str = "bench-soak";
const TYPE: &str = "BENCH_SOAK";
/// How many recent operations the load picks its targets from.
const RECENT: usize = 2_000;
/// Done operations are removed this long after they end (the server's `retention`).
pub const RETENTION: &str = "1m";

/// Requests per second of each kind of client, and how many of each: about 100 submits,
/// 400 gets, 10 lists, 20 cancels and 5 deletes a second, and 8 watchers that each wait up
/// to a second on an operation, twice a second. Paced, so that latency is measured on a
/// steady server, not a saturated one.
const KINDS: &[(&str, usize, f64)] = &[
    ("submit", 4, 25.0),
    ("get", 4, 100.0),
    ("list", 1, 10.0),
    ("wait", 8, 2.0),
    ("cancel", 1, 20.0),
    ("delete", 1, 5.0),
];
const WORKER_SLOTS: usize = 16;

/// What the clients measured since the last report.
#[derive(Default)]
struct Window {
    latencies: HashMap<&'static str, Vec<Duration>>,
    /// Requests that got no answer, or a 5xx.
    failures: u64,
    first_failure: Option<String>,
}

#[derive(Default)]
struct Shared {
    window: Mutex<Window>,
    recent: Mutex<VecDeque<Name>>,
    handled: AtomicU64,
}

impl Shared {
    fn pick(&self, seed: u64) -> Option<Name> {
        let recent = self.recent.lock().expect("recent lock");
        (!recent.is_empty()).then(|| recent[(seed % recent.len() as u64) as usize].clone())
    }

    /// Records one request: any answer of the API (a 404 for an operation past retention,
    /// a 400 for deleting one not done) is an answer; no answer or a 5xx is a failure.
    fn record<T>(
        &self,
        kind: &'static str,
        started: Instant,
        result: &Result<T, longrun_client::Error>,
    ) {
        let elapsed = started.elapsed();
        let mut window = self.window.lock().expect("window lock");
        match result {
            Err(longrun_client::Error::Api { http_status, .. }) if *http_status >= 500 => {}
            Ok(_) | Err(longrun_client::Error::Api { .. }) => {
                window.latencies.entry(kind).or_default().push(elapsed);
                return;
            }
            Err(_) => {}
        }
        window.failures += 1;
        if window.first_failure.is_none() {
            window.first_failure = Some(match result {
                Err(e) => format!("{kind}: {e}"),
                Ok(_) => unreachable!(),
            });
        }
    }
}

/// One client loop of `kind`, paced at `rate` requests per second.
async fn client(kind: &'static str, i: usize, rate: f64, c: Client, s: Arc<Shared>, end: Instant) {
    let mut pace = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n = 0u64;
    while Instant::now() < end {
        pace.tick().await;
        n += 1;
        let seed = mix((i as u64) << 40 | n);
        let started = Instant::now();
        match kind {
            "submit" => {
                let body = json!({
                    "type": TYPE,
                    "description": format!("soak {i}/{n}"),
                    "priority": seed % 200,
                    "payload": {"steps": 1 + seed % 4},
                });
                let result = c.submit(PROJECT, &body).await;
                s.record(kind, started, &result);
                if let Some(name) = result
                    .ok()
                    .and_then(|op| op["name"].as_str().map(str::to_owned))
                {
                    let mut recent = s.recent.lock().expect("recent lock");
                    if recent.len() == RECENT {
                        recent.pop_front();
                    }
                    recent.push_back(Name::parse(&name).expect("the server's names parse"));
                }
            }
            "get" | "cancel" | "delete" | "wait" => {
                let Some(name) = s.pick(seed) else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let result = match kind {
                    "get" => c.get(&name).await,
                    "cancel" => c.cancel(&name).await,
                    "delete" => c.delete(&name).await,
                    _ => c.wait(&name, Some(Duration::from_secs(1))).await,
                };
                s.record(kind, started, &result);
            }
            _ => {
                let filter = if n.is_multiple_of(2) {
                    "done = false"
                } else {
                    ""
                };
                let result = c.list(PROJECT, filter, 100, "").await;
                s.record(kind, started, &result);
            }
        }
    }
}

/// A row of the report.
struct Row {
    rss_mb: f64,
    fds: usize,
    p99_ms: f64,
}

fn count_entries(path: &str) -> usize {
    std::fs::read_dir(path).map_or(0, |d| d.count())
}

fn p99(latencies: &mut [Duration]) -> f64 {
    if latencies.is_empty() {
        return f64::NAN;
    }
    latencies.sort_unstable();
    let index = (latencies.len() * 99).div_ceil(100).max(1) - 1;
    latencies[index].as_secs_f64() * 1000.0
}

/// Runs the soak for `duration`, reporting every `interval`.
pub async fn soak(
    setup: &Setup,
    duration: Duration,
    interval: Duration,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let shared = Arc::new(Shared::default());
    let started = Instant::now();
    let end = started + duration;
    let pid = setup.pids()[0];

    let handled = shared.clone();
    let worker = Worker::new("bench-soak")
        .concurrency(WORKER_SLOTS)
        .handle(TYPE, move |ctx| {
            let handled = handled.clone();
            async move {
                let steps = ctx.payload()["steps"].as_u64().unwrap_or(1);
                for step in 0..steps {
                    ctx.progress(step as f64 / steps as f64);
                    tokio::select! {
                        _ = ctx.cancelled() => return Err(Status::new(Code::Cancelled, "cancelled")),
                        _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                    }
                }
                handled.handled.fetch_add(1, Ordering::Relaxed);
                Ok(json!({"steps": steps}))
            }
        });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(worker.run(
        Arc::new(HttpBackend::new(setup.client().base())),
        async move {
            let _ = stopped.await;
        },
    ));

    let mut clients = Vec::new();
    for &(kind, count, rate) in KINDS {
        for i in 0..count {
            let c = setup.client_for(clients.len()).clone();
            clients.push(tokio::spawn(client(
                kind,
                clients.len() * 1000 + i,
                rate,
                c,
                shared.clone(),
                end,
            )));
        }
    }

    println!(
        "soak: {} s, a row every {} s (server pid {pid})",
        duration.as_secs(),
        interval.as_secs()
    );
    let kinds: Vec<&str> = KINDS.iter().map(|k| k.0).collect();
    println!(
        "{:>6} {:>9} {:>5} {:>7} {:>9} {:>9}  {}",
        "t(s)",
        "RSS MB",
        "fds",
        "threads",
        "requests",
        "p99 ms",
        kinds
            .iter()
            .map(|k| if *k == "wait" {
                "waits".into()
            } else {
                format!("{k} p99")
            })
            .collect::<Vec<_>>()
            .join("  ")
    );
    let mut rows = Vec::new();
    let mut failures = 0;
    let mut first_failure = None;
    let mut next = started + interval;
    while next <= end + Duration::from_millis(1) {
        tokio::time::sleep_until(next.into()).await;
        next += interval;
        let window = std::mem::take(&mut *shared.window.lock().expect("window lock"));
        failures += window.failures;
        first_failure = first_failure.or(window.first_failure);
        let mut latencies = window.latencies;
        // A wait lasts until its operation ends: not a latency.
        let mut all: Vec<Duration> = latencies
            .iter()
            .filter(|(kind, _)| **kind != "wait")
            .flat_map(|(_, l)| l.iter().copied())
            .collect();
        let memory = procfs::memory(pid)?;
        let row = Row {
            rss_mb: memory.rss_mb,
            fds: count_entries(&format!("/proc/{pid}/fd")),
            p99_ms: p99(&mut all),
        };
        println!(
            "{:>6.0} {:>9.1} {:>5} {:>7} {:>9} {:>9.2}  {}",
            started.elapsed().as_secs_f64(),
            row.rss_mb,
            row.fds,
            count_entries(&format!("/proc/{pid}/task")),
            all.len(),
            row.p99_ms,
            kinds
                .iter()
                .map(|k| match latencies.entry(k).or_default() {
                    waits if *k == "wait" => waits.len().to_string(),
                    l => format!("{:.2}", p99(l)),
                })
                .collect::<Vec<_>>()
                .join("  ")
        );
        rows.push(row);
    }
    for c in clients {
        c.await?;
    }
    let _ = stop.send(());
    worker.await?;
    println!(
        "soak: {} operations completed by the worker",
        shared.handled.load(Ordering::Relaxed)
    );

    if let Some(failure) = first_failure {
        summary.problem(format!(
            "soak: {failures} requests failed; first: {failure}"
        ));
    }
    // Warm-up: the first row (caches and pools filling, the store growing to its steady
    // size over the first retention period) is left out of the flatness checks.
    let (Some(first), Some(settled)) = (rows.first(), rows.get(1)) else {
        summary.problem("soak: too short for two report rows".into());
        return Ok(());
    };
    let drift = |value: &dyn Fn(&Row) -> f64| {
        rows[1..]
            .iter()
            .map(|r| (value(r) / value(settled) - 1.0).abs() * 100.0)
            .fold(0.0, f64::max)
    };
    summary.figure(
        "soak: RSS drift after warm-up (max of rows vs the 2nd)",
        drift(&|r| r.rss_mb),
        "%",
        Target::AtMost(10.0),
    );
    summary.figure(
        "soak: open descriptors drift after warm-up",
        drift(&|r| r.fds as f64),
        "%",
        Target::AtMost(10.0),
    );
    summary.figure(
        "soak: worst p99 / first row's p99",
        rows.iter().map(|r| r.p99_ms).fold(0.0, f64::max) / first.p99_ms,
        "×",
        Target::AtMost(2.0),
    );
    Ok(())
}
