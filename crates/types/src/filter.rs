//! The list filter: the AIP-160 subset of docs/operations.md#filter, parsed by hand into a typed
//! expression (no crate implements exactly this subset with typed fields and positioned
//! errors). Storage backends translate the expression into their query language;
//! [`Expr::matches`] is the reference semantics they are tested against.
//!
//! Semantics chosen where AIP-160 leaves room (documented in the README):
//! - `OR` binds tighter than `AND`; juxtaposition (`a b`) means `a AND b`.
//! - `:` on a scalar field means equality; `field:*` means "present" (set and non-empty).
//! - A comparison with a field that is absent (no `startTime`, no error) is false, for `!=`
//!   too; `NOT` / `-` negate the whole comparison.
//! - Text `=`, `!=` and `:` accept a leading and/or trailing `*` wildcard; `\` escapes.
//! - A `name`, `metadata.retryOf` or `metadata.parent` literal (whole or around a wildcard) is taken in the
//!   canonical form of names (`Name`): `café` and `caf%c3%a9` both mean `caf%C3%A9`.

use crate::{State, Timestamp};
use std::fmt;

/// Longest filter accepted, in bytes.
pub const MAX_LEN: usize = 4096;
/// Deepest nesting of parentheses and negations.
const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Done,
    Name,
    State,
    Type,
    Description,
    Priority,
    Attempt,
    CreateTime,
    UpdateTime,
    StartTime,
    EndTime,
    ErrorCode,
    /// `metadata.concurrencyKey`; an operation without a key has `""`.
    ConcurrencyKey,
    /// `metadata.retryOf`, a name (canonicalised as `name` is); `""` on an operation that
    /// retries none.
    RetryOf,
    /// `metadata.parent`, a name (canonicalised as `name` is); `""` on an operation without
    /// a parent.
    Parent,
    /// `metadata.scheduleTime`; absent without one.
    ScheduleTime,
    /// `metadata.startTimeout`, compared with a duration literal (`"30s"`); absent without
    /// one.
    StartTimeout,
    /// `metadata.waitingReason` (`crate::waiting::Reason`); `""` when the operation does not
    /// wait. Computed, not stored: the engine evaluates it ([`Expr::matches_waiting`]).
    WaitingReason,
    /// `metadata.schedule`; an operation no schedule started has `""`.
    Schedule,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Text,
    State,
    Int,
    Time,
    /// A duration literal, compared in milliseconds.
    Duration,
    /// A waiting reason's name.
    Reason,
}

impl Field {
    /// Every field, with the path a filter names it by.
    pub const PATHS: [(&'static str, Field); 19] = [
        ("done", Field::Done),
        ("name", Field::Name),
        ("metadata.state", Field::State),
        ("metadata.type", Field::Type),
        ("metadata.description", Field::Description),
        ("metadata.priority", Field::Priority),
        ("metadata.attempt", Field::Attempt),
        ("metadata.createTime", Field::CreateTime),
        ("metadata.updateTime", Field::UpdateTime),
        ("metadata.startTime", Field::StartTime),
        ("metadata.endTime", Field::EndTime),
        ("error.code", Field::ErrorCode),
        ("metadata.concurrencyKey", Field::ConcurrencyKey),
        ("metadata.retryOf", Field::RetryOf),
        ("metadata.parent", Field::Parent),
        ("metadata.scheduleTime", Field::ScheduleTime),
        ("metadata.startTimeout", Field::StartTimeout),
        ("metadata.waitingReason", Field::WaitingReason),
        ("metadata.schedule", Field::Schedule),
    ];

    fn kind(self) -> Kind {
        match self {
            Field::Done => Kind::Bool,
            Field::Name
            | Field::Type
            | Field::Description
            | Field::ConcurrencyKey
            | Field::RetryOf
            | Field::Parent
            | Field::Schedule => Kind::Text,
            Field::State => Kind::State,
            Field::Priority | Field::Attempt | Field::ErrorCode => Kind::Int,
            Field::CreateTime
            | Field::UpdateTime
            | Field::StartTime
            | Field::EndTime
            | Field::ScheduleTime => Kind::Time,
            Field::StartTimeout => Kind::Duration,
            Field::WaitingReason => Kind::Reason,
        }
    }

    pub fn path(self) -> &'static str {
        Field::PATHS
            .iter()
            .find(|(_, f)| *f == self)
            .map(|(p, _)| *p)
            .unwrap_or("?")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Has,
}

/// A text literal, with the wildcards split off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    pub text: String,
    /// `*text`: the value ends with `text`.
    pub any_prefix: bool,
    /// `text*`: the value starts with `text`.
    pub any_suffix: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Text(Pattern),
    State(State),
    Time(Timestamp),
    /// `field:*`
    Present,
    /// `metadata.description:WORDS`: the description holds each word (see [`Words`]).
    Words(Words),
}

