//! The Earth Engine emulator (docs/earth-engine.md): what the official `ee` client and the
//! `earthengine` CLI call besides the operations methods. longrun computes nothing; it
//! serves the full algorithm list so that client code builds, starts tasks from exports and
//! ingestions (run on the simulate executor, with configured faults), keeps an asset
//! registry, and answers every other method at once with `NOT_EMULATED`.
//!
//! - `algorithms`: where the algorithm list comes from;
//! - `methods`: the discovery entries of the emulator's methods, and the not-emulated ones;
//! - `exports`: task-starting requests as submissions, and the destinations they name;
//! - `faults`: `[[fault]]` (task fates) and `[[api_fault]]` (request failures and latency);
//! - `tasks`: the simulate executor's Earth Engine run (faults, destinations, assets).

pub mod algorithms;
pub mod assets;
pub mod exports;
pub mod faults;
pub mod methods;
pub mod tasks;

use crate::auth::Auth;
use crate::auth::Caller;
use crate::auth::iam::{Iam, Permission};
use crate::kit::error::ApiError;
use crate::kit::json::{json_body, json_bytes};
use crate::kit::render::Version;
use crate::projects::Gate;
use axum::response::Response;
use http::Method;
use longrun_engine::Engine;
use longrun_store::Assets;
use longrun_types::Project;
use std::sync::Arc;

/// What the emulator serves, made once at start.
pub struct Emulator {
    pub algorithms: algorithms::Algorithms,
    pub faults: faults::Faults,
    /// Task starts submit to it; simulated tasks run on it.
    pub engine: Engine,
    /// The asset registry.
    pub store: Arc<dyn Assets>,
    /// Asset calls check permissions on the projects they reach and show their bindings.
    pub auth: Auth,
}

/// An emulator method a request resolved to.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    /// `GET projects/P/algorithms`.
    Algorithms,
    /// A task-starting method: the operation type it creates.
    Start(&'static str),
    /// An asset registry method.
    Asset(assets::Call),
    /// A method longrun does not emulate: its id without `earthengine.projects.`.
    NotEmulated(String),
}

impl Call {
    /// The method's discovery id without `earthengine.projects.` (`image.export`), which
    /// `[[api_fault]] method` globs match.
    pub fn method_id(&self) -> String {
        match self {
            Call::Algorithms => "algorithms.list".into(),
            Call::Start(op_type) => exports::method_id(op_type).into(),
            Call::Asset(call) => call.method_id().into(),
            Call::NotEmulated(id) => id.clone(),
        }
    }

    /// The query parameters the call takes besides the system ones: (camelCase, snake_case).
    pub fn parameters(&self) -> &'static [(&'static str, &'static str)] {
        match self {
            Call::Asset(call) => call.parameters(),
            Call::Algorithms | Call::Start(_) | Call::NotEmulated(_) => &[],
        }
    }

    /// What the registration gate holds the call to: a task start starts work.
    pub fn gate(&self) -> Gate {
        match self {
            Call::Start(_) => Gate::Start,
            Call::Algorithms | Call::Asset(_) | Call::NotEmulated(_) => Gate::Other,
        }
    }

    /// The permission the call needs on its project; `None`: any authenticated caller.
    pub fn permission(&self) -> Option<Permission> {
        match self {
            Call::Start(_) => Some(Permission::OperationsCreate),
            Call::Asset(call) => Some(call.permission()),
            Call::Algorithms | Call::NotEmulated(_) => None,
        }
    }
}

/// Routes `path` (after `projects/P/`, or `:verb` right after `projects/P`) when it is an
/// emulator method; `None` leaves it to the operations router.
pub fn route(http: &Method, path: &str) -> Option<Result<Call, ApiError>> {
    if let Some(op_type) = exports::start_type(path) {
        return Some(match http {
            &Method::POST => Ok(Call::Start(op_type)),
            _ => Err(ApiError::method_not_allowed(http, "POST")),
        });
    }
    if path == "algorithms" {
        return Some(match http {
            &Method::GET => Ok(Call::Algorithms),
            _ => Err(ApiError::method_not_allowed(http, "GET")),
        });
    }
    if let Some(call) = assets::route(http, path) {
        return Some(call.map(Call::Asset));
    }
    methods::find(http, path).map(|found| found.map(Call::NotEmulated))
}

impl Emulator {
    /// Loads the algorithm list (`algorithms_file`, else found as `algorithms` says) and
    /// says in the log what is served; the fault rules are `[[fault]]` (`task_faults`) and
    /// `[[api_fault]]` (`api_faults`), every draw seeded with `[faults] seed`.
    pub fn new(
        algorithms_file: Option<&std::path::Path>,
        task_faults: Vec<faults::TaskFault>,
        api_faults: Vec<faults::ApiFault>,
        seed: u64,
        (engine, store, auth): (Engine, Arc<dyn Assets>, Auth),
    ) -> anyhow::Result<Emulator> {
        let algorithms = algorithms::Algorithms::load(algorithms_file)?;
        algorithms.log();
        let faults = faults::Faults::new(task_faults, api_faults, seed)?;
        Ok(Emulator {
            algorithms,
            faults,
            engine,
            store,
            auth,
        })
    }

    /// Serves an emulator call whose permission has been checked.
    pub async fn handle(
        &self,
        caller: &Caller,
        version: Version,
        project: Project,
        call: Call,
        query: &crate::kit::body::Query,
        bytes: &[u8],
    ) -> Result<Response, ApiError> {
        match call {
            Call::Asset(call) => {
                let check =
                    |permission, project: &str| self.auth.check(caller, permission, project);
                let bindings = |project: &str| iam_policy(self.auth.iam(), project);
                assets::handle(&*self.store, project, call, query, bytes, check, bindings).await
            }
            Call::Algorithms => Ok(json_bytes(self.algorithms.bytes.clone())),
            Call::Start(op_type) => {
                let op = self
                    .engine
                    .submit(&project, exports::submission(op_type, bytes)?)
                    .await?;
                Ok(json_body(&crate::kit::render::operation(&op, version)))
            }
            Call::NotEmulated(id) => Err(methods::not_emulated(&id)),
        }
    }
}

/// An asset's IAM policy as Earth Engine shows it: the project's bindings (longrun has no
/// per-asset access), `roles/earthengine.admin` as `roles/owner`, `writer` as
/// `roles/editor`, `viewer` as `roles/viewer`.
fn iam_policy(iam: &Iam, project: &str) -> serde_json::Value {
    let mut bindings: Vec<(String, Vec<String>)> = Vec::new();
    for b in iam
        .bindings
        .iter()
        .filter(|b| b.project == "*" || b.project == project)
    {
        let role = match b.role.as_str() {
            "roles/earthengine.admin" => "roles/owner",
            "roles/earthengine.writer" => "roles/editor",
            "roles/earthengine.viewer" => "roles/viewer",
            _ => continue,
        };
        match bindings.iter_mut().find(|(r, _)| r == role) {
            Some((_, members)) => members.extend(b.members.iter().cloned()),
            None => bindings.push((role.to_string(), b.members.clone())),
        }
    }
    serde_json::json!({
        "version": 1,
        "etag": "AA==",
        "bindings": bindings.into_iter().map(|(role, members)| serde_json::json!({"role": role, "members": members})).collect::<Vec<_>>(),
    })
}
