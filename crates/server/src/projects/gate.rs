//! The registration gate (docs/projects.md#registration-gate), on with
//! `[projects] require_registration`.
//!
//! What each state of a project allows:
//!
//! | state | allowed | refused (403 `PERMISSION_DENIED`) |
//! |---|---|---|
//! | registered (commercial, or noncommercial verified or registered on/after the cutoff) | everything | nothing |
//! | noncommercial, registered before the cutoff, eligibility not verified | everything but starting work | submit, the emulator's task starts: `ELIGIBILITY_NOT_VERIFIED` |
//! | not registered | cancel | everything else on the project: `PROJECT_NOT_REGISTERED` |
//!
//! Never refused, whatever the state: cancel (stopping work), the registry's own calls
//! (`…/registration`, `projectRegistrations`: managing it is what lifts the gate), and the worker calls
//! (lease, heartbeat, complete), which finish or give back work already started; a lease
//! names no project, and the gate does not filter what it hands out. Both refusals carry
//! ErrorInfo (`metadata.project`) and a `google.rpc.Help` link to `[projects] help_url`.

use super::Settings;
use crate::kit::error::ApiError;
use longrun_store::Projects;
use longrun_types::{Code, Project};

/// What a call does to a project, as the gate sees it (calls it never refuses have none).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Gate {
    /// Starts work: submit, task starts.
    Start,
    /// Anything else on the project (reads, waits, watches, deletes, assets, config,
    /// accounts).
    Other,
}

/// Refuses a call of `kind` on `project` when the registry of `store` says the project may
/// not make it (see the module docs); `Ok` when the gate is off.
pub async fn gate(
    settings: &Settings,
    store: &dyn Projects,
    kind: Gate,
    project: &Project,
) -> Result<(), ApiError> {
    if !settings.require_registration {
        return Ok(());
    }
    let registration = store
        .registration(project.as_str())
        .await
        .map_err(super::storage)?;
    let help = |e: ApiError| {
        e.with("project", project.as_str())
            .with_help("Earth Engine access and registration", &settings.help_url)
    };
    let Some(r) = registration else {
        return Err(help(ApiError::new(
            Code::PermissionDenied,
            "PROJECT_NOT_REGISTERED",
            format!(
                "project {} is not registered; only cancel is allowed",
                project.as_str()
            ),
        )));
    };
    let unverified = !r.commercial
        && !r.eligibility_verified
        && r.registered_on.as_str() < settings.eligibility_cutoff.as_str();
    if unverified && kind == Gate::Start {
        return Err(help(ApiError::new(
            Code::PermissionDenied,
            "ELIGIBILITY_NOT_VERIFIED",
            format!(
                "project {} is noncommercial, registered before {}, and its eligibility is \
                 not verified: it may read, wait for, cancel and delete its operations, but \
                 start nothing new",
                project.as_str(),
                settings.eligibility_cutoff
            ),
        )));
    }
    Ok(())
}

/// Whether `text` is a calendar date `YYYY-MM-DD` (so that dates compare as text).
pub fn valid_date(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if b.len() != 10
        || b[4] != b'-'
        || b[7] != b'-'
        || !digits(0..4)
        || !digits(5..7)
        || !digits(8..10)
    {
        return false;
    }
    let year: u32 = text[0..4].parse().unwrap_or(0);
    let month: u32 = text[5..7].parse().unwrap_or(0);
    let day: u32 = text[8..10].parse().unwrap_or(0);
    let leap = year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_are_checked() {
        for good in ["2025-04-15", "2024-02-29", "1999-12-31"] {
            assert!(super::valid_date(good), "{good}");
        }
        for bad in [
            "2025-4-15",
            "2023-02-29",
            "2025-13-01",
            "2025-04-31",
            "20250415xx",
            "",
            "2025/04/15",
        ] {
            assert!(!super::valid_date(bad), "{bad}");
        }
    }
}
