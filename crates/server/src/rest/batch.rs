//! `POST /batch`: several REST calls in one request, as Google's batch endpoint takes them
//! and the Earth Engine JavaScript client sends them (several gets or cancels at once). The
//! body is `multipart/mixed`; each part is an `application/http` request (request line,
//! headers, body); the answer is `multipart/mixed` too, each part the HTTP response of the
//! part with the same position, `Content-ID: <response-ID>` for a part's `Content-ID: <ID>`.
//! Each call goes through the same dispatch as on its own, with the outer request's
//! `Authorization` unless it has its own; the answer is bounded by [`MAX_RESPONSE_BYTES`].
//! Written here because no maintained crate parses
//! multipart/mixed bodies of embedded HTTP messages (the multipart crates serve forms).

use super::{App, dispatch};
use crate::kit::body;
use crate::kit::error::ApiError;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, header};
use http_body_util::BodyExt;
use longrun_types::Code;

/// Most calls one batch may carry.
const MAX_CALLS: usize = 100;

/// Most bytes of a batch's answer (its parts with their heads and bodies): 8 MiB. The first
/// part is answered whole; a later part whose answer would take the whole past this is
/// answered 429 `RESOURCE_EXHAUSTED` (reason `BATCH_RESPONSE_TOO_LARGE`) in its place, and
/// the calls after it are not made and answer the same. An answer is read only up to the
/// room left, so a batch's answer never grows past this, its first part and those short
/// errors.
pub const MAX_RESPONSE_BYTES: usize = 8 << 20;

const BOUNDARY: &str = "batch_longrun_response";

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::invalid("INVALID_BATCH", message)
}

/// The boundary of a `multipart/mixed` content type.
fn boundary(headers: &HeaderMap) -> Result<String, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let mut params = content_type.split(';').map(str::trim);
    if !params
        .next()
        .is_some_and(|t| t.eq_ignore_ascii_case("multipart/mixed"))
    {
        return Err(invalid("a batch is multipart/mixed"));
    }
    params
        .find_map(|p| {
            let (key, value) = p.split_once('=')?;
            key.trim()
                .eq_ignore_ascii_case("boundary")
                .then(|| value.trim().trim_matches('"').to_string())
        })
        .filter(|b| !b.is_empty())
        .ok_or_else(|| invalid("the multipart/mixed content type names no boundary"))
}

/// Splits at the first blank line: (head, rest).
fn split_head(text: &str) -> (&str, &str) {
    for separator in ["\r\n\r\n", "\n\n"] {
        if let Some(at) = text.find(separator) {
            return (&text[..at], &text[at + separator.len()..]);
        }
    }
    (text, "")
}

fn header_lines(head: &str) -> impl Iterator<Item = (&str, &str)> {
    head.lines().filter_map(|line| {
        let (name, value) = line.split_once(':')?;
        Some((name.trim(), value.trim()))
    })
}

/// One part: its Content-ID and the request it carries.
struct Call {
    content_id: Option<String>,
    request: Request,
}

fn parse_part(part: &str, outer: &HeaderMap) -> Result<Call, ApiError> {
    let (part_head, http_message) = split_head(part.trim_start_matches(['\r', '\n']));
    let content_id = header_lines(part_head)
        .find(|(n, _)| n.eq_ignore_ascii_case("content-id"))
        .map(|(_, v)| v.trim_matches(['<', '>']).to_string());
    let (request_head, request_body) = split_head(http_message);
    let mut lines = request_head.lines();
    let request_line = lines.next().unwrap_or_default();
    let mut words = request_line.split_whitespace();
    let (Some(method), Some(target)) = (words.next(), words.next()) else {
        return Err(invalid(format!(
            "a batch part's request line `{request_line}` is not `METHOD PATH HTTP/1.1`"
        )));
    };
    let method = http::Method::from_bytes(method.as_bytes())
        .map_err(|_| invalid(format!("`{method}` is not an HTTP method")))?;
    // A full URL keeps only its path and query.
    let target = match target.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |at| &rest[at..]),
        None => target,
    };
    let mut builder = Request::builder().method(method).uri(target);
    let mut authorized = false;
    for (name, value) in header_lines(request_head.split_once('\n').map_or("", |(_, h)| h)) {
        authorized |= name.eq_ignore_ascii_case("authorization");
        builder = builder.header(name, value);
    }
    if !authorized && let Some(value) = outer.get(header::AUTHORIZATION) {
        builder = builder.header(header::AUTHORIZATION, value);
    }
    let request = builder
        .body(Body::from(
            request_body.trim_end_matches(['\r', '\n']).to_string(),
        ))
        .map_err(|e| invalid(format!("a batch part's request is malformed: {e}")))?;
    Ok(Call {
        content_id,
        request,
    })
}