/// The words a `metadata.description:` term asks for: each must be one of the
/// description's words ([`words`]); with `prefix` (a trailing `*`), the last one need
/// only begin one. Stores answer it from a full-text index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Words {
    /// Lowercased, in the order written; never empty.
    pub words: Vec<String>,
    pub prefix: bool,
}

/// The words of `text`: its runs of letters and digits (Unicode `Alphabetic` and `Numeric`),
/// lowercased. What `metadata.description:` matches on.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

impl Words {
    /// Whether `text` holds every word (the last as a prefix when `prefix`).
    pub fn matches(&self, text: &str) -> bool {
        let have: Vec<String> = words(text).collect();
        let last = self.words.len() - 1;
        self.words.iter().enumerate().all(|(i, want)| {
            have.iter().any(|w| {
                if self.prefix && i == last {
                    w.starts_with(want.as_str())
                } else {
                    w == want
                }
            })
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Compare { field: Field, op: Op, value: Value },
}

/// A filter that failed to parse: where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// Byte offset into the filter text.
    pub position: usize,
    pub message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid filter at position {}: {}",
            self.position, self.message
        )
    }
}

impl std::error::Error for Error {}

/// Parses a filter. Empty (or all-whitespace) text is `None`: everything matches.
pub fn parse(text: &str) -> Result<Option<Expr>, Error> {
    if text.len() > MAX_LEN {
        return Err(Error {
            position: MAX_LEN,
            message: format!("a filter is at most {MAX_LEN} bytes"),
        });
    }
    // No stored text holds U+0000 (the stores refuse it: PostgreSQL's text cannot hold it),
    // so a literal with one could only mislead; refused on every store alike.
    if let Some(position) = text.find('\0') {
        return Err(Error {
            position,
            message: "the character U+0000 is not allowed in a filter".into(),
        });
    }
    let mut parser = Parser {
        text,
        pos: 0,
        depth: 0,
    };
    parser.skip_ws();
    if parser.at_end() {
        return Ok(None);
    }
    let expr = parser.expression()?;
    parser.skip_ws();
    if !parser.at_end() {
        return Err(parser.error(match parser.peek() {
            Some(')') => "unbalanced `)`".to_string(),
            _ => "unexpected text".to_string(),
        }));
    }
    Ok(Some(expr))
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn error(&self, message: impl Into<String>) -> Error {
        Error {
            position: self.pos,
            message: message.into(),
        }
    }

    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    fn skip_ws(&mut self) {
        while let Some(c) = self.peek() {
            if !c.is_whitespace() {
                break;
            }
            self.pos += c.len_utf8();
        }
    }

    /// Consumes `word` if it is next, followed by whitespace, `(` or `-` (for NOT) or the end.
    fn keyword(&mut self, word: &str) -> bool {
        let rest = self.rest();
        if !rest.starts_with(word) {
            return false;
        }
        match rest[word.len()..].chars().next() {
            None => {}
            Some(c) if c.is_whitespace() || c == '(' => {}
            _ => return false,
        }
        self.pos += word.len();
        true
    }

    fn enter(&mut self) -> Result<(), Error> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }

    // expression: sequence { AND sequence }
    fn expression(&mut self) -> Result<Expr, Error> {
        self.enter()?;
        let mut items = vec![self.sequence()?];
        loop {
            self.skip_ws();
            let before = self.pos;
            if self.keyword("AND") {
                self.skip_ws();
                if self.at_end() || self.peek() == Some(')') {
                    self.pos = before;
                    return Err(self.error("`AND` needs a condition after it"));
                }
                items.push(self.sequence()?);
            } else {
                break;
            }
        }
        self.depth -= 1;
        Ok(flatten(items, Expr::And))
    }

    // sequence: factor { factor }   (juxtaposition = AND)
    fn sequence(&mut self) -> Result<Expr, Error> {
        let mut items = vec![self.factor()?];
        loop {
            self.skip_ws();
            if self.at_end() || self.peek() == Some(')') {
                break;
            }
            let save = self.pos;
            if self.keyword("AND") {
                self.pos = save;
                break;
            }
            if self.keyword("OR") {
                self.pos = save;
                return Err(self.error("`OR` needs a condition before it"));
            }
            items.push(self.factor()?);
        }
        Ok(flatten(items, Expr::And))
    }

    // factor: term { OR term }
    fn factor(&mut self) -> Result<Expr, Error> {
        let mut items = vec![self.term()?];
        loop {
            let save = self.pos;
            self.skip_ws();
            if self.keyword("OR") {
                self.skip_ws();
                if self.at_end() || self.peek() == Some(')') {
                    return Err(self.error("`OR` needs a condition after it"));
                }
                items.push(self.term()?);
            } else {
                self.pos = save;
                break;
            }
        }
        Ok(flatten(items, Expr::Or))
    }

    // term: [NOT | -] simple
    fn term(&mut self) -> Result<Expr, Error> {
        self.skip_ws();
        if self.keyword("NOT") {
            self.skip_ws();
            return self.negated();
        }
        if self.peek() == Some('-') {
            self.pos += 1;
            return self.negated();
        }
        self.simple()
    }

    fn negated(&mut self) -> Result<Expr, Error> {
        self.enter()?;
        let inner = self.simple()?;
        self.depth -= 1;
        Ok(Expr::Not(Box::new(inner)))
    }

    // simple: ( expression ) | comparison
    fn simple(&mut self) -> Result<Expr, Error> {
        match self.peek() {
            None => Err(self.error("expected a condition, found the end of the filter")),
            Some('(') => {
                let open = self.pos;
                self.pos += 1;
                self.skip_ws();
                if self.peek() == Some(')') {
                    return Err(self.error("empty parentheses"));
                }
                let inner = self.expression()?;
                self.skip_ws();
                if self.peek() != Some(')') {
                    return Err(Error {
                        position: open,
                        message: "`(` is never closed".into(),
                    });
                }
                self.pos += 1;
                Ok(inner)
            }
            Some(_) => self.comparison(),
        }
    }

    fn comparison(&mut self) -> Result<Expr, Error> {
        let start = self.pos;
        let path_len = self
            .rest()
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_'))
            .unwrap_or(self.rest().len());
        if path_len == 0 {
            return Err(self.error(format!(
                "expected a field name, found `{}`",
                self.peek().unwrap_or(' ')
            )));
        }
        let path = &self.text[start..start + path_len];
        let field = Field::PATHS
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, f)| *f)
            .ok_or_else(|| Error {
                position: start,
                message: format!(
                    "unknown field `{path}`; filterable fields are {}",
                    Field::PATHS.map(|(p, _)| p).join(", ")
                ),
            })?;
        self.pos += path_len;
        self.skip_ws();
        let op_pos = self.pos;
        let op = [
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("!=", Op::Ne),
            ("<", Op::Lt),
            (">", Op::Gt),
            ("=", Op::Eq),
            (":", Op::Has),
        ]
        .into_iter()
        .find(|(s, _)| self.rest().starts_with(s))
        .map(|(s, op)| {
            self.pos += s.len();
            op
        })
        .ok_or_else(|| self.error(format!("expected a comparison operator after `{path}`")))?;
        self.skip_ws();
        let value_pos = self.pos;
        let literal = self.literal()?;
        let value = typed_value(field, op, literal).map_err(|message| Error {
            position: if message.starts_with("operator") {
                op_pos
            } else {
                value_pos
            },
            message,
        })?;
        Ok(Expr::Compare { field, op, value })
    }

    /// A quoted string (with `\` escapes) or a bare run up to whitespace or a parenthesis.
    fn literal(&mut self) -> Result<Literal, Error> {
        match self.peek() {
            None => Err(self.error("expected a value, found the end of the filter")),
            Some(q @ ('"' | '\'')) => {
                let open = self.pos;
                self.pos += 1;
                let mut chars = Vec::new();
                loop {
                    let Some(c) = self.peek() else {
                        return Err(Error {
                            position: open,
                            message: "unterminated string".into(),
                        });
                    };
                    self.pos += c.len_utf8();
                    if c == q {
                        break;
                    }
                    if c == '\\' {
                        let Some(escaped) = self.peek() else {
                            return Err(self.error("`\\` at the end of a string"));
                        };
                        self.pos += escaped.len_utf8();
                        chars.push((escaped, true));
                    } else {
                        chars.push((c, false));
                    }
                }
                Ok(Literal {
                    chars,
                    quoted: true,
                })
            }
            Some(_) => {
                let mut chars = Vec::new();
                while let Some(c) = self.peek() {
                    if c.is_whitespace() || c == '(' || c == ')' {
                        break;
                    }
                    self.pos += c.len_utf8();
                    chars.push((c, false));
                }
                if chars.is_empty() {
                    return Err(self.error("expected a value"));
                }
                Ok(Literal {
                    chars,
                    quoted: false,
                })
            }
        }
    }
}

