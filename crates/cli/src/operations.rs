//! `longrun operations …`: the operations API for people and scripts.
//!
//! Exit codes: 0 success; 1 transport or server failure; 2 usage; 3 invalid argument or
//! failed precondition; 4 not found; 5 already exists or aborted; 6 permission denied or
//! unauthenticated; 7 resource exhausted; 8 unimplemented. `wait` also exits 10 when the
//! operation FAILED, 11 when it was CANCELLED and 12 when it is not done at the timeout; so
//! do `batch-cancel --wait` and `batch-retry --wait`, for their BATCH_CANCEL and BATCH_RETRY
//! operations.

use crate::output::{
    finish_progress, id, print_details, print_payload, print_table, show_progress,
};
use longrun_client::{Client, Error};
use longrun_types::{Name, Project};
use serde_json::{Value, json};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Target {
    /// Server base URL.
    #[arg(
        long,
        env = "LONGRUN_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    server: String,
    #[command(flatten)]
    credentials: crate::auth::Credentials,
    /// The client, made on first use (once a key file's token is got).
    #[arg(skip)]
    made: tokio::sync::OnceCell<Client>,
    /// Project of the operations.
    #[arg(long, env = "LONGRUN_PROJECT", global = true)]
    project: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table", global = true)]
    format: Format,
}

#[derive(Clone, Copy, PartialEq, clap::ValueEnum)]
enum Format {
    Table,
    Json,
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// List a project's operations, newest first.
    List {
        #[command(flatten)]
        target: Target,
        /// AIP-160 filter, e.g. 'metadata.state = RUNNING'.
        #[arg(long, default_value = "")]
        filter: String,
        /// Only the children of this operation (its id, or a full name), with --filter.
        #[arg(long)]
        parent: Option<String>,
        /// Stop after this many operations (0 = all) [default: 100 on a terminal, else all,
        /// so that scripts get every page].
        #[arg(long)]
        limit: Option<usize>,
        /// Operations asked for per request (1 to 1000).
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1000))]
        page_size: u32,
    },
    /// Show one operation.
    Describe {
        #[command(flatten)]
        target: Target,
        /// Operation id, or a full name projects/P/operations/ID.
        operation: String,
    },
    /// Ask for cancellation (asynchronous; see describe or wait for the outcome).
    Cancel {
        #[command(flatten)]
        target: Target,
        operation: String,
    },
    /// Cancel every operation of the project that matches a filter and is not done, as one
    /// BATCH_CANCEL operation on the server (itself cancellable); prints its name, or with
    /// --wait its counts once it is done.
    BatchCancel {
        #[command(flatten)]
        target: Target,
        /// AIP-160 filter the operations must match, e.g. 'metadata.state = PENDING'
        /// (required: the server refuses an empty one).
        #[arg(long)]
        filter: String,
        /// Wait until every match is cancelled (or found done) and print the counts.
        #[arg(long)]
        wait: bool,
        /// Longest wait with --wait, e.g. 30s or 5m.
        #[arg(long, default_value = "10m")]
        timeout: humantime::Duration,
    },
    /// Run a done operation again as a new operation with what it was submitted with (its
    /// metadata.retryOf names the original); prints the new operation's name.
    Retry {
        #[command(flatten)]
        target: Target,
        /// The done operation: its id, or a full name projects/P/operations/ID.
        operation: String,
        /// The new operation's id (may have several segments); generated when absent.
        #[arg(long)]
        operation_id: Option<String>,
        /// Idempotency key: the same id again returns the same retry.
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Retry every done operation of the project that matches a filter, as one BATCH_RETRY
    /// operation on the server; prints its name, or with --wait its counts once it is done.
    BatchRetry {
        #[command(flatten)]
        target: Target,
        /// AIP-160 filter the operations must match, e.g. 'metadata.state = FAILED'
        /// (required: the server refuses an empty one).
        #[arg(long)]
        filter: String,
        /// Wait until every match is retried (or found not done) and print the counts.
        #[arg(long)]
        wait: bool,
        /// Longest wait with --wait, e.g. 30s or 5m.
        #[arg(long, default_value = "10m")]
        timeout: humantime::Duration,
    },
    /// Print the output the command executor kept for an operation.
    Output {
        #[command(flatten)]
        target: Target,
        operation: String,
    },
    /// Delete a done operation.
    Delete {
        #[command(flatten)]
        target: Target,
        operation: String,
    },
    /// Wait until the operation is done or the timeout passes.
    Wait {
        #[command(flatten)]
        target: Target,
        operation: String,
        /// Longest wait, e.g. 30s or 5m.
        #[arg(long, default_value = "60s")]
        timeout: humantime::Duration,
    },
    /// Follow a project's operations as they change: each matching operation as it stands,
    /// then every change, until interrupted (reconnects where it left off).
    Watch {
        #[command(flatten)]
        target: Target,
        /// AIP-160 filter, e.g. 'metadata.type = "EXPORT"'.
        #[arg(long, default_value = "")]
        filter: String,
        /// Print only changes, not the operations as they stand at the start.
        #[arg(long)]
        changes_only: bool,
    },
    /// Create operations from submit bodies, one JSON object a line (blank lines
    /// skipped), in batches of 1,000, each written whole or not at all; prints each
    /// operation's name as it is created.
    BatchSubmit {
        #[command(flatten)]
        target: Target,
        /// The JSON lines file; standard input when absent or `-`.
        #[arg(long)]
        file: Option<std::path::PathBuf>,
    },
    /// Create an operation.
    Submit {
        #[command(flatten)]
        target: Target,
        /// The operation type (metadata.type).
        #[arg(long = "type")]
        op_type: String,
        #[arg(long, default_value = "")]
        description: String,
        #[arg(long)]
        priority: Option<i64>,
        /// JSON payload handed to the worker.
        #[arg(long)]
        payload: Option<String>,
        /// Operation id (may have several segments); generated when absent.
        #[arg(long)]
        operation_id: Option<String>,
        /// Idempotency key: the same id again returns the same operation.
        #[arg(long)]
        request_id: Option<String>,
        #[arg(long)]
        max_attempts: Option<i64>,
        /// Time limit from creation, e.g. 1h.
        #[arg(long)]
        timeout: Option<humantime::Duration>,
        /// Groups operations for the type's `key_concurrency` (at most that many of one
        /// key run at once in a project).
        #[arg(long)]
        concurrency_key: Option<String>,
        /// Not started before this time (RFC 3339, e.g. 2026-12-24T18:00:00Z).
        #[arg(long)]
        schedule_time: Option<String>,
        /// Fails the operation if it has not started this long after --schedule-time (or
        /// its creation), e.g. 10m.
        #[arg(long)]
        start_timeout: Option<humantime::Duration>,
        /// Submit it as a child of this operation (its id, or a full name), which must be
        /// PENDING or RUNNING: it starts once the parent runs, and ends when the parent ends
        /// or is cancelled.
        #[arg(long)]
        parent: Option<String>,
    },
}

