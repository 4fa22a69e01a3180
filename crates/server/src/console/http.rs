//! The console's fixed routes: `GET /metrics` and `GET /readyz` (docs/watch.md), and
//! the layer that counts and times every HTTP request and gRPC call.

use crate::auth::iam::Permission;
use crate::kit::error::ApiError;
use crate::rest::{self, App};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method, StatusCode, header};
use longrun_types::Name;
use std::time::{Duration, Instant};

/// `GET /metrics`: the Prometheus text format. With auth on, the caller needs
/// `longrun.metrics.get` on every project (a binding on `*`), unless `[metrics] public`.
pub async fn metrics(State(app): State<App>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let answer = async {
        if !app.console.metrics_public {
            let caller = app
                .auth
                .authenticate(&parts.headers, parts.uri.query())
                .await?;
            app.auth.check(&caller, Permission::MetricsGet, "*")?;
        }
        let text = app
            .console
            .metrics
            .render(&*app.store, app.console.retention)
            .await
            .map_err(longrun_engine::Error::from)?;
        Ok::<_, ApiError>(text)
    }
    .await;
    match answer {
        Ok(text) => {
            let mut response = (StatusCode::OK, text).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        Err(e) => e.into_response(),
    }
}

/// How long `/readyz` waits for the store.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /readyz`: 200 when the store answers a read within 2 s, 503 otherwise. Public, like
/// `/healthz`.
pub async fn readyz(State(app): State<App>) -> Response {
    let probe = Name::parse("projects/readyz/operations/probe").expect("a valid name");
    let answer = tokio::time::timeout(READY_TIMEOUT, app.store.get(&probe)).await;
    let (status, text) = match answer {
        Ok(Ok(_)) => (StatusCode::OK, "READY"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready: the store fails");
            (StatusCode::SERVICE_UNAVAILABLE, "NOT_READY")
        }
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "NOT_READY"),
    };
    let mut response = crate::kit::json::json_body(&serde_json::json!({"status": text}));
    *response.status_mut() = status;
    response
}

/// Whether a request is a gRPC call.
pub(crate) fn is_grpc(request: &Request) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

/// The method id of a REST request: discovery's (`operations.get`), the fixed route's name,
/// or `unknown` for what no route serves.
pub fn method_id(method: &Method, path: &str) -> String {
    let fixed = match path {
        "/" => "page",
        "/healthz" => "healthz",
        "/readyz" => "readyz",
        "/metrics" => "metrics",
        "/token" => "token",
        "/batch" => "batch",
        "/$discovery/rest" => "discovery",
        _ if path.starts_with("/assets/") => "page",
        _ => {
            return rest::route_of(method, path)
                .map_or("unknown".into(), |r| rest::method_of(&r).0);
        }
    };
    fixed.to_string()
}

/// The layer: counts every request by method and status, and times it (to the response
/// headers; a stream's lifetime is not its latency). Labels come from closed sets: an HTTP
/// request's method is a discovery method id, a fixed route's name or `unknown`; a gRPC
/// call's is a served `service/Method` or `unknown`, and its code is the status the caller
/// got (see [`grpc_code`]).
pub async fn track(State(app): State<App>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let metrics = app.console.metrics.clone();
    if is_grpc(&request) {
        let method = crate::grpc::served_method(request.uri().path()).unwrap_or("unknown");
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
    let method = method_id(request.method(), request.uri().path());
    let response = next.run(request).await;
    metrics.http_request(&method, response.status().as_u16(), started.elapsed());
    response
}

/// The google.rpc code a `grpc-status` value states, as a label: `0` to `16`; a value that
/// is none of them, or none at all where one is due, is `2` (UNKNOWN), as a client reads it.
pub(crate) fn grpc_code(value: Option<&HeaderValue>) -> &'static str {
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
