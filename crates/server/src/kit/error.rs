//! The one place that turns errors into Google's JSON error envelope (AIP-193).

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use longrun_types::Code;
use serde_json::json;

/// The ErrorInfo domain of every error longrun returns.
pub const DOMAIN: &str = "longrun";

#[derive(Debug)]
pub struct ApiError {
    pub code: Code,
    pub message: String,
    pub reason: &'static str,
    pub metadata: Vec<(&'static str, String)>,
    /// An HTTP status other than the code's own (405, 413).
    pub http_status: Option<u16>,
    /// The `Allow` header of a 405.
    pub allow: Option<&'static str>,
    /// A 401: answered with `WWW-Authenticate: Bearer`.
    pub www_authenticate: bool,
    /// A `google.rpc.Help` link after the ErrorInfo: (description, url).
    pub help: Option<Box<(String, String)>>,
}

impl ApiError {
    /// `returnPartialSuccess=true` of a list: every project is reachable, so no partial
    /// answer exists (docs/choices.md).
    pub fn partial_success_unsupported() -> ApiError {
        ApiError::new(
            Code::Unimplemented,
            "NOT_SUPPORTED",
            "returnPartialSuccess is not supported: every project is reachable",
        )
    }

    pub fn new(code: Code, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            reason,
            metadata: Vec::new(),
            http_status: None,
            allow: None,
            www_authenticate: false,
            help: None,
        }
    }

    /// Adds a `google.rpc.Help` link to the error's details.
    pub fn with_help(mut self, description: impl Into<String>, url: impl Into<String>) -> ApiError {
        self.help = Some(Box::new((description.into(), url.into())));
        self
    }

    pub fn invalid(reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(Code::InvalidArgument, reason, message)
    }

    pub fn with(mut self, key: &'static str, value: impl Into<String>) -> ApiError {
        self.metadata.push((key, value.into()));
        self
    }

    /// The error of request `index` of a batch submit: its message starts `requests[i]: `
    /// and its metadata gains `index`, as the engine's `Error::InBatch` gives them.
    pub fn in_batch(mut self, index: usize) -> ApiError {
        self.message = format!("requests[{index}]: {}", self.message);
        self.with("index", index.to_string())
    }

    pub fn not_found_path(path: &str) -> ApiError {
        ApiError::new(
            Code::NotFound,
            "PATH_NOT_FOUND",
            format!("no method is served at {path}"),
        )
        .with("path", path)
    }

    pub fn method_not_allowed(method: &http::Method, allow: &'static str) -> ApiError {
        let mut e = ApiError::new(
            Code::Unimplemented,
            "METHOD_NOT_ALLOWED",
            format!("method {method} is not allowed here; allowed: {allow}"),
        )
        .with("method", method.as_str());
        e.http_status = Some(405);
        e.allow = Some(allow);
        e
    }

    pub fn too_large(limit: usize) -> ApiError {
        let mut e = ApiError::invalid(
            "REQUEST_TOO_LARGE",
            format!("the request body exceeds {limit} bytes"),
        )
        .with("limit", limit.to_string());
        e.http_status = Some(413);
        e
    }

    pub fn status(&self) -> u16 {
        self.http_status.unwrap_or_else(|| self.code.http_status())
    }

    pub fn body(&self) -> serde_json::Value {
        let metadata: serde_json::Map<String, serde_json::Value> = self
            .metadata
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        let mut details = vec![json!({
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": self.reason,
            "domain": DOMAIN,
            "metadata": metadata,
        })];
        if let Some((description, url)) = self.help.as_deref() {
            details.push(json!({
                "@type": "type.googleapis.com/google.rpc.Help",
                "links": [{"description": description, "url": url}],
            }));
        }
        json!({"error": {
            "code": self.status(),
            "message": self.message,
            "status": self.code.name(),
            "details": details,
        }})
    }
}

/// An id or name longer than its limit: 400 `INVALID_ARGUMENT`, reason `TOO_LONG`, with
/// the field and the limit (the engine's answer to the same, for the places that check
/// before any engine call: paths, asset ids, service accounts).
impl From<longrun_types::limits::TooLong> for ApiError {
    fn from(too_long: longrun_types::limits::TooLong) -> ApiError {
        longrun_engine::Error::TooLong(too_long).into()
    }
}

impl From<longrun_engine::Error> for ApiError {
    fn from(e: longrun_engine::Error) -> ApiError {
        if let longrun_engine::Error::Unavailable(detail) = &e {
            tracing::warn!(error = %detail, "storage unavailable");
        }
        if let longrun_engine::Error::Internal(detail) = &e {
            tracing::error!(error = %detail, "internal error");
            return ApiError::new(
                Code::Internal,
                e.reason(),
                "internal error; see the server log",
            );
        }
        ApiError {
            code: e.code(),
            message: e.to_string(),
            reason: e.reason(),
            metadata: e.metadata(),
            http_status: None,
            allow: None,
            www_authenticate: false,
            help: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, super::json::json_body(&self.body())).into_response();
        if let Some(allow) = self.allow {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        if self.www_authenticate {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"longrun\""),
            );
        }
        response
    }
}
