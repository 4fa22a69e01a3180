//! The fixed routes operators read: `GET /metrics` and `GET /readyz` (docs/watch.md). The
//! layer that counts every request is `layers::count`.

use super::metrics::Metrics;
use crate::auth::Auth;
use crate::auth::iam::Permission;
use crate::kit::error::ApiError;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use longrun_store::Operations;
use longrun_types::Name;
use std::time::Duration;

/// `GET /metrics`: the Prometheus text format. With auth on, the caller needs
/// `longrun.metrics.get` on every project (a binding on `*`), unless `public` (`[metrics]
/// public`).
pub async fn metrics(
    auth: &Auth,
    metrics: &Metrics,
    public: bool,
    store: &dyn longrun_store::Queue,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    let answer = async {
        if !public {
            let caller = auth
                .authenticate(
                    &parts.headers,
                    parts.uri.query(),
                    parts.extensions.get::<crate::tls::PeerCertificate>(),
                )
                .await?;
            auth.check(&caller, Permission::MetricsGet, "*")?;
        }
        let text = metrics
            .render(store)
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
pub async fn readyz(store: &dyn Operations) -> Response {
    let probe = Name::parse("projects/readyz/operations/probe").expect("a valid name");
    let answer = tokio::time::timeout(READY_TIMEOUT, store.get(&probe)).await;
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
