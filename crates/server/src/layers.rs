//! The outermost HTTP layers, above both adapters. [`resolve`] resolves each request once
//! (the REST router's `Route` and its method id, a fixed route's name, or a gRPC call's
//! served method) into the request's extensions ([`Resolved`]), where [`trace`] (its span
//! and log line), [`count`] (its metrics) and the REST dispatcher read it. Labels come
//! from closed sets: a discovery method id, a fixed route's name, a served gRPC method, or
//! `unknown`.

use crate::calls::{App, Resolved};
use crate::observe::telemetry::REQUEST_TARGET;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, Method, header};
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use std::borrow::Cow;
use std::time::Instant;
use tracing::field::Empty;
use tracing::{Instrument, Level};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Resolves the request once (see the module docs) and passes it on.
pub async fn resolve(mut request: Request, next: Next) -> Response {
    let resolved = if is_grpc(&request) {
        Resolved {
            method_id: Cow::Borrowed("unknown"),
            grpc_method: crate::grpc::served_method(request.uri().path()).unwrap_or("unknown"),
            route: None,
        }
    } else {
        resolve_rest(request.method(), request.uri().path())
    };
    request.extensions_mut().insert(resolved);
    next.run(request).await
}

/// What [`resolve`] put in the request (resolved again if a request missed it).
fn resolved(request: &Request) -> Cow<'_, Resolved> {
    match request.extensions().get::<Resolved>() {
        Some(resolved) => Cow::Borrowed(resolved),
        None => Cow::Owned(resolve_rest(request.method(), request.uri().path())),
    }
}

/// A REST request's route and method id: discovery's (`operations.get`), the fixed route's
/// name, or `unknown` for what no route serves.
fn resolve_rest(method: &Method, path: &str) -> Resolved {
    let fixed = match path {
        "/" => "page",
        "/healthz" => "healthz",
        "/readyz" => "readyz",
        "/metrics" => "metrics",
        "/token" => "token",
        "/batch" => "batch",
        "/$discovery/rest" => "discovery",
        "/openapi.json" => "openapi",
        _ if path.starts_with("/assets/") => "page",
        _ => {
            let route = crate::rest::route(method, path).ok();
            return Resolved {
                method_id: route
                    .as_ref()
                    .map_or(Cow::Borrowed("unknown"), |(_, r)| r.meta().method_id),
                grpc_method: "unknown",
                route,
            };
        }
    };
    Resolved {
        method_id: Cow::Borrowed(fixed),
        grpc_method: "unknown",
        route: None,
    }
}

/// Whether a request is a gRPC call.
pub fn is_grpc(request: &Request) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

/// The layer: counts every request by method and status, and times it (to the response
/// headers; a stream's lifetime is not its latency). Labels come from closed sets: an HTTP
/// request's method is a discovery method id, a fixed route's name or `unknown`; a gRPC
/// call's is a served `service/Method` or `unknown`, and its code is the status the caller
/// got (see [`grpc_code`]).
pub async fn count(State(app): State<App>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let metrics = app.metrics.clone();
    if is_grpc(&request) {
        let method = resolved(&request).grpc_method;
        let response = next.run(request).await;
        // A call that failed at once answers its status in the headers (trailers-only);
        // any other carries it in the trailers at the end of its body.
        if let Some(code) = response.headers().get("grpc-status") {
            metrics.grpc_request(method, grpc_code(Some(code)));
            return response;
        }
        let (parts, body) = response.into_parts();
        let counted = CountedAtEnd {
            body,
            count: Some(Box::new(move |code| metrics.grpc_request(method, code))),
        };
        return Response::from_parts(parts, axum::body::Body::new(counted));
    }
    let method = resolved(&request).method_id.clone();
    let response = next.run(request).await;
    metrics.http_request(&method, response.status().as_u16(), started.elapsed());
    response
}

/// The google.rpc code a `grpc-status` value states, as a label: `0` to `16`; a value that
/// is none of them, or none at all where one is due, is `2` (UNKNOWN), as a client reads it.
fn grpc_code(value: Option<&HeaderValue>) -> &'static str {
    const CODES: [&str; 17] = [
        "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
    ];
    value
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .and_then(|code| CODES.get(code).copied())
        .unwrap_or("2")
}

