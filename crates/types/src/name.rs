//! Resource names: `projects/{project}` and `projects/{project}/operations/{id}` where the id
//! has one or more segments. Names are kept in one canonical form: every segment
//! percent-decoded, then re-encoded so that exactly the unreserved characters
//! `[A-Za-z0-9._~-]` appear literally (an encoded slash stays `%2F` inside its segment).

use std::fmt;

/// Characters that appear literally in a canonical segment.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-')
}

/// Longest accepted operation name, in bytes of its canonical form.
pub const MAX_NAME_LEN: usize = crate::limits::OPERATION_NAME;

/// Why a project id or an operation name was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    /// Not a name: why.
    Invalid(String),
    /// Longer than its limit (field `project` or `name`).
    TooLong(crate::limits::TooLong),
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Invalid(why) => f.write_str(why),
            NameError::TooLong(too_long) => too_long.fmt(f),
        }
    }
}

impl std::error::Error for NameError {}

impl From<NameError> for String {
    fn from(e: NameError) -> String {
        e.to_string()
    }
}

/// Decodes one raw path segment and re-encodes it canonically.
///
/// Refuses empty segments, malformed percent-encoding, and the dot segments `.` and `..`
/// (raw or percent-encoded, e.g. `%2E%2E`): HTTP clients (curl, Python `requests`, the `ee`
/// client) remove dot segments from a path before sending it (RFC 3986 section 5.2.4), so a
/// name holding one would be reached as another name.
pub fn canonical_segment(raw: &str) -> Result<String, String> {
    if raw.is_empty() {
        return Err("empty path segment".into());
    }
    let decoded = decode(raw, Escapes::Strict)?;
    if decoded == b"." || decoded == b".." {
        return Err(format!(
            "the path segment `{raw}` is a dot segment, which HTTP clients remove from paths"
        ));
    }
    Ok(encode(&decoded))
}

