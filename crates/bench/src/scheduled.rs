//! The `scheduled` scenario: work submitted now to start later (`scheduleTime`, see
//! docs/operations.md#delayed-start).
//!
//! - Start lag: `--scheduled` operations are submitted with their `scheduleTime` spread
//!   evenly across one minute that begins once they are all in; SDK workers wait in lease
//!   requests (5 s long polls, so a start comes from the server waking them, not from a
//!   poll) and run each as it comes due. Each operation's lag is its `metadata.startTime`
//!   minus its `scheduleTime`, both written by the server; one leased before its time is a
//!   problem. Target: p99 at most 300 ms.
//! - Lease throughput with them waiting: the no-op drain of `workers::drain` on a fresh
//!   server, then on another fresh server holding `--scheduled` operations of the drain's
//!   project and type scheduled an hour ahead. Target: the second rate at least 90 % of the
//!   first.

use crate::scenarios::Setup;
use crate::summary::{Summary, Target};
use crate::workers::{self, NOOP_TYPE, PAGE_SIZE, THROUGHPUT_PROJECT};
use anyhow::Context;
use longrun_types::Timestamp;
use longrun_worker::{HttpBackend, Worker};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

const LAG_PROJECT: &str = "bench-scheduled";
const LAG_TYPE: &str = "BENCH_SCHEDULED";
/// The minute the scheduled operations are spread over, in ms.
const SPREAD_MS: i64 = 60_000;
/// The target for the start lag's p99, in ms.
const LAG_P99_TARGET_MS: f64 = 300.0;
/// The target for the drain with operations waiting, in % of the drain with none.
const WAITING_THROUGHPUT_TARGET_PERCENT: f64 = 90.0;
/// Workers and slots for the start-lag run: room for about 1,700 operations a second to
/// start, each finishing at once.
const LAG_WORKERS: usize = 4;
const LAG_SLOTS: usize = 16;

/// The start-lag figures: `total` operations scheduled across one minute on `setup`'s
/// server, run by workers as they come due.
pub async fn start_lag(setup: &Setup, total: usize, summary: &mut Summary) -> anyhow::Result<()> {
    // The minute starts after the submits: at 10,000 submits/s, with room to spare.
    let lead_ms = 5_000 + (total as i64) / 5;
    let first = Timestamp::now().plus_millis(lead_ms);
    let started = Instant::now();
    submit_scheduled(setup, LAG_PROJECT, LAG_TYPE, total, move |i| {
        first.plus_millis(SPREAD_MS * i as i64 / total as i64)
    })
    .await?;
    println!(
        "scheduled: {total} operations submitted in {:.1} s, due across the minute from {first}",
        started.elapsed().as_secs_f64()
    );
    if Timestamp::now() > first {
        summary.problem(format!(
            "scheduled: the submits ran past the first scheduleTime ({first}); the lag \
             includes their load"
        ));
    }

    let handled = Arc::new(AtomicUsize::new(0));
    let (all_ran, ran) = watch::channel(false);
    let all_ran = Arc::new(all_ran);
    let deadline = tokio::time::Instant::now()
        + Duration::from_millis((lead_ms + SPREAD_MS) as u64)
        + Duration::from_secs(60);
    let runs: Vec<_> = (0..LAG_WORKERS)
        .map(|i| {
            let (handled, all_ran) = (handled.clone(), all_ran.clone());
            let worker = Worker::new(&format!("bench-scheduled-{i}"))
                .concurrency(LAG_SLOTS)
                .handle(LAG_TYPE, move |_| {
                    if handled.fetch_add(1, Ordering::Relaxed) + 1 == total {
                        let _ = all_ran.send(true);
                    }
                    async { Ok(json!({})) }
                });
            let mut ran = ran.clone();
            tokio::spawn(worker.run(
                Arc::new(HttpBackend::new(setup.client_for(i).base())),
                async move {
                    let _ = tokio::time::timeout_at(deadline, ran.wait_for(|r| *r)).await;
                },
            ))
        })
        .collect();
    for run in runs {
        run.await?;
    }
    let handled = handled.load(Ordering::Relaxed);
    anyhow::ensure!(
        handled >= total,
        "scheduled: the workers ran only {handled} of {total} operations"
    );

    let lags = lags(setup, total, summary).await?;
    let percentile = |percent: f64| {
        let rank = (percent / 100.0 * lags.len() as f64).ceil() as usize;
        lags[rank.clamp(1, lags.len()) - 1] as f64
    };
    println!(
        "scheduled: start lag (startTime − scheduleTime) of {} operations: p50 {:.0} ms  \
         p99 {:.0} ms  p99.9 {:.0} ms  max {:.0} ms",
        lags.len(),
        percentile(50.0),
        percentile(99.0),
        percentile(99.9),
        percentile(100.0)
    );
    summary.figure(
        &format!("start lag p99, {total} scheduled across a minute"),
        percentile(99.0),
        "ms",
        Target::AtMost(LAG_P99_TARGET_MS),
    );
    Ok(())
}