pub async fn handle(State(app): State<App>, request: Request) -> Response {
    match run(&app, request).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn run(app: &App, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let boundary = boundary(&parts.headers)?;
    let bytes = body::read(body).await?;
    let text = std::str::from_utf8(&bytes).map_err(|_| invalid("a batch body is UTF-8 text"))?;
    let delimiter = format!("--{boundary}");
    let mut sections = text.split(delimiter.as_str());
    sections.next(); // the preamble
    let mut calls = Vec::new();
    for section in sections {
        if section.starts_with("--") {
            break; // the closing delimiter
        }
        calls.push(parse_part(section, &parts.headers)?);
    }
    if calls.is_empty() || calls.len() > MAX_CALLS {
        return Err(invalid(format!(
            "a batch carries 1 to {MAX_CALLS} calls, not {}",
            calls.len()
        )));
    }
    let mut out = Vec::new();
    // The part (counted from 0) whose answer did not fit: it and those after it answer
    // `too_large` in its place.
    let mut full_at = None;
    for (index, call) in calls.into_iter().enumerate() {
        if let Some(at) = full_at {
            let skipped = too_large(index, at, false).into_response();
            let part = part(call.content_id.as_deref(), skipped, usize::MAX).await;
            out.extend(part.expect("no limit"));
            continue;
        }
        let response = match dispatch(app, call.request).await {
            Ok(response) => response,
            Err(e) => e.into_response(),
        };
        // The first part is answered whole, so a call sent alone always gets its answer.
        let room = match index {
            0 => usize::MAX,
            _ => MAX_RESPONSE_BYTES.saturating_sub(out.len() + CLOSING.len()),
        };
        match part(call.content_id.as_deref(), response, room).await {
            Some(part) => out.extend(part),
            None => {
                full_at = Some(index);
                let left_out = too_large(index, index, true).into_response();
                let part = part(call.content_id.as_deref(), left_out, usize::MAX).await;
                out.extend(part.expect("no limit"));
            }
        }
    }
    out.extend_from_slice(CLOSING.as_bytes());
    let mut response = (http::StatusCode::OK, out).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("multipart/mixed; boundary=batch_longrun_response"),
    );
    Ok(response)
}

/// The closing delimiter of the answer.
const CLOSING: &str = "--batch_longrun_response--\r\n";

/// The error a part answers when the batch's answer has no room for it: part `index`,
/// the answer having filled up at part `at`; `ran` when the call was made (its own answer
/// is the one that did not fit).
fn too_large(index: usize, at: usize, ran: bool) -> ApiError {
    let message = if ran {
        format!(
            "the answer to this call (part {index} of the batch, counted from 0) would take \
             the batch's answer past {MAX_RESPONSE_BYTES} bytes, so it is left out; the call \
             was made: send it again on its own or in another batch"
        )
    } else {
        format!(
            "the batch's answer filled its {MAX_RESPONSE_BYTES} bytes at part {at} (counted \
             from 0), so this call (part {index}) was not made: send it again in another batch"
        )
    };
    ApiError::new(Code::ResourceExhausted, "BATCH_RESPONSE_TOO_LARGE", message)
        .with("limitBytes", MAX_RESPONSE_BYTES.to_string())
        .with("part", index.to_string())
}

/// One part of the answer: the `application/http` rendering of `response`, or `None` when
/// it would be longer than `room` bytes (its body is read only up to there).
async fn part(content_id: Option<&str>, response: Response, room: usize) -> Option<Vec<u8>> {
    use std::fmt::Write;
    let (head, body) = response.into_parts();
    let mut text = format!("--{BOUNDARY}\r\nContent-Type: application/http\r\n");
    if let Some(id) = content_id {
        let _ = write!(text, "Content-ID: <response-{id}>\r\n");
    }
    let _ = write!(
        text,
        "\r\nHTTP/1.1 {} {}\r\n",
        head.status.as_u16(),
        head.status.canonical_reason().unwrap_or_default()
    );
    for (name, value) in &head.headers {
        let _ = write!(text, "{name}: {}\r\n", value.to_str().unwrap_or_default());
    }
    // The head, `Content-Length: N` with N of up to 20 digits, the blank line, the body and
    // its line end.
    let framing = text.len() + "Content-Length: \r\n\r\n\r\n".len() + 20;
    let body = http_body_util::Limited::new(body, room.checked_sub(framing)?)
        .collect()
        .await
        .ok()?
        .to_bytes();
    let _ = write!(text, "Content-Length: {}\r\n\r\n", body.len());
    let mut part = text.into_bytes();
    part.extend_from_slice(&body);
    part.extend_from_slice(b"\r\n");
    Some(part)
}