/// Submit bodies read as JSON lines, sent in batches of this many (the server's most).
const BATCH_SUBMIT: usize = 1000;

/// A failure with its exit code.
pub(crate) struct Failure(pub(crate) u8, pub(crate) String);

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure(exit_code(&e), e.to_string())
    }
}

/// The exit code of a client error (README, "CLI exit codes").
pub(crate) fn exit_code(e: &Error) -> u8 {
    match e {
        Error::Transport(_) => 1,
        // A key file that cannot be used, or its token refused.
        Error::Credentials(_) => 6,
        // A CA file or client certificate that cannot be used.
        Error::Tls(_) => 2,
        Error::Api { status_name, .. } => match status_name.as_str() {
            "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => 3,
            "NOT_FOUND" => 4,
            "ALREADY_EXISTS" | "ABORTED" => 5,
            "PERMISSION_DENIED" | "UNAUTHENTICATED" => 6,
            "RESOURCE_EXHAUSTED" => 7,
            "UNIMPLEMENTED" => 8,
            _ => 1,
        },
    }
}

/// The exit code of a command that failed with `e`: a client error's own, else 1.
pub(crate) fn exit_code_of(e: &anyhow::Error) -> u8 {
    e.downcast_ref::<Error>().map_or(1, exit_code)
}

