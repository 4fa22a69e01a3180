//! What the worker calls share across both adapters: the lease request with its defaults,
//! and a completion as longrun keeps it (`completion`). The REST endpoints are
//! `rest::workers`; the gRPC ones, with the `Work` stream, `grpc::work`.

pub mod completion;

use crate::kit::error::ApiError;
use longrun_engine::LeaseRequest;
use std::time::Duration;

/// A lease request with its defaults (docs/choices.md#leases): `maxOperations` absent or 0
/// is 1, `waitTimeout` 30 s, `leaseDuration` 60 s; the engine checks the bounds. Shared by
/// REST and gRPC.
pub fn lease_request(
    worker: String,
    types: Vec<String>,
    max_operations: Option<i64>,
    wait: Option<Duration>,
    lease_duration: Option<Duration>,
    projects: Option<Vec<String>>,
) -> Result<LeaseRequest, ApiError> {
    let max_operations = match max_operations {
        None | Some(0) => 1,
        Some(n) => usize::try_from(n).map_err(|_| {
            ApiError::invalid(
                "INVALID_LEASE_REQUEST",
                "maxOperations must be between 1 and 100",
            )
        })?,
    };
    Ok(LeaseRequest {
        worker,
        types,
        max_operations,
        wait: wait.unwrap_or(Duration::from_secs(30)),
        lease_duration: lease_duration.unwrap_or(Duration::from_secs(60)),
        projects,
    })
}
