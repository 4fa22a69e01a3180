//! The `pause` scenario (docs/queues.md#pause): three servers sharing a PostgreSQL store, an
//! SDK worker on each draining one queue, and `--rounds` (at most 50) pauses of that queue,
//! each through the next server, held 100 ms, then resumed. A pause takes effect once no
//! server leases from the queue; it waits for the leases committing when it commits (each
//! re-reads the pauses as it ends), so it has taken effect when its answer comes back. The figure is the pause's round trip
//! (target: p99 ≤ 50 ms); an operation whose `startTime` falls between a pause's answer and
//! its resume is a problem.

use crate::scenarios::Setup;
use crate::summary::{Summary, Target};
use crate::workers::Latencies;
use anyhow::Context;
use longrun_types::Timestamp;
use longrun_worker::{HttpBackend, Worker};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

const PROJECT: &str = "bench-pause";
const TYPE: &str = "BENCH_PAUSE";
/// How long each pause is held before its resume.
const HOLD: Duration = Duration::from_millis(100);
/// How long work flows between a resume and the next pause.
const FLOW: Duration = Duration::from_millis(100);
/// The target for the pause's round trip, p99, in ms.
const PAUSE_P99_TARGET_MS: f64 = 50.0;
/// Operations queued per round: more than the workers drain in a round.
const PER_ROUND: usize = 600;

pub async fn pause(setup: &Setup, rounds: usize, summary: &mut Summary) -> anyhow::Result<()> {
    let rounds = rounds.min(50);
    let total = rounds * PER_ROUND;
    let submits: Vec<_> = (0..setup.clients)
        .map(|task| {
            let client = setup.client_for(task).clone();
            let mine = (task..total).step_by(setup.clients).count();
            tokio::spawn(async move {
                for _ in 0..mine {
                    client.submit(PROJECT, &json!({"type": TYPE})).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for submit in submits {
        submit.await??;
    }
    println!(
        "pause: {total} {TYPE} operations queued over {} servers",
        setup.servers.len()
    );

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let workers: Vec<_> = (0..setup.servers.len())
        .map(|i| {
            let worker = Worker::new(&format!("bench-pause-{i}"))
                .concurrency(8)
                .lease_poll(Duration::from_millis(500))
                .handle(TYPE, |_| async { Ok(json!({})) });
            let mut stopped = stopped.clone();
            tokio::spawn(worker.run(
                Arc::new(HttpBackend::new(setup.servers[i].client.base())),
                async move {
                    let _ = stopped.wait_for(|s| *s).await;
                },
            ))
        })
        .collect();

    let mut trips = Vec::with_capacity(rounds);
    // (after the pause's answer, before the resume), in the servers' time.
    let mut paused = Vec::with_capacity(rounds);
    for round in 0..rounds {
        tokio::time::sleep(FLOW).await;
        let node = &setup.servers[round % setup.servers.len()];
        let sent = Instant::now();
        node.client
            .call(
                http::Method::POST,
                &format!("/v1/projects/{PROJECT}/queues/{TYPE}:pause"),
                None,
            )
            .await
            .context("pause")?;
        trips.push(sent.elapsed());
        let from = Timestamp::now();
        tokio::time::sleep(HOLD).await;
        paused.push((from, Timestamp::now()));
        setup.servers[(round + 1) % setup.servers.len()]
            .client
            .call(
                http::Method::POST,
                &format!("/v1/projects/{PROJECT}/queues/{TYPE}:resume"),
                None,
            )
            .await
            .context("resume")?;
    }
    let _ = stop.send(true);
    for worker in workers {
        worker.await?;
    }

    // Every operation that started: none within a pause.
    let mut started = 0;
    let mut during = 0;
    let mut token = String::new();
    loop {
        let page = setup
            .client()
            .list(PROJECT, "metadata.state = SUCCEEDED", 500, &token)
            .await?;
        for op in page["operations"].as_array().into_iter().flatten() {
            let at = op["metadata"]["startTime"]
                .as_str()
                .context("no startTime")?;
            let at = Timestamp::parse(at).map_err(anyhow::Error::msg)?;
            started += 1;
            // A millisecond of slack for the servers' clocks, corrected to the store's.
            during += usize::from(
                paused
                    .iter()
                    .any(|(from, to)| at > from.plus_millis(1) && at < *to),
            );
        }
        match page["nextPageToken"].as_str() {
            Some(next) if !next.is_empty() => token = next.to_string(),
            _ => break,
        }
    }
    if during > 0 {
        summary.problem(format!(
            "pause: {during} of {started} operations started while their queue was paused"
        ));
    }
    let trips = Latencies::new(trips);
    println!(
        "pause: {rounds} pauses, each through the next of {} servers while workers on every \
         one drained the queue ({started} operations started, {during} while paused): round \
         trip {}",
        setup.servers.len(),
        trips.line()
    );
    summary.figure(
        "pause in effect on every server, p99",
        trips.percentile_ms(99.0),
        "ms",
        Target::AtMost(PAUSE_P99_TARGET_MS),
    );
    Ok(())
}
