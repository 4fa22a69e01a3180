//! The Earth Engine emulator (contract section 11): what the official `ee` client and the
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
pub mod exports;
pub mod faults;
pub mod methods;

use crate::auth::iam::Permission;
use crate::error::ApiError;
use crate::rest::render::Version;
use crate::rest::{App, json_body, json_bytes};
use axum::response::Response;
use http::Method;
use longrun_types::Project;

/// What the emulator serves, made once at start.
pub struct Emulator {
    pub algorithms: algorithms::Algorithms,
    pub faults: faults::Faults,
}

/// An emulator method a request resolved to.
#[derive(Debug, PartialEq)]
pub enum Call {
    /// `GET projects/P/algorithms`.
    Algorithms,
    /// A task-starting method: the operation type it creates.
    Start(&'static str),
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
            Call::NotEmulated(id) => id.clone(),
        }
    }

    /// The query parameters the call takes besides the system ones: (camelCase, snake_case).
    pub fn parameters(&self) -> &'static [(&'static str, &'static str)] {
        match self {
            Call::Algorithms | Call::Start(_) | Call::NotEmulated(_) => &[],
        }
    }

    /// The permission the call needs on its project; `None`: any authenticated caller.
    pub fn permission(&self) -> Option<Permission> {
        match self {
            Call::Start(_) => Some(Permission::OperationsCreate),
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
    methods::find(http, path).map(|found| found.map(Call::NotEmulated))
}

impl Emulator {
    /// Loads the algorithm list (see `algorithms`) and says in the log what is served.
    pub fn new(config: &crate::Config) -> anyhow::Result<Emulator> {
        let algorithms =
            algorithms::Algorithms::load(config.earthengine.algorithms_file.as_deref())?;
        algorithms.log();
        let faults = faults::Faults::new(
            config.task_faults.clone(),
            config.api_faults.clone(),
            config.faults.seed,
        )?;
        Ok(Emulator { algorithms, faults })
    }

    /// An emulator with the built-in list, for tests of other parts.
    #[cfg(test)]
    pub fn minimal() -> Emulator {
        Emulator {
            algorithms: algorithms::Algorithms::built_in(),
            faults: faults::Faults::default(),
        }
    }
}

/// Serves an emulator call whose permission has been checked.
pub async fn handle(
    app: &App,
    version: Version,
    project: Project,
    call: Call,
    bytes: &[u8],
) -> Result<Response, ApiError> {
    match call {
        Call::Algorithms => Ok(json_bytes(app.emulator.algorithms.bytes.clone())),
        Call::Start(op_type) => {
            let op = app
                .engine
                .submit(&project, exports::submission(op_type, bytes)?)
                .await?;
            Ok(json_body(&crate::rest::render::operation(&op, version)))
        }
        Call::NotEmulated(id) => Err(methods::not_emulated(&id)),
    }
}
