//! The `schedules` scenario: `--schedules` schedules (docs/schedules.md) created on one
//! server, none due within the run (each fires once a year), then the server left idle:
//! its CPU over `--seconds` (user + system, % of one core) and its resident memory. The
//! target: 10,000 schedules cost at most 2 % of a core while idle.

use crate::procfs;
use crate::scenarios::Setup;
use crate::summary::{Summary, Target};
use anyhow::Context;
use std::time::{Duration, Instant};

/// The target: idle schedules cost at most this much of one core.
const IDLE_CPU_TARGET_PERCENT: f64 = 2.0;

pub async fn idle(setup: &Setup, schedules: usize, summary: &mut Summary) -> anyhow::Result<()> {
    let node = &setup.servers[0];
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let per_client = schedules.div_ceil(setup.clients);
    for c in 0..setup.clients {
        let client = node.client.clone();
        let range = (c * per_client)..((c + 1) * per_client).min(schedules);
        tasks.spawn(async move {
            for i in range {
                // Each at its own minute of 1 January, so none fires within the run.
                let body = serde_json::json!({
                    "scheduleId": format!("s{i}"),
                    "cron": format!("{} {} 1 1 *", i % 60, (i / 60) % 24),
                    "timeZone": "Europe/Paris",
                    "operation": {"type": "IDLE"},
                })
                .to_string();
                let r = client
                    .send(
                        http::Method::POST,
                        "/v1/projects/bench/schedules",
                        Some(body.as_bytes()),
                    )
                    .await?;
                anyhow::ensure!(r.status == 200, "create schedule s{i}: {}", r.status);
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.context("a creating task panicked")??;
    }
    println!(
        "schedules: {schedules} created in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // Settle, then measure the idle server.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = procfs::cpu_seconds(&[node.pid])?;
    tokio::time::sleep(setup.duration).await;
    let cpu = procfs::cpu_seconds(&[node.pid])? - before;
    let percent = cpu / setup.duration.as_secs_f64() * 100.0;
    let rss = procfs::memory(node.pid)?.rss_mb;
    println!(
        "schedules: {schedules} idle for {} s: {percent:.2} % of a core, {rss:.1} MB resident",
        setup.duration.as_secs()
    );
    summary.figure(
        &format!("idle CPU with {schedules} schedules"),
        percent,
        "% of a core",
        Target::AtMost(IDLE_CPU_TARGET_PERCENT),
    );
    Ok(())
}
