//! An example worker: serves `ECHO` operations (returns the payload) and `COUNTDOWN`
//! operations (counts `{"seconds": N}` down, reporting progress, and stops when cancelled).
//!
//!     cargo run -p longrun-worker --example worker -- http://127.0.0.1:8080
//!
//! Against a server with auth on, `LONGRUN_TOKEN` holds the worker's bearer token.

use longrun_types::Code;
use longrun_worker::{GrpcBackend, Status, Worker};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

#[tokio::main]
async fn main() {
    let server = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let worker = Worker::new("example-worker")
        .concurrency(4)
        .handle("ECHO", |ctx| async move { Ok(json!({"echo": ctx.payload().clone()})) })
        .handle("COUNTDOWN", |ctx| async move {
            let seconds = ctx.payload()["seconds"].as_i64().unwrap_or(10).max(0);
            for done in 1..=seconds {
                tokio::select! {
                    _ = ctx.cancelled() => return Err(Status::new(Code::Cancelled, "Countdown cancelled.")),
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                ctx.stage("Counting", done, seconds);
                ctx.progress(done as f64 / seconds as f64);
            }
            Ok(json!({"counted": seconds}))
        });
    // The gRPC worker stream: cancellations are pushed. `HttpBackend` is the REST fallback.
    let backend = GrpcBackend::new(&server).expect("a server URL like http://127.0.0.1:8080");
    let backend = match std::env::var("LONGRUN_TOKEN") {
        Ok(token) => backend.with_token(&token),
        Err(_) => backend,
    };
    println!("serving ECHO and COUNTDOWN from {server}; Ctrl-C stops");
    worker
        .run(Arc::new(backend), async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
}
