//! `longrun schedules …`: schedules (docs/schedules.md) for people and scripts, with the
//! flags and exit codes of `longrun operations` (0 success; 1 transport or server failure;
//! 2 usage; 3 invalid argument; 4 not found; 5 already exists; 6 permission denied).

use crate::operations::{Failure, Target};
use http::Method;
use serde_json::{Value, json};
use std::process::ExitCode;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Policy {
    /// A firing while the previous operation is not done submits nothing.
    Skip,
    /// Submit at every fire time.
    Allow,
    /// Cancel the previous operation, then submit.
    CancelPrevious,
}

impl Policy {
    fn wire(self) -> &'static str {
        match self {
            Policy::Skip => "SKIP",
            Policy::Allow => "ALLOW",
            Policy::CancelPrevious => "CANCEL_PREVIOUS",
        }
    }
}

/// The operation a schedule submits: a whole submit body, or its common fields.
#[derive(clap::Args)]
pub struct Operation {
    /// The whole submit body as JSON (without operationId and requestId), e.g.
    /// '{"type": "EXPORT_IMAGE", "payload": {...}}'.
    #[arg(long, conflicts_with_all = ["op_type", "description", "priority", "payload"])]
    operation: Option<String>,
    /// The operation type (metadata.type).
    #[arg(long = "type")]
    op_type: Option<String>,
    #[arg(long)]
    description: Option<String>,
    #[arg(long)]
    priority: Option<i64>,
    /// JSON payload handed to the worker.
    #[arg(long)]
    payload: Option<String>,
}