/// The canonical form of a name, or of a part of one, as a filter writes it: each
/// `/`-separated piece percent-decoded, then re-encoded as every name is, so that the id
/// as the user typed it (`café`), its encoding in either case (`caf%c3%a9`) and the
/// canonical form (`caf%C3%A9`) are one text. It refuses nothing, since a part of a name
/// (the text around a wildcard) may start or end anywhere: a `%` that starts no escape
/// stands for itself (`%25`), and empty or dot pieces stay as they are.
pub fn canonical_text(text: &str) -> String {
    text.split('/')
        .map(|piece| {
            encode(&decode(piece, Escapes::Lenient).expect("lenient decoding never fails"))
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// What a `%` that starts no valid escape means.
#[derive(Clone, Copy, PartialEq)]
enum Escapes {
    /// An error (a path segment).
    Strict,
    /// Itself (a piece of a name in a filter).
    Lenient,
}

/// The bytes of `raw` with its percent-escapes decoded.
fn decode(raw: &str, escapes: Escapes) -> Result<Vec<u8>, String> {
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match (hex, escapes) {
                (Some(byte), _) => {
                    decoded.push(byte);
                    i += 3;
                }
                (None, Escapes::Lenient) => {
                    decoded.push(b'%');
                    i += 1;
                }
                (None, Escapes::Strict) => {
                    return Err(format!("malformed percent-encoding in `{raw}`"));
                }
            }
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    Ok(decoded)
}

/// `bytes` with everything but the unreserved characters percent-encoded (upper case).
fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if is_unreserved(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A project id, canonical single segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Project(String);

impl Project {
    /// A project id from its raw (possibly percent-encoded) form: one segment, at most
    /// [`limits::PROJECT_ID`](crate::limits::PROJECT_ID) bytes canonical.
    pub fn parse(raw: &str) -> Result<Project, NameError> {
        if raw.contains('/') {
            return Err(NameError::Invalid(format!(
                "project id `{raw}` must be a single path segment"
            )));
        }
        let segment = canonical_segment(raw)
            .map_err(|e| NameError::Invalid(format!("invalid project id: {e}")))?;
        crate::limits::check("project", &segment, crate::limits::PROJECT_ID)
            .map_err(NameError::TooLong)?;
        Ok(Project(segment))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `projects/{project}`
    pub fn resource_name(&self) -> String {
        format!("projects/{}", self.0)
    }
}

impl fmt::Display for Project {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An operation name, canonical form `projects/{project}/operations/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name {
    full: String,
    id_start: usize,
    project_end: usize,
}

const PROJECT_PREFIX: &str = "projects/";
const OPERATIONS_INFIX: &str = "/operations/";

impl Name {
    /// Builds a name from a project and a raw (possibly multi-segment) id; the name is at
    /// most [`MAX_NAME_LEN`] bytes (a longer one is `TooLong` of field `name`).
    pub fn new(project: &Project, raw_id: &str) -> Result<Name, NameError> {
        if raw_id.is_empty() {
            return Err(NameError::Invalid("operation id is empty".into()));
        }
        let mut full = format!("{PROJECT_PREFIX}{project}{OPERATIONS_INFIX}");
        let project_end = PROJECT_PREFIX.len() + project.as_str().len();
        let id_start = full.len();
        for (i, segment) in raw_id.split('/').enumerate() {
            if i > 0 {
                full.push('/');
            }
            let segment = canonical_segment(segment)
                .map_err(|e| NameError::Invalid(format!("invalid operation id: {e}")))?;
            full.push_str(&segment);
        }
        crate::limits::check("name", &full, MAX_NAME_LEN).map_err(NameError::TooLong)?;
        Ok(Name {
            full,
            id_start,
            project_end,
        })
    }

    /// Parses `projects/{p}/operations/{id...}` (raw, percent-encoded form).
    pub fn parse(raw: &str) -> Result<Name, NameError> {
        let bad = || {
            NameError::Invalid(format!(
                "`{raw}` is not an operation name like projects/P/operations/ID"
            ))
        };
        let rest = raw.strip_prefix(PROJECT_PREFIX).ok_or_else(bad)?;
        let (project, id) = rest.split_once(OPERATIONS_INFIX).ok_or_else(bad)?;
        Name::new(&Project::parse(project)?, id)
    }

    /// A server-generated id: 24 characters of `[A-Z0-9]`, about 124 random bits.
    pub fn generate(project: &Project) -> Name {
        const ALPHABET: &[u8; 36] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        let mut random = [0u8; 24];
        getrandom::fill(&mut random).expect("the operating system's random source works");
        // 252 is the largest multiple of 36 below 256: rejecting above it keeps the draw
        // uniform; the rare rejected byte is redrawn.
        let id: String = random
            .iter()
            .map(|&b| {
                let mut b = b;
                while b >= 252 {
                    let mut one = [0u8; 1];
                    getrandom::fill(&mut one).expect("the operating system's random source works");
                    b = one[0];
                }
                ALPHABET[(b % 36) as usize] as char
            })
            .collect();
        Name::new(project, &id).expect("generated ids are valid")
    }

    pub fn as_str(&self) -> &str {
        &self.full
    }

    /// The project id.
    pub fn project(&self) -> Project {
        Project(self.full[PROJECT_PREFIX.len()..self.project_end].to_string())
    }

    /// The operation id (everything after `operations/`).
    pub fn id(&self) -> &str {
        &self.full[self.id_start..]
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_segment_ids_and_encoded_slashes() {
        let n = Name::parse("projects/p/operations/exports/2026/a1").unwrap();
        assert_eq!(n.project().as_str(), "p");
        assert_eq!(n.id(), "exports/2026/a1");
        let n = Name::parse("projects/p/operations/a%2fb/c").unwrap();
        assert_eq!(n.id(), "a%2Fb/c");
        assert_eq!(n.as_str(), "projects/p/operations/a%2Fb/c");
    }

    #[test]
    fn names_and_project_ids_longer_than_their_limits_say_which_and_how_long() {
        let p = Project::parse(&"p".repeat(256)).unwrap();
        let too_long = |e| match e {
            NameError::TooLong(t) => t,
            other => panic!("{other}"),
        };
        let e = too_long(Project::parse(&"p".repeat(257)).unwrap_err());
        assert_eq!((e.field.as_str(), e.length, e.limit), ("project", 257, 256));
        let prefix = format!("projects/{p}/operations/").len();
        assert!(Name::new(&p, &"i".repeat(MAX_NAME_LEN - prefix)).is_ok());
        // Canonical bytes count: `é` is `%C3%A9`, six.
        let e = too_long(Name::new(&p, &"é".repeat(200)).unwrap_err());
        assert_eq!(
            (e.field.as_str(), e.length, e.limit),
            ("name", prefix + 1200, 1024)
        );
        assert_eq!(
            e.to_string(),
            format!(
                "name is {} bytes long; it may be at most 1024 bytes",
                prefix + 1200
            )
        );
    }

    #[test]
    fn names_in_filters_take_the_canonical_form_whatever_was_typed() {
        let canonical = "projects/p/operations/caf%C3%A9";
        for typed in [
            "projects/p/operations/café",
            "projects/p/operations/caf%c3%a9",
            canonical,
        ] {
            assert_eq!(canonical_text(typed), canonical, "{typed}");
        }
        // Parts of names: around a wildcard, with stray `%`, empty and dot pieces.
        assert_eq!(canonical_text("été/"), "%C3%A9t%C3%A9/");
        assert_eq!(canonical_text("100%"), "100%25");
        assert_eq!(canonical_text("%4"), "%254");
        assert_eq!(canonical_text("a%2fb"), "a%2Fb");
        assert_eq!(canonical_text("/../a b"), "/../a%20b");
        assert_eq!(canonical_text("*"), "%2A");
    }

    #[test]
    fn canonical_form_decodes_unreserved_and_encodes_the_rest() {
        let n = Name::parse("projects/p/operations/%41b c:cancel").unwrap();
        assert_eq!(n.id(), "Ab%20c%3Acancel");
        assert_eq!(Name::parse(n.as_str()).unwrap(), n);
    }

    #[test]
    fn rejects_malformed_names() {
        for bad in [
            "projects/p/operations/",
            "projects/p/operations/a//b",
            "projects/p/operations/a/",
            "projects//operations/a",
            "projects/p/ops/a",
            "projects/p/operations/%zz",
            "projects/p/operations/%4",
            "operations/a",
            "projects/p/operations/a/../b",
            "projects/p/operations/./b",
            "projects/p/operations/a/..",
            "projects/p/operations/%2E%2E/b",
            "projects/p/operations/a/%2e",
            "projects/p/operations/.%2E",
            "projects/../operations/a",
            "projects/%2E/operations/a",
        ] {
            assert!(Name::parse(bad).is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn dot_segments_are_refused_by_name_and_only_whole() {
        let p = Project::parse("p").unwrap();
        for id in ["..", "a/../b", "a/./b", "%2e%2E", "x/%2E"] {
            let e = Name::new(&p, id).unwrap_err();
            assert!(e.to_string().contains("dot segment"), "{id}: {e}");
        }
        assert!(Project::parse("..").is_err());
        // Dots inside a segment are ordinary characters.
        for id in ["...", "a..b", ".hidden", "v1.2/..x", "%2E%2E%2E"] {
            assert!(Name::new(&p, id).is_ok(), "{id} refused");
        }
    }

    #[test]
    fn generated_ids_are_24_upper_alphanumerics() {
        let p = Project::parse("p").unwrap();
        let a = Name::generate(&p);
        let b = Name::generate(&p);
        assert_ne!(a, b);
        assert_eq!(a.id().len(), 24);
        assert!(
            a.id()
                .bytes()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        );
    }
}
