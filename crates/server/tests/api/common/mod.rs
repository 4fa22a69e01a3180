//! The API suite's own checks; its servers are the test kit's.

pub use longrun_testkit::server::{TestServer, shared};
use serde_json::Value;

/// The error envelope (docs/errors.md#the-envelope), with one ErrorInfo.
pub fn envelope(http: u16, status: &str, reason: &str, message: &str, metadata: Value) -> Value {
    serde_json::json!({"error": {
        "code": http,
        "message": message,
        "status": status,
        "details": [{
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": reason,
            "domain": "longrun",
            "metadata": metadata,
        }],
    }})
}

/// True for `YYYY-MM-DDTHH:MM:SS.sssZ`.
pub fn is_timestamp(v: &Value) -> bool {
    let Some(s) = v.as_str() else { return false };
    let b = s.as_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}