/// The lease-throughput figure: on `setup`'s fresh server, `total` operations of the drain's
/// project and type are scheduled an hour ahead, then `drain` operations are drained
/// (`workers::drain`); its rate against `alone`, the same drain's on a server with none
/// waiting (ops/s).
pub async fn waiting_throughput(
    setup: &Setup,
    alone: f64,
    total: usize,
    drain: usize,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let later = Timestamp::now().plus_millis(3_600_000);
    let started = Instant::now();
    submit_scheduled(setup, THROUGHPUT_PROJECT, NOOP_TYPE, total, move |_| later).await?;
    println!(
        "scheduled: {total} {NOOP_TYPE} operations scheduled an hour ahead in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let beside = workers::drain(setup, drain, summary).await?;
    let percent = beside / alone * 100.0;
    println!(
        "scheduled: drain {alone:.0} ops/s with none waiting, {beside:.0} ops/s with {total} \
         waiting ({percent:.1} %)"
    );
    summary.figure(
        &format!("drain with {total} scheduled waiting, % of none"),
        percent,
        "%",
        Target::AtLeast(WAITING_THROUGHPUT_TARGET_PERCENT),
    );
    Ok(())
}

/// Submits `total` operations of `op_type` in `project`, operation `i` with the
/// `scheduleTime` `at(i)`, with the setup's clients.
async fn submit_scheduled(
    setup: &Setup,
    project: &'static str,
    op_type: &'static str,
    total: usize,
    at: impl Fn(usize) -> Timestamp + Send + Sync + 'static,
) -> anyhow::Result<()> {
    let (next, at) = (Arc::new(AtomicUsize::new(0)), Arc::new(at));
    let tasks: Vec<_> = (0..setup.clients)
        .map(|task| {
            let (client, next, at) = (setup.client_for(task).clone(), next.clone(), at.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return anyhow::Ok(());
                    }
                    let body = json!({"type": op_type, "scheduleTime": at(i).to_string()});
                    client.submit(project, &body).await?;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// Each SUCCEEDED operation's start lag in ms, sorted; an operation started before its
/// `scheduleTime`, or missing from the list, is a problem.
async fn lags(setup: &Setup, total: usize, summary: &mut Summary) -> anyhow::Result<Vec<i64>> {
    let field = |op: &serde_json::Value, key: &str| -> anyhow::Result<i64> {
        let text = op["metadata"][key]
            .as_str()
            .with_context(|| format!("{} has no metadata.{key}", op["name"]))?;
        Ok(Timestamp::parse(text).map_err(anyhow::Error::msg)?.millis())
    };
    let (mut lags, mut early) = (Vec::with_capacity(total), 0usize);
    let mut token = String::new();
    loop {
        let page = setup
            .client()
            .list(LAG_PROJECT, "metadata.state = SUCCEEDED", PAGE_SIZE, &token)
            .await
            .context("cannot list the scheduled operations")?;
        for op in page["operations"].as_array().into_iter().flatten() {
            let lag = field(op, "startTime")? - field(op, "scheduleTime")?;
            early += usize::from(lag < 0);
            lags.push(lag);
        }
        match page["nextPageToken"].as_str() {
            Some(next) if !next.is_empty() => token = next.to_string(),
            _ => break,
        }
    }
    if lags.len() != total || early > 0 {
        summary.problem(format!(
            "scheduled: of {total} operations, {} listed SUCCEEDED, {early} started before \
             their scheduleTime",
            lags.len()
        ));
    }
    anyhow::ensure!(!lags.is_empty(), "scheduled: no operation ran");
    lags.sort_unstable();
    Ok(lags)
}
