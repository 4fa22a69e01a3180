//! The `watch` scenario: `--watchers` concurrent watch streams (changes only) on one
//! project; each round submits one operation and times how long until every watcher has
//! its event (from the submit call's start); p50 and p99 over every watcher and round,
//! and the server's resident memory before and after the watchers connected.

use crate::procfs;
use crate::scenarios::Setup;
use crate::summary::{Summary, Target};
use anyhow::Context;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The target: a change reaches every watcher within 50 ms at the 99th percentile.
const P99_TARGET_MS: f64 = 50.0;

pub async fn watch(
    setup: &Setup,
    watchers: usize,
    rounds: usize,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let node = &setup.servers[0];
    let before = procfs::memory(node.pid)?.rss_mb;
    let (start_tx, start_rx) = tokio::sync::watch::channel(Instant::now());
    let (lat_tx, mut lat_rx) = tokio::sync::mpsc::unbounded_channel::<Duration>();
    let ready = Arc::new(tokio::sync::Barrier::new(watchers + 1));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..watchers {
        // One client (and connection) per watcher, as separate browsers would have.
        let client = longrun_client::Client::new(node.client.base());
        let (start_rx, lat_tx, ready) = (start_rx.clone(), lat_tx.clone(), ready.clone());
        tasks.spawn(async move {
            let mut stream = client.watch("watched", "", None, "snapshot=false").await?;
            let synced = stream.next().await?.context("the stream ended")?;
            anyhow::ensure!(synced.event == "synced", "first event {}", synced.event);
            ready.wait().await;
            for _ in 0..rounds {
                let event = stream.next().await?.context("the stream ended")?;
                anyhow::ensure!(event.event == "operation", "event {}", event.event);
                let _ = lat_tx.send(start_rx.borrow().elapsed());
            }
            anyhow::Ok(())
        });
    }
    drop(lat_tx);
    ready.wait().await;
    let after = procfs::memory(node.pid)?.rss_mb;
    let mut latencies = Vec::with_capacity(watchers * rounds);
    for round in 0..rounds {
        start_tx.send_replace(Instant::now());
        let body = serde_json::json!({"type": "WATCHED", "operationId": format!("w{round}")});
        node.client.submit("watched", &body).await?;
        for _ in 0..watchers {
            let latency = tokio::time::timeout(Duration::from_secs(30), lat_rx.recv())
                .await
                .context("a watcher got no event within 30 s")?
                .context("the watchers stopped")?;
            latencies.push(latency);
        }
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    latencies.sort();
    let pct = |p: f64| {
        let i = ((latencies.len() as f64 * p / 100.0).ceil() as usize).clamp(1, latencies.len());
        latencies[i - 1].as_secs_f64() * 1000.0
    };
    println!(
        "watch: {watchers} watchers, {rounds} changes: p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms; \
         server RSS {before:.1} MB before, {after:.1} MB with the watchers (+{:.1} MB)",
        pct(50.0),
        pct(99.0),
        pct(100.0),
        after - before
    );
    summary.figure(
        "watch: change to 1,000 watchers, p99",
        pct(99.0),
        "ms",
        Target::AtMost(P99_TARGET_MS),
    );
    summary.figure(
        "watch: server extra RSS with the watchers",
        after - before,
        "MB",
        Target::AtMost(f64::INFINITY),
    );
    Ok(())
}
