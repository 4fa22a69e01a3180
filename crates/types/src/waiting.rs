//! Why a PENDING operation waits (`metadata.waitingReason`, docs/operations.md#why-work-waits):
//! a closed set of reasons, computed by the engine where the lease rules are decided and
//! never stored.

use std::fmt;
use std::str::FromStr;

/// What holds a PENDING operation back. The engine gives the first that applies, in the
/// order of [`Reason::ALL`] (docs/choices.md#why-work-waits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Its `scheduleTime` has not come.
    Scheduled,
    /// Its queue is paused.
    Paused,
    /// Its parent is not RUNNING.
    Parent,
    /// No lease request named its type in the last minute.
    NoWorker,
    /// Its project is at its running limit.
    ProjectRunningLimit,
    /// It is an export and its project is at its export cap.
    ExportLimit,
    /// Its `concurrencyKey` is at its type's `key_concurrency`.
    KeyLimit,
    /// None of these: other work is ahead of it.
    Queued,
}

impl Reason {
    pub const ALL: [Reason; 8] = [
        Reason::Scheduled,
        Reason::Paused,
        Reason::Parent,
        Reason::NoWorker,
        Reason::ProjectRunningLimit,
        Reason::ExportLimit,
        Reason::KeyLimit,
        Reason::Queued,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Scheduled => "SCHEDULED",
            Reason::Paused => "PAUSED",
            Reason::Parent => "PARENT",
            Reason::NoWorker => "NO_WORKER",
            Reason::ProjectRunningLimit => "PROJECT_RUNNING_LIMIT",
            Reason::ExportLimit => "EXPORT_LIMIT",
            Reason::KeyLimit => "KEY_LIMIT",
            Reason::Queued => "QUEUED",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Reason {
    type Err = String;

    fn from_str(s: &str) -> Result<Reason, String> {
        Reason::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "`{s}` is not a waiting reason; reasons are {}",
                    Reason::ALL.map(Reason::as_str).join(", ")
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::Reason;

    #[test]
    fn reasons_round_trip_through_their_names() {
        for reason in Reason::ALL {
            assert_eq!(reason.as_str().parse::<Reason>(), Ok(reason));
        }
        assert!("WAITING".parse::<Reason>().is_err());
    }
}
