//! `longrun queues …`: queues (docs/queues.md) for people and scripts, through a server,
//! with the flags and exit codes of `longrun operations` (0 success; 1 transport or server
//! failure; 2 usage; 3 invalid argument or failed precondition; 4 not found; 6 permission
//! denied).

use crate::operations::{Failure, Target};
use crate::output::print_columns;
use http::Method;
use serde_json::{Value, json};
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum Command {
    /// List the project's queues with PENDING or RUNNING work or a pause.
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Show one queue: its state, counts and oldest PENDING time.
    Describe {
        #[command(flatten)]
        target: Target,
        /// The operation type, `-` for every type, or a full name projects/P/queues/TYPE.
        queue: String,
    },
    /// Stop leasing from a queue on every server (`-`: every type of the project).
    Pause {
        #[command(flatten)]
        target: Target,
        queue: String,
    },
    /// Lease from a paused queue again (`-`: every queue of the project).
    Resume {
        #[command(flatten)]
        target: Target,
        queue: String,
    },
}

pub async fn run(command: Command) -> ExitCode {
    match execute(command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(code, message)) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

/// The path of a queue given by type or full name, the type percent-encoded.
fn path(target: &Target, queue: &str) -> Result<String, Failure> {
    let (project, op_type) = match queue.strip_prefix("projects/") {
        Some(rest) => rest.split_once("/queues/").ok_or_else(|| {
            Failure(
                2,
                format!("`{queue}` is not a queue name projects/P/queues/TYPE"),
            )
        })?,
        None => (target.project()?, queue),
    };
    let op_type = percent_encoding::utf8_percent_encode(op_type, SEGMENT);
    Ok(format!("/v1/projects/{project}/queues/{op_type}"))
}

/// What a path segment cannot hold as it is.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'/')
    .add(b'?')
    .add(b'#')
    .add(b'%')
    .add(b':');

async fn execute(command: Command) -> Result<(), Failure> {
    let (target, method, path) = match command {
        Command::List { target } => {
            let path = format!("/v1/projects/{}/queues", target.project()?);
            let page = target
                .client()
                .await?
                .call(Method::GET, &path, None)
                .await?;
            let queues = page["queues"].as_array().cloned().unwrap_or_default();
            if target.table() {
                print_table(&queues);
            } else {
                target.print(&json!(queues));
            }
            return Ok(());
        }
        Command::Describe { target, queue } => {
            let path = path(&target, &queue)?;
            (target, Method::GET, path)
        }
        Command::Pause { target, queue } => {
            let path = format!("{}:pause", path(&target, &queue)?);
            (target, Method::POST, path)
        }
        Command::Resume { target, queue } => {
            let path = format!("{}:resume", path(&target, &queue)?);
            (target, Method::POST, path)
        }
    };
    let queue = target.client().await?.call(method, &path, None).await?;
    if target.table() {
        print_table(std::slice::from_ref(&queue));
    } else {
        target.print(&queue);
    }
    Ok(())
}

fn print_table(queues: &[Value]) {
    let rows: Vec<[String; 5]> = queues
        .iter()
        .map(|q| {
            let text = |k: &str| q[k].as_str().unwrap_or_default().to_string();
            let name = text("name");
            let op_type = name
                .split_once("/queues/")
                .map_or(name.as_str(), |(_, t)| t)
                .to_string();
            [
                op_type,
                text("state"),
                text("pendingCount"),
                text("runningCount"),
                text("oldestPendingTime"),
            ]
        })
        .collect();
    print_columns(
        ["TYPE", "STATE", "PENDING", "RUNNING", "OLDEST PENDING"],
        &rows,
    );
}
