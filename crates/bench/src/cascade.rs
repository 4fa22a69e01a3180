//! The `cascade` scenario (docs/operations.md#parents-and-children): `--rounds` (at most 20)
//! times, a PENDING parent with `--children` (10,000) PENDING children (batch submits of
//! 1,000) is cancelled, and the figure is the time from the cancel call until the parent
//! ends CANCELLED, which it does only once every child is done (targets, p99: 1 s on
//! SQLite, 3 s on PostgreSQL). Each round also checks that the parent counts every child
//! as cancelled.

use crate::scenarios::Setup;
use crate::summary::{Summary, Target};
use crate::workers::Latencies;
use anyhow::Context;
use longrun_types::Name;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const PROJECT: &str = "bench-cascade";

/// `store` names the store in the figure (`SQLite`, `PostgreSQL`).
pub async fn cascade(
    setup: &Setup,
    store: &str,
    children: usize,
    rounds: usize,
    target_ms: f64,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let client = setup.client();
    let mut times = Vec::new();
    for round in 0..rounds.clamp(1, 20) {
        let parent = client
            .submit(
                PROJECT,
                &json!({"type": "JOB", "operationId": format!("job-{round}")}),
            )
            .await?;
        let parent_name = parent["name"].as_str().context("a name")?.to_string();
        let ids: Vec<usize> = (0..children).collect();
        for chunk in ids.chunks(1000) {
            let requests: Vec<Value> = chunk
                .iter()
                .map(|i| json!({"type": "PART", "operationId": format!("job-{round}-{i}"), "parent": parent_name}))
                .collect();
            let body = json!({"requests": requests}).to_string();
            let path = format!("/v1/projects/{PROJECT}/operations:batchSubmit");
            let r = client
                .send(http::Method::POST, &path, Some(body.as_bytes()))
                .await?;
            anyhow::ensure!(r.status == 200, "batch submit: {}", r.status);
        }
        let name = Name::parse(&parent_name).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let started = Instant::now();
        client.cancel(&name).await?;
        let done = loop {
            let op = client.wait(&name, Some(Duration::from_secs(30))).await?;
            if op["done"] == true {
                break op;
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(120),
                "the cascade never ended"
            );
        };
        times.push(started.elapsed());
        let counted = done["error"]["details"]
            .as_array()
            .and_then(|d| d.iter().find(|d| d["reason"] == "CHILDREN_CANCELLED"))
            .and_then(|d| d["metadata"]["cancelledDescendants"].as_str())
            .unwrap_or_default()
            .to_string();
        if counted != children.to_string() {
            summary.problem(format!(
                "cascade: round {round} counted {counted:?} cancelled children of {children}"
            ));
        }
    }
    let times = Latencies::new(times);
    println!(
        "cascade on {store}: cancel of a parent with {children} PENDING children until it is \
         CANCELLED: {}",
        times.line()
    );
    summary.figure(
        &format!("cascade of {children} children on {store}, p99"),
        times.percentile_ms(99.0),
        "ms",
        Target::AtMost(target_ms),
    );
    Ok(())
}
