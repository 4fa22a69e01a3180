//! Fair leasing (docs/projects.md#fair-leasing): project A queues a backlog, then B..E submit one
//! operation each while 4 workers drain; how long (and how many leases) each of B..E's
//! operations waits to start. And the cost of fairness: leasing throughput with 1,000
//! projects each holding queued work against one project holding the same work.

use crate::scenarios::Setup;
use crate::summary::{Summary, Target};
use longrun_client::Client;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const TYPE: &str = "FAIR";
const WORKERS: usize = 4;

/// Submits `count` operations to each of `projects`, 16 at a time.
async fn queue(
    client: &Client,
    projects: &[String],
    count: usize,
    ty: &'static str,
) -> anyhow::Result<()> {
    let jobs: Vec<String> = projects
        .iter()
        .flat_map(|p| std::iter::repeat_n(p.clone(), count))
        .collect();
    let next = Arc::new(AtomicUsize::new(0));
    let jobs = Arc::new(jobs);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (client, next, jobs) = (client.clone(), next.clone(), jobs.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(project) = jobs.get(i) else {
                    return anyhow::Ok(());
                };
                client.submit(project, &json!({"type": ty})).await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// One leased operation: its name, when, and the lease's sequence number.
struct Started {
    name: String,
    at: Instant,
    seq: usize,
}

/// Runs `WORKERS` workers (lease one, complete at once) until `stop`; every start is
/// recorded with its sequence number.
fn workers(
    client: &Client,
    stop: Arc<AtomicBool>,
    seq: Arc<AtomicUsize>,
    log: Arc<Mutex<Vec<Started>>>,
    max: usize,
    ty: &'static str,
) -> Vec<tokio::task::JoinHandle<anyhow::Result<()>>> {
    (0..WORKERS)
        .map(|w| {
            let (client, stop, seq, log) = (client.clone(), stop.clone(), seq.clone(), log.clone());
            tokio::spawn(async move {
                let body = json!({"types": [ty], "maxOperations": max, "waitTimeout": "0.2s",
                                  "leaseDuration": "60s"});
                while !stop.load(Ordering::Relaxed) {
                    let answer: Value = client
                        .call(
                            http::Method::POST,
                            &format!("/v1/workers/fair-{w}:lease"),
                            Some(&body),
                        )
                        .await?;
                    let leases = answer["leases"].as_array().cloned().unwrap_or_default();
                    for l in &leases {
                        let name = l["operation"]["name"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string();
                        let n = seq.fetch_add(1, Ordering::Relaxed);
                        log.lock().unwrap().push(Started {
                            name: name.clone(),
                            at: Instant::now(),
                            seq: n,
                        });
                        let done = json!({"leaseId": l["leaseId"], "response": {}});
                        client
                            .call(
                                http::Method::POST,
                                &format!("/v1/{name}:complete"),
                                Some(&done),
                            )
                            .await?;
                    }
                }
                anyhow::Ok(())
            })
        })
        .collect()
}

/// A queues `backlog`; once the workers drain, B..E submit one each, 100 ms apart.
pub async fn starvation(
    setup: &Setup,
    backlog: usize,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let client = setup.client().clone();
    queue(&client, &["fair-a".to_string()], backlog, TYPE).await?;
    println!("fairness: fair-a queued {backlog} operations");
    let (stop, seq, log) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(Mutex::new(Vec::new())),
    );
    let running = workers(&client, stop.clone(), seq.clone(), log.clone(), 1, TYPE);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut submitted = Vec::new();
    for p in ["fair-b", "fair-c", "fair-d", "fair-e"] {
        let op = client.submit(p, &json!({"type": TYPE})).await?;
        submitted.push((
            op["name"].as_str().unwrap_or_default().to_string(),
            Instant::now(),
            seq.load(Ordering::Relaxed),
        ));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut worst_ms, mut worst_leases) = (0f64, 0usize);
    for (name, at, seq_at) in &submitted {
        let started = loop {
            if let Some(s) = log.lock().unwrap().iter().find(|s| &s.name == name) {
                break Some((s.at, s.seq));
            }
            if Instant::now() > deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let Some((started_at, started_seq)) = started else {
            summary.problem(format!("fairness: {name} did not start within 30 s"));
            continue;
        };
        let ms = started_at.saturating_duration_since(*at).as_secs_f64() * 1000.0;
        let leases = started_seq.saturating_sub(*seq_at) + 1;
        println!("fairness: {name} started {ms:.1} ms and {leases} leases after its submit");
        worst_ms = worst_ms.max(ms);
        worst_leases = worst_leases.max(leases);
    }
    stop.store(true, Ordering::Relaxed);
    for w in running {
        w.await??;
    }
    summary.figure(
        "fairness: worst start after submit (B..E)",
        worst_ms,
        "ms",
        Target::AtMost(50.0),
    );
    summary.figure(
        "fairness: worst leases before start (B..E)",
        worst_leases as f64,
        "leases",
        Target::AtMost(5.0),
    );
    Ok(())
}

/// Drains `total` operations queued over `projects` projects; leases per second.
async fn drain_rate(
    client: &Client,
    prefix: &str,
    projects: usize,
    total: usize,
    ty: &'static str,
) -> anyhow::Result<f64> {
    let names: Vec<String> = (0..projects).map(|i| format!("{prefix}-{i:04}")).collect();
    queue(client, &names, total / projects, ty).await?;
    let (stop, seq, log) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(Mutex::new(Vec::new())),
    );
    let started = Instant::now();
    let running = workers(client, stop.clone(), seq.clone(), log, 10, ty);
    while seq.load(Ordering::Relaxed) < total {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(300),
            "drain did not finish"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for w in running {
        w.await??;
    }
    Ok(total as f64 / took.as_secs_f64())
}

/// Leasing throughput, one project against 1,000 holding the same work. The two are
/// measured in turn, twice each, so that neither gains from going first on a store that
/// grows with every round; each figure is the mean of its two rounds.
pub async fn cost(setup: &Setup, total: usize, summary: &mut Summary) -> anyhow::Result<()> {
    let client = setup.client().clone();
    let (mut one, mut many) = (0.0, 0.0);
    for round in 0..2 {
        one += drain_rate(&client, &format!("cost-one-{round}"), 1, total, ONE[round]).await? / 2.0;
        many += drain_rate(
            &client,
            &format!("cost-many-{round}"),
            1000,
            total,
            MANY[round],
        )
        .await?
            / 2.0;
    }
    println!(
        "fairness: {total} operations drained at {one:.0} ops/s from 1 project, {many:.0} ops/s from 1,000 (mean of 2 rounds each, in turn)"
    );
    summary.figure(
        "fairness: 1,000 projects' drain rate / 1 project's",
        many / one * 100.0,
        "%",
        Target::AtLeast(80.0),
    );
    Ok(())
}

/// The operation types of the cost rounds (one per round, so no round leases another's).
const ONE: [&str; 2] = ["COST_ONE_0", "COST_ONE_1"];
const MANY: [&str; 2] = ["COST_MANY_0", "COST_MANY_1"];