impl Operation {
    /// The submit body, if the flags give one.
    fn body(&self) -> Result<Option<Value>, Failure> {
        let parse = |flag: &str, text: &str| {
            serde_json::from_str::<Value>(text)
                .map_err(|e| Failure(2, format!("--{flag} is not JSON: {e}")))
        };
        if let Some(text) = &self.operation {
            return parse("operation", text).map(Some);
        }
        let Some(op_type) = &self.op_type else {
            return Ok(None);
        };
        let mut body = json!({"type": op_type});
        if let Some(description) = &self.description {
            body["description"] = json!(description);
        }
        if let Some(priority) = self.priority {
            body["priority"] = json!(priority);
        }
        if let Some(payload) = &self.payload {
            body["payload"] = parse("payload", payload)?;
        }
        Ok(Some(body))
    }
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// Create a schedule.
    Create {
        #[command(flatten)]
        target: Target,
        /// Schedule id; made up when absent.
        id: Option<String>,
        /// Cron pattern: 5 fields (minute hour day month weekday), or 6 with seconds first.
        #[arg(long)]
        cron: String,
        /// IANA time zone the pattern is read in (default UTC).
        #[arg(long)]
        time_zone: Option<String>,
        #[command(flatten)]
        operation: Operation,
        /// What a firing does while the previous operation is not done (default skip).
        #[arg(long, value_enum)]
        overlap_policy: Option<Policy>,
        /// Create it paused.
        #[arg(long)]
        paused: bool,
    },
    /// List a project's schedules.
    List {
        #[command(flatten)]
        target: Target,
        /// Stop after this many schedules (0 = all).
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Show one schedule.
    Describe {
        #[command(flatten)]
        target: Target,
        /// Schedule id, or a full name projects/P/schedules/ID.
        schedule: String,
    },
    /// Change a schedule's pattern, time zone, operation or overlap policy.
    Update {
        #[command(flatten)]
        target: Target,
        schedule: String,
        #[arg(long)]
        cron: Option<String>,
        #[arg(long)]
        time_zone: Option<String>,
        #[command(flatten)]
        operation: Operation,
        #[arg(long, value_enum)]
        overlap_policy: Option<Policy>,
    },
    /// Stop firing (fire times while paused are not caught up).
    Pause {
        #[command(flatten)]
        target: Target,
        schedule: String,
    },
    /// Fire again, from the next fire time after now.
    Resume {
        #[command(flatten)]
        target: Target,
        schedule: String,
    },
    /// Delete a schedule (the operations it started stay).
    Delete {
        #[command(flatten)]
        target: Target,
        schedule: String,
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

/// The path of a schedule given by id or full name.
fn path(target: &Target, schedule: &str) -> Result<String, Failure> {
    if schedule.starts_with("projects/") {
        return Ok(format!("/v1/{schedule}"));
    }
    Ok(format!(
        "/v1/projects/{}/schedules/{schedule}",
        target.project()?
    ))
}

async fn call(
    target: &Target,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Result<Value, Failure> {
    Ok(target.client().await?.call(method, path, body).await?)
}

/// Sends a PATCH of the fields in `body`, with their mask.
async fn patch(target: &Target, schedule: &str, body: Value) -> Result<Value, Failure> {
    let fields: Vec<&str> = body
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    if fields.is_empty() {
        return Err(Failure(
            2,
            "nothing to change: give at least one flag".into(),
        ));
    }
    let path = format!(
        "{}?updateMask={}",
        path(target, schedule)?,
        fields.join(",")
    );
    call(target, Method::PATCH, &path, Some(&body)).await
}

async fn execute(command: Command) -> Result<(), Failure> {
    match command {
        Command::Create {
            target,
            id,
            cron,
            time_zone,
            operation,
            overlap_policy,
            paused,
        } => {
            let Some(operation) = operation.body()? else {
                return Err(Failure(2, "--type or --operation is required".into()));
            };
            let mut body = json!({"cron": cron, "operation": operation, "paused": paused});
            if let Some(id) = id {
                body["scheduleId"] = json!(id);
            }
            if let Some(zone) = time_zone {
                body["timeZone"] = json!(zone);
            }
            if let Some(policy) = overlap_policy {
                body["overlapPolicy"] = json!(policy.wire());
            }
            let path = format!("/v1/projects/{}/schedules", target.project()?);
            let created = call(&target, Method::POST, &path, Some(&body)).await?;
            show(&target, &created);
        }
        Command::List { target, limit } => {
            let mut all = Vec::new();
            let mut token = String::new();
            let project = target.project()?.to_string();
            loop {
                let path =
                    format!("/v1/projects/{project}/schedules?pageSize=1000&pageToken={token}");
                let page = call(&target, Method::GET, &path, None).await?;
                all.extend(page["schedules"].as_array().cloned().unwrap_or_default());
                match page["nextPageToken"].as_str() {
                    Some(next) if limit == 0 || all.len() < limit => token = next.to_string(),
                    _ => break,
                }
            }
            if limit > 0 {
                all.truncate(limit);
            }
            if target.table() {
                print_table(&all);
            } else {
                target.print(&json!(all));
            }
        }
        Command::Describe { target, schedule } => {
            let found = call(&target, Method::GET, &path(&target, &schedule)?, None).await?;
            show(&target, &found);
        }
        Command::Update {
            target,
            schedule,
            cron,
            time_zone,
            operation,
            overlap_policy,
        } => {
            let mut body = json!({});
            if let Some(cron) = cron {
                body["cron"] = json!(cron);
            }
            if let Some(zone) = time_zone {
                body["timeZone"] = json!(zone);
            }
            if let Some(operation) = operation.body()? {
                body["operation"] = operation;
            }
            if let Some(policy) = overlap_policy {
                body["overlapPolicy"] = json!(policy.wire());
            }
            let updated = patch(&target, &schedule, body).await?;
            show(&target, &updated);
        }
        Command::Pause { target, schedule } => {
            let paused = patch(&target, &schedule, json!({"paused": true})).await?;
            show(&target, &paused);
        }
        Command::Resume { target, schedule } => {
            let resumed = patch(&target, &schedule, json!({"paused": false})).await?;
            show(&target, &resumed);
        }
        Command::Delete { target, schedule } => {
            call(&target, Method::DELETE, &path(&target, &schedule)?, None).await?;
        }
    }
    Ok(())
}

/// A schedule's id: what follows `/schedules/`.
fn id(schedule: &Value) -> &str {
    let name = schedule["name"].as_str().unwrap_or_default();
    name.split_once("/schedules/").map_or(name, |(_, id)| id)
}

fn show(target: &Target, schedule: &Value) {
    if !target.table() {
        target.print(schedule);
        return;
    }
    println!(
        "name:          {}",
        schedule["name"].as_str().unwrap_or_default()
    );
    for key in [
        "cron",
        "timeZone",
        "overlapPolicy",
        "nextFireTime",
        "lastFireTime",
        "lastOperation",
        "createTime",
        "updateTime",
    ] {
        if let Some(value) = schedule[key].as_str() {
            println!("{:<14} {value}", format!("{key}:"));
        }
    }
    println!("paused:        {}", schedule["paused"]);
    println!("operation:     {}", schedule["operation"]);
}

fn print_table(schedules: &[Value]) {
    let rows: Vec<[String; 5]> = schedules
        .iter()
        .map(|s| {
            let text = |k: &str| s[k].as_str().unwrap_or_default().to_string();
            [
                id(s).to_string(),
                text("cron"),
                text("timeZone"),
                if s["paused"] == true {
                    "paused".to_string()
                } else {
                    text("nextFireTime")
                },
                text("overlapPolicy"),
            ]
        })
        .collect();
    crate::output::print_columns(["ID", "CRON", "TIME ZONE", "NEXT FIRE", "OVERLAP"], &rows);
}
