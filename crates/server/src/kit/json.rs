//! Successful JSON answers: the body, its content type, and the empty message `{}`.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

/// A successful JSON response.
pub fn json_body(value: &impl serde::Serialize) -> Response {
    json_bytes(serde_json::to_vec(value).expect("wire types always serialize"))
}

/// A successful response of JSON already encoded.
pub fn json_bytes(bytes: impl Into<Body>) -> Response {
    let mut response = (StatusCode::OK, bytes.into()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    response
}

/// `{}`: the answer of a method whose response is `google.protobuf.Empty`.
pub fn empty() -> Response {
    json_body(&serde_json::json!({}))
}
