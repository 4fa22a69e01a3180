//! `longrun projects`: the project registry (docs/projects.md#registry), on a server's store
//! (`--data-dir`, `--database-url`; no server needed, running ones see changes at once) or
//! through a server (`--server URL`, the credentials (`--token`, `--key-file`) of a member
//! holding `roles/longrun.projectAdmin`; on `*` for `list`). Entries print as the API's
//! JSON.

use crate::accounts::{Store, Target};
use clap::Subcommand;
use http::Method;
use longrun_server::projects::registry::{Body, render, today};
use longrun_store::Registration;
use serde_json::{Value, json};
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum Command {
    /// Register a project.
    Register {
        project: String,
        /// commercial or noncommercial.
        #[arg(long)]
        plan: String,
        /// The day it registered, YYYY-MM-DD [default: today, UTC].
        #[arg(long)]
        registered_on: Option<String>,
        /// verified or unverified [default: unverified].
        #[arg(long)]
        eligibility: Option<String>,
        #[command(flatten)]
        store: Store,
    },
    /// List the registered projects.
    List {
        #[command(flatten)]
        store: Store,
    },
    /// Show a project's entry.
    Describe {
        project: String,
        #[command(flatten)]
        store: Store,
    },
    /// Change a registered project's plan, registration day or eligibility.
    Update {
        project: String,
        #[arg(long)]
        plan: Option<String>,
        #[arg(long)]
        registered_on: Option<String>,
        #[arg(long)]
        eligibility: Option<String>,
        #[command(flatten)]
        store: Store,
    },
    /// Remove a project from the registry (its operations stay).
    Unregister {
        project: String,
        #[command(flatten)]
        store: Store,
    },
}

pub async fn run(command: Command) -> ExitCode {
    match execute(command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(crate::operations::exit_code_of(&e))
        }
    }
}

fn checked(project: &str) -> anyhow::Result<String> {
    Ok(longrun_types::Project::parse(project)
        .map_err(|e| anyhow::anyhow!(e))?
        .as_str()
        .to_string())
}

fn print(value: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}

fn path(project: &str) -> String {
    format!("/v1/projects/{project}/registration")
}

async fn execute(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Register {
            project,
            plan,
            registered_on,
            eligibility,
            store,
        } => {
            let project = checked(&project)?;
            let body = Body {
                plan: Some(plan),
                registered_on,
                eligibility,
            };
            match store.open().await? {
                Target::Store(s) => {
                    let r = body
                        .apply(Registration {
                            project: project.clone(),
                            commercial: true,
                            registered_on: today(),
                            eligibility_verified: false,
                        })
                        .map_err(|e| anyhow::anyhow!(e.message))?;
                    anyhow::ensure!(
                        s.register_project(r.clone()).await?,
                        "project {project} is already registered"
                    );
                    print(&render(&r))
                }
                Target::Server(c) => {
                    let body = wire(&body);
                    print(&c.call(Method::POST, &path(&project), Some(&body)).await?)
                }
            }
        }
        Command::List { store } => match store.open().await? {
            Target::Store(s) => {
                for r in s.registrations().await? {
                    print(&render(&r))?;
                }
                Ok(())
            }
            Target::Server(c) => {
                let answer = c
                    .call(Method::GET, "/v1/projectRegistrations", None)
                    .await?;
                for r in answer["registrations"].as_array().into_iter().flatten() {
                    print(r)?;
                }
                Ok(())
            }
        },
        Command::Describe { project, store } => {
            let project = checked(&project)?;
            match store.open().await? {
                Target::Store(s) => {
                    let r = s.registration(&project).await?;
                    let r =
                        r.ok_or_else(|| anyhow::anyhow!("project {project} is not registered"))?;
                    print(&render(&r))
                }
                Target::Server(c) => print(&c.call(Method::GET, &path(&project), None).await?),
            }
        }
        Command::Update {
            project,
            plan,
            registered_on,
            eligibility,
            store,
        } => {
            let project = checked(&project)?;
            let body = Body {
                plan,
                registered_on,
                eligibility,
            };
            match store.open().await? {
                Target::Store(s) => {
                    let stored = s.registration(&project).await?;
                    let stored = stored
                        .ok_or_else(|| anyhow::anyhow!("project {project} is not registered"))?;
                    let r = body.apply(stored).map_err(|e| anyhow::anyhow!(e.message))?;
                    anyhow::ensure!(
                        s.update_project(r.clone()).await?,
                        "project {project} is not registered"
                    );
                    print(&render(&r))
                }
                Target::Server(c) => {
                    let body = wire(&body);
                    print(&c.call(Method::PATCH, &path(&project), Some(&body)).await?)
                }
            }
        }
        Command::Unregister { project, store } => {
            let project = checked(&project)?;
            match store.open().await? {
                Target::Store(s) => anyhow::ensure!(
                    s.unregister_project(&project).await?,
                    "project {project} is not registered"
                ),
                Target::Server(c) => {
                    c.call(Method::DELETE, &path(&project), None).await?;
                }
            }
            println!("unregistered {project}");
            Ok(())
        }
    }
}

/// The request body of a register or update, with only the fields given.
fn wire(body: &Body) -> Value {
    let mut v = json!({});
    for (key, value) in [
        ("plan", &body.plan),
        ("registeredOn", &body.registered_on),
        ("eligibility", &body.eligibility),
    ] {
        if let Some(value) = value {
            v[key] = json!(value);
        }
    }
    v
}
