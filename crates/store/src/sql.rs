//! Translation of a list filter into an SQL condition, shared by the SQL backends: `?`
//! marks each parameter (backends renumber them as they need) and the column names are
//! those of the operations table every backend keeps.

use longrun_types::filter::{Expr, Field, Op, Pattern, Value};

/// A bound parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Sql {
    Integer(i64),
    Text(String),
}

const DONE: &str = "state IN ('SUCCEEDED', 'FAILED', 'CANCELLED')";

fn column(field: Field) -> (&'static str, bool) {
    // (column, nullable)
    match field {
        Field::Done => (DONE, false),
        Field::Name => ("name", false),
        Field::State => ("state", false),
        Field::Type => ("op_type", false),
        Field::Description => ("description", false),
        Field::Priority => ("priority", false),
        Field::Attempt => ("attempt", false),
        Field::CreateTime => ("create_time", false),
        Field::UpdateTime => ("update_time", false),
        Field::StartTime => ("start_time", true),
        Field::EndTime => ("end_time", true),
        Field::ErrorCode => ("error_code", true),
        // An operation without a key has "" (the reference semantics).
        Field::ConcurrencyKey => ("coalesce(concurrency_key, '')", false),
        // An operation that retries none has "".
        Field::RetryOf => ("coalesce(retry_of, '')", false),
        // Stored as "" for an operation without a parent, so `=` uses the index on it.
        Field::Parent => ("parent", false),
        Field::ScheduleTime => ("schedule_time", true),
        Field::StartTimeout => ("start_timeout", true),
        // Not stored: storage sees every operation without one (`Expr::matches`); the
        // engine takes such terms out of what it asks (`Expr::without_waiting_reason`).
        Field::WaitingReason => ("''", false),
        Field::Schedule => ("coalesce(schedule, '')", false),
    }
}

fn operator(op: Op) -> &'static str {
    match op {
        Op::Eq | Op::Has => "=",
        Op::Ne => "!=",
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Gt => ">",
        Op::Ge => ">=",
    }
}

/// A LIKE pattern (escape character `\`) for a wildcard text pattern.
fn like(pattern: &Pattern) -> String {
    let mut out = String::with_capacity(pattern.text.len() + 2);
    if pattern.any_prefix {
        out.push('%');
    }
    for c in pattern.text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    if pattern.any_suffix {
        out.push('%');
    }
    out
}

/// Appends the condition for `expr` to `sql`, its parameters to `params`. The condition is
/// never NULL, so that NOT means what the reference semantics say.
pub fn condition(expr: &Expr, sql: &mut String, params: &mut Vec<Sql>) {
    let join = |items: &[Expr], word: &str, sql: &mut String, params: &mut Vec<Sql>| {
        sql.push('(');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                sql.push_str(word);
            }
            condition(item, sql, params);
        }
        sql.push(')');
    };
    match expr {
        Expr::And(items) => join(items, " AND ", sql, params),
        Expr::Or(items) => join(items, " OR ", sql, params),
        Expr::Not(inner) => {
            sql.push_str("(NOT ");
            condition(inner, sql, params);
            sql.push(')');
        }
        Expr::Compare { field, op, value } => {
            let (col, nullable) = column(*field);
            match value {
                Value::Present => {
                    let present = match field {
                        Field::Name
                        | Field::Type
                        | Field::Description
                        | Field::ConcurrencyKey
                        | Field::RetryOf
                        | Field::Parent
                        | Field::WaitingReason
                        | Field::Schedule => format!("({col} != '')"),
                        _ if nullable => format!("({col} IS NOT NULL)"),
                        _ => "(1)".to_string(),
                    };
                    sql.push_str(&present);
                }
                Value::Bool(b) => {
                    let want = (*op == Op::Ne) != *b;
                    sql.push_str(if want { "(" } else { "(NOT " });
                    sql.push_str(col);
                    sql.push(')');
                }
                Value::Text(p) if p.any_prefix || p.any_suffix => {
                    let not = if *op == Op::Ne { "NOT " } else { "" };
                    sql.push_str(&format!("({col} {not}LIKE ? ESCAPE '\\')"));
                    params.push(Sql::Text(like(p)));
                }
                other => {
                    let param = match other {
                        Value::Int(i) => Sql::Integer(*i),
                        Value::Time(t) => Sql::Integer(t.millis()),
                        Value::Text(p) => Sql::Text(p.text.clone()),
                        Value::State(s) => Sql::Text(s.as_str().to_string()),
                        _ => unreachable!("handled above"),
                    };
                    let cmp = operator(*op);
                    if nullable {
                        sql.push_str(&format!("({col} IS NOT NULL AND {col} {cmp} ?)"));
                    } else {
                        sql.push_str(&format!("({col} {cmp} ?)"));
                    }
                    params.push(param);
                }
            }
        }
    }
}
