//! What every scenario runs against (one server, or several sharing a store), and the
//! figures measured on a fresh store: submit, get and cancel, each under many concurrent
//! clients.

use crate::load::{self, Recorder};
use crate::server::Server;
use crate::summary::{Summary, Target};
use anyhow::Context;
use longrun_client::Client;
use longrun_types::Name;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What every scenario runs against and with.
pub struct Setup {
    /// The servers under test; several share one store. Scenarios spread their clients and
    /// workers across them, and read, cancel and check through the first.
    pub servers: Vec<Node>,
    pub clients: usize,
    pub duration: Duration,
}

/// One server under test: a client of it and its pid.
pub struct Node {
    pub client: Client,
    pub pid: u32,
}

impl Setup {
    pub fn new(servers: &[&Server], clients: usize, duration: Duration) -> Setup {
        let servers = servers
            .iter()
            .map(|server| Node {
                client: Client::new(server.base()),
                pid: server.pid(),
            })
            .collect();
        Setup {
            servers,
            clients,
            duration,
        }
    }

    /// The first server's client.
    pub fn client(&self) -> &Client {
        &self.servers[0].client
    }

    /// The client of the server that client task (or worker) `task` uses: round robin.
    pub fn client_for(&self, task: usize) -> &Client {
        &self.servers[task % self.servers.len()].client
    }

    pub fn pids(&self) -> Vec<u32> {
        self.servers.iter().map(|node| node.pid).collect()
    }

    /// ` on 2 servers` for figure names when there are several, nothing for one.
    pub fn across(&self) -> String {
        match self.servers.len() {
            1 => String::new(),
            n => format!(" on {n} servers"),
        }
    }
}

/// Operations that `get` picks from.
const GET_OPERATIONS: usize = 1_000;

/// PENDING operations queued for the two cancel runs per second of run: more than the
/// server cancels in both together, so the runs do not run out.
const CANCELS_QUEUED_PER_SECOND: usize = 25_000;

/// Operations read back after the cancel runs to check they ended CANCELLED.
const CANCEL_SAMPLE: usize = 500;

fn submission() -> Value {
    json!({"type": "BENCH", "description": "bench"})
}

/// Submits per batch in the batch-submit figure: the most one call takes.
const BATCH: usize = 1000;
/// Clients sending batches at once.
const BATCH_CLIENTS: usize = 8;

/// Plain submit for `--seconds` (the submit figure, against 5,000 operations/s); returns its
/// rate in operations/s.
pub async fn submit(setup: &Setup, summary: &mut Summary) -> anyhow::Result<f64> {
    let body = Arc::new(submission());
    let report = load::run(
        setup.clients,
        setup.duration,
        &setup.pids(),
        |task, mut rec| {
            let client = setup.client_for(task).clone();
            let body = body.clone();
            async move {
                while rec.running() {
                    rec.time(client.submit("bench-submit", &body)).await;
                }
                rec
            }
        },
    )
    .await?;
    println!("submit: {}", report.line("operations"));
    summary.check("submit", &report);
    summary.figure(
        &format!("submit ({} clients{})", setup.clients, setup.across()),
        report.rate(),
        "ops/s",
        Target::AtLeast(5_000.0),
    );
    Ok(report.rate())
}

/// Batch submit (docs/operations.md#batch-submit) for `--seconds`: [`BATCH_CLIENTS`]
/// clients each sending batches of [`BATCH`] submit bodies; the rate in operations/s
/// against 50,000 and, when the plain submit ran before on the same server (`plain`), at
/// least 4× its rate.
pub async fn batch_submit(
    setup: &Setup,
    plain: Option<f64>,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let body = Arc::new(json!({ "requests": vec![submission(); BATCH] }));
    let report = load::run(
        BATCH_CLIENTS,
        setup.duration,
        &setup.pids(),
        |task, mut rec| {
            let client = setup.client_for(task).clone();
            let body = body.clone();
            async move {
                let path = "/v1/projects/bench-batch/operations:batchSubmit";
                while rec.running() {
                    rec.time(client.call(http::Method::POST, path, Some(&body)))
                        .await;
                }
                rec
            }
        },
    )
    .await?;
    let rate = report.rate() * BATCH as f64;
    println!(
        "batch submit: {rate:.0} operations/s in batches of {BATCH}; {}",
        report.line("batches")
    );
    summary.check("batch submit", &report);
    summary.figure(
        &format!("batch submit ({BATCH_CLIENTS} clients, {BATCH} a batch)"),
        rate,
        "ops/s",
        Target::AtLeast(50_000.0),
    );
    if let Some(plain) = plain {
        summary.figure(
            "batch submit ÷ plain submit",
            rate / plain,
            "×",
            Target::AtLeast(4.0),
        );
    }
    Ok(())
}

pub async fn get(setup: &Setup, summary: &mut Summary) -> anyhow::Result<()> {
    let names = Arc::new(queue(setup, "bench-get", GET_OPERATIONS).await?);
    let report = load::run(
        setup.clients,
        setup.duration,
        &setup.pids(),
        |task, mut rec| {
            let client = setup.client().clone();
            let names = names.clone();
            async move {
                let mut i = 0u64;
                while rec.running() {
                    let pick = load::mix(((task as u64) << 32) | i) as usize % names.len();
                    rec.time(client.get(&names[pick])).await;
                    i += 1;
                }
                rec
            }
        },
    )
    .await?;
    println!("get: {}", report.line("requests"));
    summary.check("get", &report);
    summary.figure(
        &format!("get ({} clients)", setup.clients),
        report.rate(),
        "requests/s",
        Target::AtLeast(30_000.0),
    );
    Ok(())
}

