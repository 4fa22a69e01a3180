//! Request bodies and query strings: size limit, unknown fields, system parameters.

use super::error::ApiError;
use axum::body::Body;
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use longrun_types::duration;
use serde::de::DeserializeOwned;

/// Largest request body accepted (1 MiB).
pub const MAX_BODY: usize = 1 << 20;

/// Google's system query parameters: accepted everywhere and ignored.
const SYSTEM_PARAMETERS: &[&str] = &[
    "alt",
    "prettyPrint",
    "fields",
    "key",
    "$.xgafv",
    "quotaUser",
    "callback",
    "access_token",
    "oauth_token",
    "uploadType",
    "upload_protocol",
];

pub async fn read(body: Body) -> Result<Bytes, ApiError> {
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(ApiError::too_large(MAX_BODY)),
        Err(e) => Err(ApiError::invalid(
            "INVALID_REQUEST_BODY",
            format!("cannot read the request body: {e}"),
        )),
    }
}

/// Parses a JSON body into `T` (which rejects unknown fields); an empty body is `{}`.
pub fn json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(bytes).map_err(|e| {
        let message = e.to_string();
        let error = ApiError::invalid(
            "INVALID_REQUEST_BODY",
            format!("invalid JSON request body: {message}"),
        );
        // serde names an unknown field as "unknown field `name`, expected …".
        match message
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split_once('`'))
        {
            Some((field, _)) => error.with("field", field),
            None => error,
        }
    })
}

/// The query parameters a method takes, each with its camelCase and snake_case spelling.
pub struct Query {
    values: Vec<(&'static str, String)>,
}

impl Query {
    /// Parses the query string; `known` lists (camelCase, snake_case) pairs. System
    /// parameters are dropped; anything else is a 400 naming the parameter.
    pub fn parse(
        raw: Option<&str>,
        known: &[(&'static str, &'static str)],
    ) -> Result<Query, ApiError> {
        let mut values = Vec::new();
        for (key, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            if SYSTEM_PARAMETERS.contains(&key.as_ref()) {
                continue;
            }
            match known
                .iter()
                .find(|(camel, snake)| key == *camel || key == *snake)
            {
                Some((camel, _)) => values.push((*camel, value.into_owned())),
                None => {
                    return Err(ApiError::invalid(
                        "UNKNOWN_PARAMETER",
                        format!("unknown query parameter `{key}`"),
                    )
                    .with("parameter", key.into_owned()));
                }
            }
        }
        Ok(Query { values })
    }

    /// The last value given for a parameter.
    pub fn get(&self, camel: &str) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(k, _)| *k == camel)
            .map(|(_, v)| v.as_str())
    }
}

/// A duration field of a body or a message (proto3 JSON `"3.5s"`), refused as
/// `INVALID_DURATION` naming the field.
/// An RFC 3339 time given in a body field (`field`, as the API spells it).
pub fn parse_time(field: &str, text: &str) -> Result<longrun_types::Timestamp, ApiError> {
    longrun_types::Timestamp::parse(text).map_err(|e| {
        ApiError::invalid("INVALID_TIME", format!("{field}: {e}")).with("field", field)
    })
}

pub fn parse_duration(field: &str, text: &str) -> Result<std::time::Duration, ApiError> {
    duration::parse(text).map_err(|e| {
        ApiError::invalid("INVALID_DURATION", format!("{field}: {e}")).with("field", field)
    })
}
