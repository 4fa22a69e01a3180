//! The schedule record (docs/schedules.md): a cron pattern in a time zone that submits an
//! operation at each fire time. Storage keeps the record whole, like an operation's, and
//! indexes only its name, project and next fire time.

use crate::Timestamp;
use serde::{Deserialize, Serialize};

/// Longest schedule id, in bytes of its canonical form.
pub const MAX_ID_LEN: usize = 128;

/// What a firing does while the operation of the previous firing is not done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OverlapPolicy {
    /// Submit nothing; the fire time passes.
    #[default]
    Skip,
    /// Submit anyway.
    Allow,
    /// Cancel the previous operation, then submit.
    CancelPrevious,
}

impl OverlapPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            OverlapPolicy::Skip => "SKIP",
            OverlapPolicy::Allow => "ALLOW",
            OverlapPolicy::CancelPrevious => "CANCEL_PREVIOUS",
        }
    }

    pub fn parse(text: &str) -> Option<OverlapPolicy> {
        match text {
            "SKIP" => Some(OverlapPolicy::Skip),
            "ALLOW" => Some(OverlapPolicy::Allow),
            "CANCEL_PREVIOUS" => Some(OverlapPolicy::CancelPrevious),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// `projects/{project}/schedules/{id}`, canonical.
    pub name: String,
    /// 5 fields, or 6 with a leading seconds field.
    pub cron: String,
    /// An IANA time zone (`UTC` by default).
    pub time_zone: String,
    /// The submit body each firing sends, as the API takes it (without `operationId` and
    /// `requestId`), in its JSON form.
    pub operation: serde_json::Value,
    pub overlap_policy: OverlapPolicy,
    pub paused: bool,
    /// The next fire time; `None` while paused.
    pub next_fire_time: Option<Timestamp>,
    /// The last fire time handled (submitted, or passed over by the overlap policy).
    pub last_fire_time: Option<Timestamp>,
    /// The operation the latest firing started, which the overlap policy looks at.
    pub last_operation: Option<String>,
    pub create_time: Timestamp,
    pub update_time: Timestamp,
    /// Bumped on every write; storage compares it to resolve races.
    pub version: i64,
}

const PREFIX: &str = "projects/";
const INFIX: &str = "/schedules/";

impl Schedule {
    /// `projects/{project}/schedules/{id}` from canonical parts.
    pub fn name_of(project: &crate::Project, id: &str) -> String {
        format!("{PREFIX}{project}{INFIX}{id}")
    }

    /// The project and id of a schedule name, if it is one.
    pub fn split_name(name: &str) -> Option<(&str, &str)> {
        name.strip_prefix(PREFIX)?.split_once(INFIX)
    }

    /// The project id.
    pub fn project(&self) -> &str {
        Schedule::split_name(&self.name).map_or("", |(p, _)| p)
    }

    /// The schedule id.
    pub fn id(&self) -> &str {
        Schedule::split_name(&self.name).map_or("", |(_, id)| id)
    }

    /// The request id of the submit of `fire_time`: the same on every server, so the
    /// store's request-id dedup turns a repeated firing into the operation already made.
    pub fn request_id(&self, fire_time: Timestamp) -> String {
        format!("schedules/{}/{}", self.id(), fire_time.millis())
    }
}

/// A schedule id as it arrives (percent-encoded or not): one path segment, canonical,
/// 1 to [`MAX_ID_LEN`] bytes.
pub fn parse_id(raw: &str) -> Result<String, crate::NameError> {
    if raw.contains('/') {
        return Err(crate::NameError::Invalid(format!(
            "schedule id `{raw}` must be a single path segment"
        )));
    }
    let id = crate::name::canonical_segment(raw)
        .map_err(|e| crate::NameError::Invalid(format!("invalid schedule id: {e}")))?;
    crate::limits::check("scheduleId", &id, MAX_ID_LEN).map_err(crate::NameError::TooLong)?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_and_request_ids_name_the_fire_time() {
        let project = crate::Project::parse("p").unwrap();
        let name = Schedule::name_of(&project, "nightly");
        assert_eq!(name, "projects/p/schedules/nightly");
        assert_eq!(Schedule::split_name(&name), Some(("p", "nightly")));
        let s = Schedule {
            name,
            cron: "0 3 * * *".into(),
            time_zone: "UTC".into(),
            operation: serde_json::json!({"type": "T"}),
            overlap_policy: OverlapPolicy::Skip,
            paused: false,
            next_fire_time: Some(Timestamp(5_000)),
            last_fire_time: None,
            last_operation: None,
            create_time: Timestamp(1),
            update_time: Timestamp(1),
            version: 1,
        };
        assert_eq!(s.request_id(Timestamp(5_000)), "schedules/nightly/5000");
        assert_eq!((s.project(), s.id()), ("p", "nightly"));
        let back: Schedule = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn ids_are_one_canonical_segment() {
        assert_eq!(parse_id("a%2Db").unwrap(), "a-b");
        assert!(parse_id("a/b").is_err());
        assert!(parse_id("").is_err());
        assert!(parse_id(&"x".repeat(MAX_ID_LEN + 1)).is_err());
        assert_eq!(
            OverlapPolicy::parse("CANCEL_PREVIOUS"),
            Some(OverlapPolicy::CancelPrevious)
        );
        assert_eq!(OverlapPolicy::parse("skip"), None);
    }
}