/// GetOperation over gRPC: the same reads as `get`, each client on a connection of its own.
pub async fn grpc_get(setup: &Setup, summary: &mut Summary) -> anyhow::Result<()> {
    use longrun_proto::google::longrunning::GetOperationRequest;
    use longrun_proto::google::longrunning::operations_client::OperationsClient;
    let names = Arc::new(queue(setup, "bench-grpc-get", GET_OPERATIONS).await?);
    let base = setup.client().base().to_string();
    let report = load::run(
        setup.clients,
        setup.duration,
        &setup.pids(),
        |task, mut rec| {
            let names = names.clone();
            let channel = tonic::transport::Endpoint::from_shared(base.clone())
                .map(|e| e.tcp_nodelay(true).connect_lazy());
            async move {
                let Ok(channel) = channel else { return rec };
                let mut client = OperationsClient::new(channel);
                let mut i = 0u64;
                while rec.running() {
                    let pick = load::mix(((task as u64) << 32) | i) as usize % names.len();
                    let request = GetOperationRequest {
                        name: names[pick].to_string(),
                    };
                    rec.time(async {
                        client
                            .get_operation(request)
                            .await
                            .map_err(|e| longrun_client::Error::Transport(e.to_string()))
                    })
                    .await;
                    i += 1;
                }
                rec
            }
        },
    )
    .await?;
    println!("grpc get: {}", report.line("requests"));
    summary.check("grpc get", &report);
    summary.figure(
        &format!("gRPC GetOperation ({} clients)", setup.clients),
        report.rate(),
        "requests/s",
        Target::AtLeast(30_000.0),
    );
    Ok(())
}

/// Cancels distinct PENDING operations, first with many clients (throughput), then with
/// one (latency without queueing), and checks a sample ended CANCELLED.
pub async fn cancel(setup: &Setup, summary: &mut Summary) -> anyhow::Result<()> {
    let wanted = CANCELS_QUEUED_PER_SECOND * setup.duration.as_secs().max(1) as usize;
    let names = Arc::new(queue(setup, "bench-cancel", wanted).await?);
    let next = Arc::new(AtomicUsize::new(0));
    let mut cancelled = 0;
    for clients in [setup.clients, 1] {
        let first = cancelled;
        let report = load::run(clients, setup.duration, &setup.pids(), |_, rec| {
            cancel_from(setup.client().clone(), names.clone(), next.clone(), rec)
        })
        .await?;
        cancelled = next.load(Ordering::Relaxed).min(names.len());
        let label = format!(
            "cancel ({clients} client{})",
            if clients == 1 { "" } else { "s" }
        );
        println!("{label}: {}", report.line("cancels"));
        if cancelled == names.len() {
            println!(
                "  ran out of PENDING operations after {:.1} s ({} cancelled)",
                report.elapsed().as_secs_f64(),
                cancelled - first
            );
        }
        summary.check(&label, &report);
        if clients == 1 {
            summary.figure(
                &format!("{label} p50"),
                report.percentile_ms(50.0),
                "ms",
                Target::AtMost(2.0),
            );
        } else {
            summary.figure(&label, report.rate(), "cancels/s", Target::AtLeast(5_000.0));
        }
    }
    verify_cancelled(setup.client(), &names[..cancelled], summary).await
}

/// One cancel client: takes the next operation nobody has cancelled yet until the time is
/// up or none are left.
async fn cancel_from(
    client: Client,
    names: Arc<Vec<Name>>,
    next: Arc<AtomicUsize>,
    mut rec: Recorder,
) -> Recorder {
    while rec.running() {
        let Some(name) = names.get(next.fetch_add(1, Ordering::Relaxed)) else {
            break;
        };
        rec.time(client.cancel(name)).await;
    }
    rec
}

/// Reads back an even sample of `names` and notes any that is not CANCELLED.
async fn verify_cancelled(
    client: &Client,
    names: &[Name],
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let step = (names.len() / CANCEL_SAMPLE).max(1);
    let mut wrong = Vec::new();
    let mut checked = 0;
    for name in names.iter().step_by(step) {
        let op = client.get(name).await?;
        checked += 1;
        let state = op["metadata"]["state"].as_str().unwrap_or("?");
        if state != "CANCELLED" {
            wrong.push(format!("{name} is {state}"));
        }
    }
    if wrong.is_empty() {
        println!("cancel: checked {checked} cancelled operations, all CANCELLED");
    } else {
        summary.problem(format!(
            "cancel: {} of {checked} sampled operations are not CANCELLED (e.g. {})",
            wrong.len(),
            wrong[0]
        ));
    }
    Ok(())
}

/// Submits `count` PENDING operations to `project` with the scenario's clients and returns
/// their names. Any failure ends the scenario: it is set-up, not measurement.
async fn queue(setup: &Setup, project: &str, count: usize) -> anyhow::Result<Vec<Name>> {
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let body = Arc::new(submission());
    let tasks: Vec<_> = (0..setup.clients)
        .map(|_| {
            let (client, next, body) = (setup.client().clone(), next.clone(), body.clone());
            let project = project.to_string();
            tokio::spawn(async move {
                let mut names = Vec::new();
                while next.fetch_add(1, Ordering::Relaxed) < count {
                    let op = client.submit(&project, &body).await?;
                    let name = op["name"].as_str().context("submit returned no name")?;
                    names.push(Name::parse(name).map_err(anyhow::Error::msg)?);
                }
                anyhow::Ok(names)
            })
        })
        .collect();
    let mut names = Vec::with_capacity(count);
    for task in tasks {
        names.extend(task.await??);
    }
    println!(
        "queued {count} operations in {project} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(names)
}