struct Literal {
    /// Characters and whether each was escaped.
    chars: Vec<(char, bool)>,
    quoted: bool,
}

impl Literal {
    fn plain(&self) -> String {
        self.chars.iter().map(|(c, _)| c).collect()
    }

    fn is_star(&self) -> bool {
        !self.quoted && self.chars == [('*', false)]
    }

    fn pattern(&self) -> Pattern {
        let mut chars = &self.chars[..];
        let any_prefix = matches!(chars.first(), Some(('*', false)));
        if any_prefix {
            chars = &chars[1..];
        }
        let any_suffix = matches!(chars.last(), Some(('*', false)));
        if any_suffix {
            chars = &chars[..chars.len() - 1];
        }
        Pattern {
            text: chars.iter().map(|(c, _)| c).collect(),
            any_prefix,
            any_suffix,
        }
    }
}

fn typed_value(field: Field, op: Op, literal: Literal) -> Result<Value, String> {
    let path = field.path();
    if op == Op::Has && literal.is_star() {
        return Ok(Value::Present);
    }
    let ordering = matches!(op, Op::Lt | Op::Le | Op::Gt | Op::Ge);
    let text = literal.plain();
    match field.kind() {
        Kind::Bool => {
            if ordering {
                return Err(format!(
                    "operator is not supported on `{path}` (use = or !=)"
                ));
            }
            match text.as_str() {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                _ => Err(format!("`{path}` takes true or false, not `{text}`")),
            }
        }
        Kind::State => {
            if ordering {
                return Err(format!(
                    "operator is not supported on `{path}` (use =, != or :)"
                ));
            }
            text.parse::<State>().map(Value::State).map_err(|_| {
                format!(
                    "`{text}` is not a state; states are {}",
                    State::ALL.map(|s| s.as_str()).join(", ")
                )
            })
        }
        Kind::Int => text
            .parse::<i64>()
            .map(Value::Int)
            .map_err(|_| format!("`{path}` takes an integer, not `{text}`")),
        Kind::Time => Timestamp::parse(&text).map(Value::Time),
        Kind::Duration => crate::duration::parse(&text)
            .map(|d| Value::Int(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
            .map_err(|e| format!("`{path}` takes a duration: {e}")),
        Kind::Reason => {
            if ordering {
                return Err(format!(
                    "operator is not supported on `{path}` (use =, != or :)"
                ));
            }
            let reason: crate::waiting::Reason = text.parse()?;
            Ok(Value::Text(Pattern {
                text: reason.as_str().to_string(),
                any_prefix: false,
                any_suffix: false,
            }))
        }
        Kind::Text if field == Field::Description && op == Op::Has => {
            let pattern = literal.pattern();
            if pattern.any_prefix {
                return Err(format!(
                    "`{path}:` matches words; a leading * cannot be used (use = \"*text*\" for any text)"
                ));
            }
            let words: Vec<String> = words(&pattern.text).collect();
            if words.is_empty() {
                return Err(format!(
                    "`{path}:` takes words (letters and digits), not `{text}`"
                ));
            }
            Ok(Value::Words(Words {
                words,
                prefix: pattern.any_suffix,
            }))
        }
        Kind::Text => {
            let mut pattern = literal.pattern();
            if ordering && (pattern.any_prefix || pattern.any_suffix) {
                return Err(format!("wildcards work only with =, != and : on `{path}`"));
            }
            if matches!(field, Field::Name | Field::RetryOf | Field::Parent) {
                // Names are compared in their canonical form, whatever the user typed
                // (`café` for the name that holds `caf%C3%A9`).
                pattern.text = crate::name::canonical_text(&pattern.text);
            }
            Ok(Value::Text(pattern))
        }
    }
}

fn flatten(mut items: Vec<Expr>, join: fn(Vec<Expr>) -> Expr) -> Expr {
    if items.len() == 1 {
        items.pop().expect("one item")
    } else {
        join(items)
    }
}

mod matches;

#[cfg(test)]
mod tests;
