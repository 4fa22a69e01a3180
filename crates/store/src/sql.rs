//! Translation of a list filter into SQL, shared by the SQL backends: `?` marks each
//! parameter (backends renumber them as they need) and the column names are those of the
//! operations table every backend keeps.
//!
//! A list page is planned here too ([`page`]): the filter picks the index the page walks
//! (its *driver*), the walk examines at most the scan budget's rows in list order, and the
//! whole filter is applied to what the walk examined.

use crate::Cursor;
use longrun_types::filter::{Expr, Field, Op, Pattern, Value, Words};
use longrun_types::state::State;

/// The SQL spoken by a backend, where the two differ: words in descriptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Words through the FTS5 table `operations_words` (rowid = the operation's rowid).
    Sqlite,
    /// Words through the `tsvector` of `longrun_words(description)`.
    Postgres,
}

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

/// The full-text query of `words` in `dialect`: FTS5 phrases (`"night"*` for a prefix), or
/// a `tsquery` (`'night':*`). Words hold only letters and digits, quoted all the same.
fn text_query(words: &Words, dialect: Dialect) -> String {
    let last = words.words.len() - 1;
    let terms = words.words.iter().enumerate().map(|(i, w)| {
        let prefix = words.prefix && i == last;
        match dialect {
            Dialect::Sqlite => format!(
                "\"{}\"{}",
                w.replace('"', "\"\""),
                if prefix { "*" } else { "" }
            ),
            Dialect::Postgres => format!(
                "'{}'{}",
                w.replace('\'', "''"),
                if prefix { ":*" } else { "" }
            ),
        }
    });
    let join = if dialect == Dialect::Sqlite {
        " "
    } else {
        " & "
    };
    terms.collect::<Vec<_>>().join(join)
}

/// The condition that the description holds `words`, on a row of the operations table
/// (`row` names its rowid column for SQLite). Exact for the store's tokenizer: SQLite's
/// `unicode61` (letters, digits and private-use characters, case-folded), PostgreSQL's
/// runs of `[[:alnum:]]`, lowercased.
fn words_condition(words: &Words, dialect: Dialect, row: &str, params: &mut Vec<Sql>) -> String {
    params.push(Sql::Text(text_query(words, dialect)));
    match dialect {
        Dialect::Sqlite => format!(
            "(EXISTS (SELECT 1 FROM operations_words WHERE operations_words MATCH ? \
             AND operations_words.rowid = {row}))"
        ),
        Dialect::Postgres => "(longrun_words(description) @@ to_tsquery('simple', ?))".into(),
    }
}

