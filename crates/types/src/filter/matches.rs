//! The reference semantics of a filter on one operation ([`Expr::matches`]), which every
//! storage backend's translation is tested against, and the rewrites that hand storage the
//! part it can answer ([`Expr::without_waiting_reason`]).

use super::{Expr, Field, Op, Pattern, Value};
use crate::{Operation, State, Timestamp};

/// A field's value on one operation; `None` where the field is absent.
enum Actual<'a> {
    Bool(bool),
    Text(&'a str),
    State(State),
    Int(Option<i64>),
    Time(Option<Timestamp>),
}

fn actual<'a>(field: Field, op: &'a Operation, reason: &'a str) -> Actual<'a> {
    match field {
        Field::Done => Actual::Bool(op.done()),
        Field::Name => Actual::Text(op.name.as_str()),
        Field::State => Actual::State(op.state),
        Field::Type => Actual::Text(&op.op_type),
        Field::Description => Actual::Text(&op.description),
        Field::Priority => Actual::Int(Some(op.priority.into())),
        Field::Attempt => Actual::Int(Some(op.attempt.into())),
        Field::ErrorCode => Actual::Int(op.error_code().map(i64::from)),
        Field::CreateTime => Actual::Time(Some(op.create_time)),
        Field::UpdateTime => Actual::Time(Some(op.update_time)),
        Field::StartTime => Actual::Time(op.start_time),
        Field::EndTime => Actual::Time(op.end_time),
        Field::ConcurrencyKey => Actual::Text(op.concurrency_key.as_deref().unwrap_or("")),
        Field::RetryOf => Actual::Text(op.retry_of.as_ref().map_or("", |n| n.as_str())),
        Field::Parent => Actual::Text(op.parent.as_ref().map_or("", |n| n.as_str())),
        Field::ScheduleTime => Actual::Time(op.schedule_time),
        Field::StartTimeout => Actual::Int(op.start_timeout_ms),
        Field::WaitingReason => Actual::Text(reason),
        Field::Schedule => Actual::Text(op.schedule.as_deref().unwrap_or("")),
    }
}

fn compare<T: Ord>(a: T, op: Op, b: T) -> bool {
    match op {
        Op::Eq | Op::Has => a == b,
        Op::Ne => a != b,
        Op::Lt => a < b,
        Op::Le => a <= b,
        Op::Gt => a > b,
        Op::Ge => a >= b,
    }
}

impl Pattern {
    pub fn matches(&self, value: &str) -> bool {
        match (self.any_prefix, self.any_suffix) {
            (false, false) => value == self.text,
            (true, false) => value.ends_with(&self.text),
            (false, true) => value.starts_with(&self.text),
            (true, true) => value.contains(&self.text),
        }
    }
}

impl Expr {
    /// The reference semantics of the filter on one operation, as storage sees it: the
    /// waiting reason, which storage does not know, is `""` (see
    /// [`Expr::matches_waiting`]).
    pub fn matches(&self, op: &Operation) -> bool {
        self.matches_waiting(op, "")
    }

    /// The semantics of the filter on one operation whose waiting reason is `reason` (`""`
    /// when it does not wait).
    pub fn matches_waiting(&self, op: &Operation, reason: &str) -> bool {
        match self {
            Expr::And(items) => items.iter().all(|e| e.matches_waiting(op, reason)),
            Expr::Or(items) => items.iter().any(|e| e.matches_waiting(op, reason)),
            Expr::Not(inner) => !inner.matches_waiting(op, reason),
            Expr::Compare {
                field,
                op: cmp,
                value,
            } => match (actual(*field, op, reason), value) {
                (Actual::Text(v), Value::Present) => !v.is_empty(),
                (Actual::Int(v), Value::Present) => v.is_some(),
                (Actual::Time(v), Value::Present) => v.is_some(),
                (_, Value::Present) => true,
                (Actual::Text(a), Value::Words(w)) => w.matches(a),
                (Actual::Bool(a), Value::Bool(b)) => compare(a, *cmp, *b),
                (Actual::State(a), Value::State(b)) => compare(a.as_str(), *cmp, b.as_str()),
                (Actual::Int(Some(a)), Value::Int(b)) => compare(a, *cmp, *b),
                (Actual::Time(Some(a)), Value::Time(b)) => compare(a, *cmp, *b),
                (Actual::Text(a), Value::Text(p)) if p.any_prefix || p.any_suffix => {
                    p.matches(a) == (*cmp != Op::Ne)
                }
                (Actual::Text(a), Value::Text(p)) => compare(a, *cmp, p.text.as_str()),
                _ => false,
            },
        }
    }
}

impl Expr {
    /// Whether any comparison is on `field`.
    pub fn mentions(&self, field: Field) -> bool {
        match self {
            Expr::And(items) | Expr::Or(items) => items.iter().any(|e| e.mentions(field)),
            Expr::Not(inner) => inner.mentions(field),
            Expr::Compare { field: f, .. } => *f == field,
        }
    }

    /// A filter storage can answer that keeps every operation this one keeps, when this
    /// one compares the waiting reason (which storage does not know): the top-level
    /// conditions that do not mention it, and `metadata.state = PENDING` when one of them
    /// asks for a reason (`=` or `:` a reason, or `:*`), which only PENDING operations
    /// have. `None`: storage must return every operation (the engine applies the rest).
    pub fn without_waiting_reason(&self) -> Option<Expr> {
        let items = match self {
            Expr::And(items) => items.as_slice(),
            other => std::slice::from_ref(other),
        };
        let mut kept: Vec<Expr> = items
            .iter()
            .filter(|e| !e.mentions(Field::WaitingReason))
            .cloned()
            .collect();
        let asks_for_a_reason = items.iter().any(|e| {
            matches!(
                e,
                Expr::Compare {
                    field: Field::WaitingReason,
                    op: Op::Eq | Op::Has,
                    ..
                }
            )
        });
        if asks_for_a_reason {
            kept.push(Expr::Compare {
                field: Field::State,
                op: Op::Eq,
                value: Value::State(State::Pending),
            });
        }
        match kept.len() {
            0 => None,
            1 => kept.pop(),
            _ => Some(Expr::And(kept)),
        }
    }
}