pub async fn run(command: Command) -> ExitCode {
    match execute(command).await {
        Ok(code) => ExitCode::from(code),
        Err(Failure(code, message)) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

impl Target {
    /// A client for `--server` with the credentials given (a key file is exchanged for a
    /// token here).
    pub(crate) async fn client(&self) -> Result<Client, Failure> {
        let made = self
            .made
            .get_or_try_init(|| self.credentials.client(&self.server));
        Ok(made.await?.clone())
    }

    pub(crate) fn project(&self) -> Result<&str, Failure> {
        self.project
            .as_deref()
            .ok_or_else(|| Failure(2, "--project (or LONGRUN_PROJECT) is required".into()))
    }

    fn name(&self, operation: &str) -> Result<Name, Failure> {
        let parsed = if operation.starts_with("projects/") {
            Name::parse(operation)
        } else {
            Project::parse(self.project()?).and_then(|p| Name::new(&p, operation))
        };
        parsed.map_err(|e| Failure(3, e.into()))
    }

    /// Whether output is a table (else JSON).
    pub(crate) fn table(&self) -> bool {
        self.format == Format::Table
    }

    pub(crate) fn print(&self, value: &Value) {
        println!(
            "{}",
            serde_json::to_string_pretty(value).expect("JSON values serialize")
        );
    }
}

async fn execute(command: Command) -> Result<u8, Failure> {
    match command {
        Command::List {
            target,
            filter,
            parent,
            limit,
            page_size,
        } => {
            use std::io::IsTerminal;
            let limit = limit.unwrap_or(if std::io::stdout().is_terminal() {
                100
            } else {
                0
            });
            let client = target.client().await?;
            let project = target.project()?;
            let filter = match parent {
                Some(parent) => {
                    let children = format!("metadata.parent = \"{}\"", target.name(&parent)?);
                    if filter.is_empty() {
                        children
                    } else {
                        format!("({filter}) AND {children}")
                    }
                }
                None => filter,
            };
            let mut operations = Vec::new();
            let mut token = String::new();
            let more = loop {
                let want = if limit == 0 {
                    page_size
                } else {
                    (limit - operations.len()).min(page_size as usize) as u32
                };
                let page = client.list(project, &filter, want, &token).await?;
                if let Some(ops) = page["operations"].as_array() {
                    operations.extend(ops.iter().cloned());
                }
                match page["nextPageToken"].as_str().filter(|t| !t.is_empty()) {
                    Some(next) if limit == 0 || operations.len() < limit => {
                        token = next.to_string()
                    }
                    next => break next.is_some(),
                }
            };
            if target.format == Format::Json {
                target.print(&Value::Array(operations));
            } else {
                print_table(&operations);
            }
            if more {
                eprintln!(
                    "(the first {limit} shown; more exist: --limit N for more, --limit 0 for all)"
                );
            }
            Ok(0)
        }
        Command::Watch {
            target,
            filter,
            changes_only,
        } => watch(&target, &filter, changes_only).await,
        Command::Describe { target, operation } => {
            let name = target.name(&operation)?;
            let client = target.client().await?;
            let response = client
                .send(http::Method::GET, &format!("/v1/{name}"), None)
                .await?;
            if !(200..300).contains(&response.status) {
                // The error in the envelope, with its exit code.
                client.get(&name).await?;
            }
            let op = response.json();
            if target.format == Format::Json {
                target.print(&op);
            } else {
                print_details(&op);
                // Why a PENDING operation waits, when the server can tell.
                if let Some(why) = response
                    .headers
                    .get("x-longrun-waiting")
                    .and_then(|v| v.to_str().ok())
                {
                    println!("waiting:     {why}");
                }
                let payload = client.payload(&name).await?;
                print_payload(&payload["payload"]);
            }
            Ok(0)
        }
        Command::Cancel { target, operation } => {
            let name = target.name(&operation)?;
            let response = target.client().await?.cancel(&name).await?;
            if target.format == Format::Json {
                target.print(&response);
            } else {
                println!("cancellation requested for {name}");
            }
            Ok(0)
        }
        Command::BatchCancel {
            target,
            filter,
            wait,
            timeout,
        } => {
            let client = target.client().await?;
            let op = client.batch_cancel(target.project()?, &filter).await?;
            let counts = [
                ("matched", "matchedCount"),
                ("cancelled", "cancelledCount"),
                ("already done", "alreadyDoneCount"),
            ];
            bulk_job(&target, op, wait.then_some(*timeout), &counts).await
        }
        Command::BatchRetry {
            target,
            filter,
            wait,
            timeout,
        } => {
            let client = target.client().await?;
            let op = client.batch_retry(target.project()?, &filter).await?;
            let counts = [
                ("matched", "matchedCount"),
                ("retried", "retriedCount"),
                ("not done", "notDoneCount"),
            ];
            bulk_job(&target, op, wait.then_some(*timeout), &counts).await
        }
        Command::Retry {
            target,
            operation,
            operation_id,
            request_id,
        } => {
            let name = target.name(&operation)?;
            let op = target
                .client()
                .await?
                .retry(&name, operation_id.as_deref(), request_id.as_deref())
                .await?;
            if target.format == Format::Json {
                target.print(&op);
            } else {
                println!("{}", op["name"].as_str().unwrap_or_default());
            }
            Ok(0)
        }
        Command::Output { target, operation } => {
            let output = target
                .client()
                .await?
                .output(&target.name(&operation)?)
                .await?;
            if target.format == Format::Json {
                target.print(&output);
            } else {
                print!("{}", output["output"].as_str().unwrap_or_default());
            }
            Ok(0)
        }
        Command::Delete { target, operation } => {
            let name = target.name(&operation)?;
            let response = target.client().await?.delete(&name).await?;
            if target.format == Format::Json {
                target.print(&response);
            } else {
                println!("deleted {name}");
            }
            Ok(0)
        }
        Command::Wait {
            target,
            operation,
            timeout,
        } => {
            let name = target.name(&operation)?;
            let client = target.client().await?;
            let op = tokio::select! {
                op = client.wait(&name, Some(*timeout)) => op?,
                // Shows progress until the wait answers; never ends by itself.
                _ = show_progress(&client, &name) => unreachable!("progress never ends"),
            };
            finish_progress();
            if target.format == Format::Json {
                target.print(&op);
            } else {
                print_details(&op);
            }
            Ok(waited(&op))
        }
        Command::Submit {
            target,
            op_type,
            description,
            priority,
            payload,
            operation_id,
            request_id,
            max_attempts,
            timeout,
            concurrency_key,
            schedule_time,
            start_timeout,
            parent,
        } => {
            let parent = parent.map(|p| target.name(&p)).transpose()?;
            let payload: Value = match payload {
                Some(text) => serde_json::from_str(&text)
                    .map_err(|e| Failure(3, format!("--payload is not JSON: {e}")))?,
                None => json!({}),
            };
            let mut body = json!({"type": op_type, "description": description, "payload": payload});
            let fields = [
                ("priority", priority.map(Value::from)),
                ("operationId", operation_id.map(Value::from)),
                ("requestId", request_id.map(Value::from)),
                ("maxAttempts", max_attempts.map(Value::from)),
                ("concurrencyKey", concurrency_key.map(Value::from)),
                (
                    "timeout",
                    timeout.map(|t| Value::from(longrun_types::duration::format(*t))),
                ),
                ("scheduleTime", schedule_time.map(Value::from)),
                (
                    "startTimeout",
                    start_timeout.map(|t| Value::from(longrun_types::duration::format(*t))),
                ),
                ("parent", parent.map(|p| Value::from(p.to_string()))),
            ];
            for (key, value) in fields {
                if let Some(value) = value {
                    body[key] = value;
                }
            }
            let op = target
                .client()
                .await?
                .submit(target.project()?, &body)
                .await?;
            if target.format == Format::Json {
                target.print(&op);
            } else {
                println!("{}", op["name"].as_str().unwrap_or_default());
            }
            Ok(0)
        }
        Command::BatchSubmit { target, file } => batch_submit(&target, file).await,
    }
}

/// `operations batch-submit`: the lines of `file` (or standard input) in batches of
/// [`BATCH_SUBMIT`]. A line that is not a JSON object fails before anything is sent; a
/// batch the server refuses stops there, and says how many earlier batches created.
async fn batch_submit(target: &Target, file: Option<std::path::PathBuf>) -> Result<u8, Failure> {
    let text = match file.filter(|f| f.as_os_str() != "-") {
        Some(path) => std::fs::read_to_string(&path)
            .map_err(|e| Failure(2, format!("cannot read {}: {e}", path.display())))?,
        None => std::io::read_to_string(std::io::stdin())
            .map_err(|e| Failure(2, format!("cannot read standard input: {e}")))?,
    };
    let mut bodies = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let body: Value = serde_json::from_str(line)
            .map_err(|e| Failure(3, format!("line {}: not JSON: {e}", i + 1)))?;
        if !body.is_object() {
            return Err(Failure(3, format!("line {}: not a JSON object", i + 1)));
        }
        bodies.push(body);
    }
    let (client, project) = (target.client().await?, target.project()?);
    let path = format!("/v1/projects/{project}/operations:batchSubmit");
    let mut created = 0;
    for chunk in bodies.chunks(BATCH_SUBMIT) {
        let answer = client
            .call(
                http::Method::POST,
                &path,
                Some(&json!({ "requests": chunk })),
            )
            .await
            .map_err(|e| {
                let Failure(code, message) = Failure::from(e);
                Failure(
                    code,
                    format!("{message} ({created} submitted in earlier batches)"),
                )
            })?;
        for op in answer["operations"].as_array().into_iter().flatten() {
            if target.format == Format::Json {
                println!("{op}");
            } else {
                println!("{}", op["name"].as_str().unwrap_or_default());
            }
        }
        created += chunk.len();
    }
    Ok(0)
}

/// Prints the watch stream: a line per event (`--format json`: the event as one JSON
/// object per line). When the server ends the stream (a restart), it reconnects with the
/// last cursor, so nothing is missed or, after a `reset`, the snapshot is printed again.
async fn watch(target: &Target, filter: &str, changes_only: bool) -> Result<u8, Failure> {
    let client = target.client().await?;
    let project = target.project()?;
    let extra = if changes_only { "snapshot=false" } else { "" };
    let mut last: Option<String> = None;
    let mut failures = 0;
    loop {
        let mut stream = match client.watch(project, filter, last.as_deref(), extra).await {
            Ok(stream) => stream,
            Err(e @ Error::Api { .. }) => return Err(e.into()),
            Err(e) if failures >= 5 => return Err(e.into()),
            Err(_) => {
                failures += 1;
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        while let Ok(Some(event)) = stream.next().await {
            failures = 0;
            if event.id.as_deref().is_some_and(|id| !id.ends_with("-s")) || event.event == "synced"
            {
                last = event.id.clone();
            }
            if target.format == Format::Json {
                println!(
                    "{}",
                    json!({"event": event.event, "id": event.id, "data": event.json()})
                );
                continue;
            }
            let data = event.json();
            match event.event.as_str() {
                "operation" => {
                    let m = &data["metadata"];
                    let progress = m["progress"]
                        .as_f64()
                        .map(|p| format!(" {:.0}%", p * 100.0))
                        .unwrap_or_default();
                    println!(
                        "{:<10} {}  {}{progress}",
                        m["state"].as_str().unwrap_or_default(),
                        id(&data),
                        m["type"].as_str().unwrap_or_default(),
                    );
                }
                "deleted" => println!("{:<10} {}", "DELETED", id(&data)),
                "synced" => eprintln!("-- up to date; following changes"),
                "reset" => eprintln!("-- the server started over; the operations as they stand:"),
                _ => {}
            }
        }
    }
}

/// A bulk job `op` just created: waited for up to `wait` when given, then printed (its
/// name while not done, its error, or its `counts`: (label, response field)).
async fn bulk_job(
    target: &Target,
    mut op: Value,
    wait: Option<std::time::Duration>,
    counts: &[(&str, &str)],
) -> Result<u8, Failure> {
    if let Some(timeout) = wait {
        let name = Name::parse(op["name"].as_str().unwrap_or_default())
            .map_err(|e| Failure(1, format!("the server named no operation: {e}")))?;
        op = target.client().await?.wait(&name, Some(timeout)).await?;
    }
    if target.format == Format::Json {
        target.print(&op);
    } else if op["done"] != true {
        println!("{}", op["name"].as_str().unwrap_or_default());
    } else if let Some(error) = op.get("error") {
        println!(
            "{}: code {} {}",
            op["name"].as_str().unwrap_or_default(),
            error["code"],
            error["message"].as_str().unwrap_or_default()
        );
    } else {
        let line: Vec<String> = counts
            .iter()
            .map(|(label, field)| {
                let n = op["response"][field].as_str().unwrap_or("0");
                format!("{label} {n}")
            })
            .collect();
        println!("{}", line.join(", "));
    }
    Ok(if wait.is_some() { waited(&op) } else { 0 })
}

/// The exit code after a wait: 0 SUCCEEDED, 10 FAILED, 11 CANCELLED, 12 not done.
fn waited(op: &Value) -> u8 {
    match op["metadata"]["state"].as_str() {
        Some("SUCCEEDED") => 0,
        Some("FAILED") => 10,
        Some("CANCELLED") => 11,
        _ => 12,
    }
}