/// Appends the condition for `expr` to `sql`, its parameters to `params`, for a row whose
/// rowid (SQLite) is the column `row_id`. The condition is never NULL, so that NOT means
/// what the reference semantics say.
pub fn condition(expr: &Expr, dialect: Dialect, sql: &mut String, params: &mut Vec<Sql>) {
    let join = |items: &[Expr], word: &str, sql: &mut String, params: &mut Vec<Sql>| {
        sql.push('(');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                sql.push_str(word);
            }
            condition(item, dialect, sql, params);
        }
        sql.push(')');
    };
    match expr {
        Expr::And(items) => join(items, " AND ", sql, params),
        Expr::Or(items) => join(items, " OR ", sql, params),
        Expr::Not(inner) => {
            sql.push_str("(NOT ");
            condition(inner, dialect, sql, params);
            sql.push(')');
        }
        Expr::Compare { field, op, value } => {
            let (col, nullable) = column(*field);
            match value {
                Value::Words(words) => {
                    sql.push_str(&words_condition(words, dialect, "row_id", params));
                }
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

/// One statement and its parameters.
#[derive(Debug, Clone)]
pub struct Statement {
    pub sql: String,
    pub params: Vec<Sql>,
}

/// What narrows a page's walk to the rows of one index: a condition every row the filter
/// keeps meets.
#[derive(Debug, Clone)]
pub struct Driver {
    condition: String,
    params: Vec<Sql>,
    /// The index yields its rows in list order, so the walk stops at the page's end or the
    /// budget; otherwise the store collects and sorts every row it yields.
    ordered: bool,
    /// The index SQLite is told to walk (`INDEXED BY`): without statistics its planner
    /// would rather walk the list index, whose order saves a sort, whatever the filter.
    /// `None`: rows are looked up by rowid (`NOT INDEXED`).
    index: Option<&'static str>,
}

/// The index of list order, walked when no term of the filter has an index of its own.
const LIST_INDEX: &str = "operations_list";

/// The stored column a field's condition reads (`None`: the waiting reason, not stored).
fn stored(field: Field) -> Option<&'static str> {
    Some(match field {
        Field::Done | Field::State => "state",
        Field::Name => "name",
        Field::Type => "op_type",
        Field::Description => "description",
        Field::Priority => "priority",
        Field::Attempt => "attempt",
        Field::CreateTime => "create_time",
        Field::UpdateTime => "update_time",
        Field::StartTime => "start_time",
        Field::EndTime => "end_time",
        Field::ErrorCode => "error_code",
        Field::ConcurrencyKey => "concurrency_key",
        Field::RetryOf => "retry_of",
        Field::Parent => "parent",
        Field::ScheduleTime => "schedule_time",
        Field::StartTimeout => "start_timeout",
        Field::Schedule => "schedule",
        Field::WaitingReason => return None,
    })
}

/// The columns the walk hands on to `filter`: the keys of list order and what the filter
/// reads, no more. Every column read costs each row examined, and some sit past the
/// record in the row, where reading them means reading the record's pages too.
fn scanned(filter: &Expr) -> String {
    let mut columns = vec!["name", "create_time"];
    for (_, field) in Field::PATHS {
        if let Some(column) = stored(field)
            && filter.mentions(field)
            && !columns.contains(&column)
        {
            columns.push(column);
        }
    }
    columns.join(", ")
}

/// The column and index of an equality the stores index in list order, with its rank.
fn equality(field: Field, value: &Value) -> Option<(u8, &'static str, &'static str, Sql)> {
    match (field, value) {
        (Field::State, Value::State(s)) => Some((
            4,
            "state",
            "operations_by_state",
            Sql::Text(s.as_str().into()),
        )),
        // `""` is the value of every operation without one: not selective.
        (_, Value::Text(p)) if !p.any_prefix && !p.any_suffix && !p.text.is_empty() => {
            let (rank, column, index) = match field {
                Field::Parent => (1, "parent", "operations_by_parent"),
                Field::RetryOf => (1, "retry_of", "operations_by_retry"),
                Field::Schedule => (1, "schedule", "operations_by_schedule"),
                Field::ConcurrencyKey => (1, "concurrency_key", "operations_by_key"),
                Field::Type => (3, "op_type", "operations_by_type"),
                _ => return None,
            };
            Some((rank, column, index, Sql::Text(p.text.clone())))
        }
        _ => None,
    }
}

/// The driver one term of a filter's top-level `AND` offers, with its rank (lower is
/// preferred: the more selective the index usually is). The indexes are those both stores
/// keep for lists: `(project, COLUMN, create_time DESC, name)` for the state, type, parent,
/// key, retry and schedule, `(project, end_time)`, and the full-text index of descriptions.
fn drive(term: &Expr, dialect: Dialect) -> Option<(u8, Driver)> {
    let set = |condition: String, params: Vec<Sql>, index: Option<&'static str>| Driver {
        condition,
        params,
        ordered: false,
        index,
    };
    match term {
        Expr::Compare {
            field,
            op: Op::Eq | Op::Has,
            value,
        } => {
            if let Some((rank, column, index, param)) = equality(*field, value) {
                let driver = Driver {
                    condition: format!("{column} = ?"),
                    params: vec![param],
                    ordered: true,
                    index: Some(index),
                };
                return Some((rank, driver));
            }
            match (field, value) {
                (Field::Description, Value::Words(words)) => {
                    let mut params = Vec::new();
                    let driver = match dialect {
                        Dialect::Sqlite => {
                            params.push(Sql::Text(text_query(words, dialect)));
                            let condition = "rowid IN (SELECT rowid FROM operations_words \
                                 WHERE operations_words MATCH ?)";
                            set(condition.into(), params, None)
                        }
                        Dialect::Postgres => {
                            let condition = words_condition(words, dialect, "", &mut params);
                            set(condition, params, None)
                        }
                    };
                    Some((2, driver))
                }
                (Field::Done, Value::Bool(done)) => Some((5, done_driver(*done))),
                _ => None,
            }
        }
        Expr::Compare {
            field: Field::Done,
            op: Op::Ne,
            value: Value::Bool(done),
        } => Some((5, done_driver(!done))),
        Expr::Compare {
            field: field @ (Field::CreateTime | Field::EndTime),
            op: op @ (Op::Lt | Op::Le | Op::Gt | Op::Ge),
            value: Value::Time(t),
        } => {
            let condition = |column| format!("{column} {} ?", operator(*op));
            let params = vec![Sql::Integer(t.millis())];
            Some(match field {
                Field::CreateTime => (
                    6,
                    Driver {
                        condition: condition("create_time"),
                        params,
                        ordered: true,
                        index: Some(LIST_INDEX),
                    },
                ),
                _ => (
                    7,
                    set(condition("end_time"), params, Some("operations_by_end")),
                ),
            })
        }
        // Equalities on one column: its index, each value's rows merged (and sorted by the
        // store).
        Expr::Or(items) => {
            let mut column_index = None;
            let mut params = Vec::new();
            for item in items {
                let Expr::Compare {
                    field,
                    op: Op::Eq | Op::Has,
                    value,
                } = item
                else {
                    return None;
                };
                let (rank, column, index, param) = equality(*field, value)?;
                if column_index.is_some_and(|(_, c, _)| c != column) {
                    return None;
                }
                column_index = Some((rank, column, index));
                params.push(param);
            }
            let (rank, column, index) = column_index?;
            let marks = vec!["?"; params.len()].join(", ");
            Some((
                rank + 1,
                set(format!("{column} IN ({marks})"), params, Some(index)),
            ))
        }
        _ => None,
    }
}

fn done_driver(done: bool) -> Driver {
    let states = if done {
        [State::Succeeded, State::Failed, State::Cancelled]
    } else {
        [State::Pending, State::Running, State::Cancelling]
    };
    Driver {
        condition: "state IN (?, ?, ?)".into(),
        params: states
            .iter()
            .map(|s| Sql::Text(s.as_str().into()))
            .collect(),
        ordered: false,
        index: Some("operations_by_state"),
    }
}

/// One list page as statements (docs/operations.md#what-a-page-costs): the store runs them in one
/// snapshot, in this order:
///
/// 1. [`PagePlan::count`], if any: the rows of a driver whose index is not in list order,
///    counted up to the budget + 1; more than the budget, and
///    [`PagePlan::walk_in_list_order`] drops the driver (the walk then follows the next
///    driver in list order, or the list index, bounded by the budget);
/// 2. [`PagePlan::page`]: the records of at most `limit` rows the filter keeps among those
///    the walk examines, in no particular order ([`in_list_order`] sorts them);
/// 3. when that page is short, [`PagePlan::resume`], if any: the position of the last row
///    the budget covers (`create_time`, `name`), where the next page starts; no row means
///    the walk reached its end.
#[derive(Debug, Clone)]
pub struct PagePlan {
    project: String,
    after: Option<Cursor>,
    filter: Option<Expr>,
    limit: usize,
    /// `None`: unbounded.
    budget: Option<usize>,
    dialect: Dialect,
    driver: Option<Driver>,
    /// The best driver in list order after `driver`, walked instead when `driver` holds
    /// more rows than the budget.
    fallback: Option<Driver>,
}

impl PagePlan {
    pub fn new(query: &crate::ListQuery, dialect: Dialect) -> Self {
        // The terms every kept row meets: the `AND`s, nested ones too.
        fn terms<'a>(expr: &'a Expr, out: &mut Vec<&'a Expr>) {
            match expr {
                Expr::And(items) => items.iter().for_each(|e| terms(e, out)),
                other => out.push(other),
            }
        }
        let mut offered = Vec::new();
        if let Some(filter) = &query.filter {
            let mut all = Vec::new();
            terms(filter, &mut all);
            offered.extend(all.into_iter().filter_map(|t| drive(t, dialect)));
        }
        offered.sort_by_key(|(rank, _)| *rank);
        let mut offered = offered.into_iter().map(|(_, d)| d);
        let driver = offered.next();
        let fallback = offered.find(|d| d.ordered);
        PagePlan {
            project: query.project.as_str().to_string(),
            after: query.after.clone(),
            filter: query.filter.clone(),
            limit: query.limit,
            budget: (query.scan_budget < i64::MAX as usize).then_some(query.scan_budget.max(1)),
            dialect,
            driver,
            fallback,
        }
    }

    /// `operations [INDEXED BY …] WHERE project = ? [AND after the cursor] [AND the driver]`.
    fn walk(&self, driver: Option<&Driver>) -> Statement {
        let mut sql = String::from("operations ");
        if self.dialect == Dialect::Sqlite {
            match driver.map_or(Some(LIST_INDEX), |d| d.index) {
                Some(index) => sql.push_str(&format!("INDEXED BY {index} ")),
                None => sql.push_str("NOT INDEXED "),
            }
        }
        sql.push_str("WHERE project = ?");
        let mut params = vec![Sql::Text(self.project.clone())];
        if let Some(after) = &self.after {
            sql.push_str(" AND create_time <= ? AND (create_time < ? OR name > ?)");
            params.push(Sql::Integer(after.create_time.millis()));
            params.push(Sql::Integer(after.create_time.millis()));
            params.push(Sql::Text(after.name.as_str().to_string()));
        }
        if let Some(d) = driver {
            sql.push_str(" AND ");
            sql.push_str(&d.condition);
            params.extend(d.params.iter().cloned());
        }
        Statement { sql, params }
    }

    /// Step 1: a statement answering one integer.
    pub fn count(&self) -> Option<Statement> {
        let budget = self.budget?;
        let driver = self.driver.as_ref().filter(|d| !d.ordered)?;
        let mut walk = self.walk(Some(driver));
        walk.sql = format!(
            "SELECT count(*) FROM (SELECT 1 FROM {} LIMIT ?) AS driven",
            walk.sql
        );
        walk.params.push(Sql::Integer(budget as i64 + 1));
        Some(walk)
    }

    /// After step 1 counted more rows than the budget: the walk follows the next driver in
    /// list order the filter offers, or the list index.
    pub fn walk_in_list_order(&mut self) {
        self.driver = self.fallback.take();
    }

    /// Whether the walk is bounded by the budget (not a driver counted within it).
    fn bounded(&self) -> Option<usize> {
        match &self.driver {
            Some(d) if !d.ordered => None,
            _ if self.filter.is_none() => None,
            _ => self.budget,
        }
    }

    /// Step 2: a statement answering one `record` column.
    pub fn page(&self) -> Statement {
        let mut walk = self.walk(self.driver.as_ref());
        let Some(filter) = &self.filter else {
            walk.sql = format!(
                "SELECT record FROM {} ORDER BY create_time DESC, name LIMIT ?",
                walk.sql
            );
            walk.params.push(Sql::Integer(self.limit as i64));
            return walk;
        };
        let row_id = match self.dialect {
            Dialect::Sqlite => "rowid AS row_id, ",
            Dialect::Postgres => "",
        };
        let mut sql = format!(
            "SELECT o.record FROM (SELECT name AS hit FROM (SELECT {row_id}{} FROM {} \
             ORDER BY create_time DESC, name",
            scanned(filter),
            walk.sql
        );
        let mut params = walk.params;
        if let Some(budget) = self.bounded() {
            sql.push_str(" LIMIT ?");
            params.push(Sql::Integer(budget as i64));
        }
        // The walk's rows come in list order; the first `limit` the filter keeps are the
        // page, so the walk stops there.
        sql.push_str(") AS scanned WHERE ");
        condition(filter, self.dialect, &mut sql, &mut params);
        sql.push_str(" LIMIT ?) AS hits JOIN operations o ON o.name = hits.hit");
        params.push(Sql::Integer(self.limit as i64));
        Statement { sql, params }
    }

    /// Step 3: a statement answering `create_time`, `name`, or no row.
    pub fn resume(&self) -> Option<Statement> {
        let budget = self.bounded()?;
        let mut walk = self.walk(self.driver.as_ref());
        walk.sql = format!(
            "SELECT create_time, name FROM {} ORDER BY create_time DESC, name LIMIT 1 OFFSET ?",
            walk.sql
        );
        walk.params.push(Sql::Integer(budget as i64 - 1));
        Some(walk)
    }
}

/// Sorts a page in list order: `create_time` descending, then `name`.
pub fn in_list_order(operations: &mut [longrun_types::operation::Operation]) {
    operations.sort_by(|a, b| {
        b.create_time
            .cmp(&a.create_time)
            .then_with(|| a.name.cmp(&b.name))
    });
}
