//! The console's fixed routes: `GET /metrics` and `GET /readyz` (contract section 13), and
//! the layer that counts and times every HTTP request and gRPC call.

use crate::auth::iam::Permission;
use crate::error::ApiError;
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
    let mut response = rest::json_body(&serde_json::json!({"status": text}));
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
/// headers; a stream's lifetime is not its latency).
pub async fn track(State(app): State<App>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let metrics = app.console.metrics.clone();
    if is_grpc(&request) {
        let method = request.uri().path().trim_start_matches('/').to_string();
        let response = next.run(request).await;
        let code = response
            .headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("0")
            .to_string();
        metrics.grpc_request(&method, &code);
        return response;
    }
    let method = method_id(request.method(), request.uri().path());
    let response = next.run(request).await;
    metrics.http_request(&method, response.status().as_u16(), started.elapsed());
    response
}
