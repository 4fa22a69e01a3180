//! The operation lifecycle as a closed enum and one pure transition function. Every state
//! change in longrun goes through [`State::apply`]; storage then writes the result with a
//! compare-and-set, so racing events resolve to exactly one outcome.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Pending,
    Running,
    Cancelling,
    Succeeded,
    Failed,
    Cancelled,
}

/// Something that happens to an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// A client asked to cancel.
    Cancel,
    /// A worker took the operation under a lease.
    Lease,
    /// The worker reported success.
    Succeed,
    /// The worker reported a final failure (or attempts ran out).
    Fail,
    /// The worker stopped because of a cancellation (error code 1).
    AcknowledgeCancel,
    /// The lease ended without a result and attempts remain: back to the queue.
    Release,
    /// The operation's timeout passed.
    Timeout,
    /// A cancelling operation's worker did not stop within the cancel grace.
    GraceExpired,
    /// Every descendant of a cancelled parent is done: the parent, held CANCELLING until
    /// then, ends CANCELLED.
    ChildrenDone,
}

/// What an event does to a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The operation moves to this state.
    Move(State),
    /// Accepted, nothing changes (idempotent repeat).
    Stay,
    /// The event does not apply to this state; nothing changes.
    Reject,
}

impl State {
    pub const ALL: [State; 6] = [
        State::Pending,
        State::Running,
        State::Cancelling,
        State::Succeeded,
        State::Failed,
        State::Cancelled,
    ];

    /// True exactly in the three terminal states.
    pub fn is_done(self) -> bool {
        matches!(self, State::Succeeded | State::Failed | State::Cancelled)
    }

    /// True while a worker holds (or may hold) a lease.
    pub fn is_leased(self) -> bool {
        matches!(self, State::Running | State::Cancelling)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "PENDING",
            State::Running => "RUNNING",
            State::Cancelling => "CANCELLING",
            State::Succeeded => "SUCCEEDED",
            State::Failed => "FAILED",
            State::Cancelled => "CANCELLED",
        }
    }

    /// The transition function (docs/operations.md, "Lifecycle" and "Cancel").
    pub fn apply(self, event: Event) -> Transition {
        use Event as E;
        use State as S;
        use Transition::{Move, Reject, Stay};
        match (self, event) {
            // Cancel is idempotent on CANCELLING and on every done state.
            (S::Pending, E::Cancel) => Move(S::Cancelled),
            (S::Running, E::Cancel) => Move(S::Cancelling),
            (S::Cancelling | S::Succeeded | S::Failed | S::Cancelled, E::Cancel) => Stay,

            (S::Pending, E::Lease) => Move(S::Running),
            (_, E::Lease) => Reject,

            // A completion reported before the cancel is acknowledged stands.
            (S::Running | S::Cancelling, E::Succeed) => Move(S::Succeeded),
            (S::Running | S::Cancelling, E::Fail) => Move(S::Failed),
            (S::Running | S::Cancelling, E::AcknowledgeCancel) => Move(S::Cancelled),
            (_, E::Succeed | E::Fail | E::AcknowledgeCancel) => Reject,

            (S::Running, E::Release) => Move(S::Pending),
            // A lease that lapses while cancelling ends the operation: the cancel came first.
            (S::Cancelling, E::Release) => Move(S::Cancelled),
            (_, E::Release) => Reject,

            (S::Pending | S::Running, E::Timeout) => Move(S::Failed),
            (S::Cancelling, E::Timeout) => Move(S::Cancelled),
            (_, E::Timeout) => Reject,

            (S::Cancelling, E::GraceExpired) => Move(S::Cancelled),
            (_, E::GraceExpired) => Reject,

            (S::Cancelling, E::ChildrenDone) => Move(S::Cancelled),
            (_, E::ChildrenDone) => Reject,
        }
    }
}

impl Event {
    pub const ALL: [Event; 9] = [
        Event::Cancel,
        Event::Lease,
        Event::Succeed,
        Event::Fail,
        Event::AcknowledgeCancel,
        Event::Release,
        Event::Timeout,
        Event::GraceExpired,
        Event::ChildrenDone,
    ];
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for State {
    type Err = String;
    fn from_str(s: &str) -> Result<State, String> {
        State::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not an operation state"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Event as E;
    use State as S;
    use Transition::{Move, Reject, Stay};

    /// The whole table, written out by hand from docs/operations.md#lifecycle: every state ×
    /// every event.
    const TABLE: [(State, [Transition; 9]); 6] = [
        // Cancel, Lease, Succeed, Fail, AckCancel, Release, Timeout, GraceExpired,
        // ChildrenDone
        (
            S::Pending,
            [
                Move(S::Cancelled),
                Move(S::Running),
                Reject,
                Reject,
                Reject,
                Reject,
                Move(S::Failed),
                Reject,
                Reject,
            ],
        ),
        (
            S::Running,
            [
                Move(S::Cancelling),
                Reject,
                Move(S::Succeeded),
                Move(S::Failed),
                Move(S::Cancelled),
                Move(S::Pending),
                Move(S::Failed),
                Reject,
                Reject,
            ],
        ),
        (
            S::Cancelling,
            [
                Stay,
                Reject,
                Move(S::Succeeded),
                Move(S::Failed),
                Move(S::Cancelled),
                Move(S::Cancelled),
                Move(S::Cancelled),
                Move(S::Cancelled),
                Move(S::Cancelled),
            ],
        ),
        (
            S::Succeeded,
            [
                Stay, Reject, Reject, Reject, Reject, Reject, Reject, Reject, Reject,
            ],
        ),
        (
            S::Failed,
            [
                Stay, Reject, Reject, Reject, Reject, Reject, Reject, Reject, Reject,
            ],
        ),
        (
            S::Cancelled,
            [
                Stay, Reject, Reject, Reject, Reject, Reject, Reject, Reject, Reject,
            ],
        ),
    ];

    #[test]
    fn every_state_and_event_matches_the_table() {
        for (state, row) in TABLE {
            for (event, expected) in E::ALL.into_iter().zip(row) {
                assert_eq!(state.apply(event), expected, "{state:?} + {event:?}");
            }
        }
        assert_eq!(TABLE.len(), S::ALL.len());
    }

    #[test]
    fn terminal_states_are_final() {
        for state in S::ALL.into_iter().filter(|s| s.is_done()) {
            for event in E::ALL {
                assert!(
                    !matches!(state.apply(event), Move(_)),
                    "{state:?} moved on {event:?}"
                );
            }
        }
    }

    #[test]
    fn every_path_reaches_done_and_only_cancel_is_idempotent() {
        // From every non-terminal state some event sequence reaches a terminal state, and
        // the only accepted no-op is a repeated cancel.
        for state in S::ALL {
            for event in E::ALL {
                if state.apply(event) == Stay {
                    assert_eq!(event, E::Cancel);
                }
            }
            if !state.is_done() {
                assert!(matches!(state.apply(E::Timeout), Move(s) if s.is_done()));
            }
        }
        assert_eq!(S::Pending.apply(E::Cancel), Move(S::Cancelled));
    }

    #[test]
    fn names_round_trip() {
        for state in S::ALL {
            assert_eq!(state.as_str().parse::<State>().unwrap(), state);
        }
        assert!("pending".parse::<State>().is_err());
    }
}