/// A gRPC response body that counts its call once the status is known: from the trailers
/// as they pass; `2` (UNKNOWN) if the body ends or fails without them; `1` (CANCELLED) if it
/// is dropped before its end (the caller went away, or the server shut down).
struct CountedAtEnd {
    body: axum::body::Body,
    count: Option<Box<dyn FnOnce(&'static str) + Send>>,
}

impl CountedAtEnd {
    fn count(&mut self, code: &'static str) {
        if let Some(count) = self.count.take() {
            count(code);
        }
    }
}

impl axum::body::HttpBody for CountedAtEnd {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let frame = std::task::ready!(std::pin::Pin::new(&mut self.body).poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let Some(trailers) = frame.trailers_ref() {
                    let code = grpc_code(trailers.get("grpc-status"));
                    self.count(code);
                }
            }
            Some(Err(_)) | None => self.count("2"),
        }
        std::task::Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for CountedAtEnd {
    fn drop(&mut self) {
        self.count("1");
    }
}

/// The layer: one span per HTTP request or gRPC call, the child of the caller's span when
/// the request carries a W3C `traceparent`; and the request log line.
///
/// An HTTP request's span is named by its discovery method id (`operations.cancel`, the
/// `method` label of `longrun_http_requests_total`) with `http.request.method`,
/// `http.route` (`/v1/{+name}:cancel`), `url.path` (never the query, which may hold a
/// token), `http.response.status_code`, and `longrun.operation.name` when the path names
/// an operation; a 5xx sets the span's status to error. A gRPC call's span is named
/// `{service}/{method}` with `rpc.system`, `rpc.service`, `rpc.method` and
/// `rpc.grpc.status_code` (from the response headers: a streaming call's span ends when
/// its stream starts). Both are `server` spans.
pub async fn trace(request: Request, next: Next) -> Response {
    if is_grpc(&request) {
        return grpc_call(request, next).await;
    }
    let started = Instant::now();
    let span = tracing::info_span!(
        target: REQUEST_TARGET,
        "request",
        otel.name = Empty,
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = %request.method(),
        http.route = Empty,
        url.path = request.uri().path(),
        http.response.status_code = Empty,
        longrun.operation.name = Empty,
    );
    let logged = tracing::enabled!(target: REQUEST_TARGET, Level::DEBUG);
    if span.is_disabled() && !logged {
        return next.run(request).await;
    }
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let resolved = resolved(&request);
    let id = resolved.method_id.clone();
    if !span.is_disabled() {
        span.record("otel.name", &*id);
        if let Some(template) = route_template(&id, &method, &path) {
            span.record("http.route", template);
        }
        if let Some((_, route)) = &resolved.route
            && let Some(name) = route.meta().operation
        {
            span.record("longrun.operation.name", name.as_str());
        }
        let _ = span.set_parent(parent(request.headers()));
    }
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    span.record("http.response.status_code", i64::from(status));
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
    tracing::debug!(
        target: REQUEST_TARGET,
        method = %method,
        path = %path,
        id = %id,
        status,
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    response
}

async fn grpc_call(request: Request, next: Next) -> Response {
    let call = request.uri().path().trim_start_matches('/').to_string();
    let span = tracing::info_span!(
        target: REQUEST_TARGET,
        "grpc",
        otel.name = call.as_str(),
        otel.kind = "server",
        otel.status_code = Empty,
        rpc.system = "grpc",
        rpc.service = Empty,
        rpc.method = Empty,
        rpc.grpc.status_code = Empty,
    );
    let logged = tracing::enabled!(target: REQUEST_TARGET, Level::DEBUG);
    if span.is_disabled() && !logged {
        return next.run(request).await;
    }
    let started = Instant::now();
    if let Some((service, method)) = call.split_once('/') {
        span.record("rpc.service", service);
        span.record("rpc.method", method);
    }
    let _ = span.set_parent(parent(request.headers()));
    let response = next.run(request).instrument(span.clone()).await;
    let code = response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(0);
    span.record("rpc.grpc.status_code", code);
    // The codes that mean the server failed (OpenTelemetry's gRPC conventions): UNKNOWN,
    // DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS.
    if matches!(code, 2 | 4 | 12 | 13 | 14 | 15) {
        span.record("otel.status_code", "ERROR");
    }
    tracing::debug!(
        target: REQUEST_TARGET,
        call = %call,
        grpc_status = code,
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        "grpc call"
    );
    response
}

/// The caller's trace context from `traceparent` (and `tracestate`); empty without one.
fn parent(headers: &HeaderMap) -> opentelemetry::Context {
    TraceContextPropagator::new().extract(&Headers(headers))
}

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// The path template of the method `id` (`/v1/{+name}:cancel`), from the discovery
/// tables; a fixed route's own path; `None` for what no route serves.
fn route_template(id: &str, method: &Method, path: &str) -> Option<String> {
    if let Some(found) = crate::rest::discovery::all()
        .find(|m| m.http == method.as_str() && crate::emulator::methods::short_id(m) == id)
    {
        let version = path.trim_start_matches('/').split('/').next().unwrap_or("");
        return Some(format!("/{version}/{}", found.path));
    }
    match id {
        "unknown" => None,
        "page" if path != "/" => Some("/assets/{file}".into()),
        _ => Some(path.to_string()),
    }
}
