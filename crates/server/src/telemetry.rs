//! Logs and traces. `init` installs the process's `tracing` subscriber: the log on stderr,
//! as text or JSON lines (`[log] format`), filtered by `LONGRUN_LOG`; and, only when an OTLP
//! endpoint is configured (`[tracing] otlp_endpoint`), the export of spans over OTLP/gRPC in
//! batches. `layer` is the HTTP layer that gives every request and gRPC call its span
//! (continuing a client's W3C `traceparent`) and writes the request log line (`debug`, target
//! `longrun_server::request`). Engine and store work inside a request are its child spans.
//!
//! Off by default, and then free: no span is created when nothing is exported (the log never
//! records spans), and the request line is a disabled `debug` event unless asked for.

use crate::rest;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderMap, Method};
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde::Deserialize;
use std::time::Instant;
use tracing::field::Empty;
use tracing::subscriber::Interest;
use tracing::{Instrument, Level};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{DynFilterFn, EnvFilter, FilterExt, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

/// The target of the request log line: `LONGRUN_LOG=info,longrun_server::request=debug`
/// turns it on.
pub const REQUEST_TARGET: &str = "longrun_server::request";

/// `[log]`: how the server writes its log (stderr; which events is `LONGRUN_LOG`'s
/// `tracing` filter, default `info`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` (the default) or `json` (`--log-format`, `LONGRUN_LOG_FORMAT`).
    pub format: LogFormat,
}

/// The form of a log line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event (colours on a terminal).
    #[default]
    Text,
    /// One JSON object per line: `timestamp` (RFC 3339, UTC), `level` (`INFO`, …), `target`
    /// (the module), `message`, and the event's other fields at the top level.
    Json,
}

/// `[tracing]`: OTLP trace export, off unless an endpoint is set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TracingConfig {
    /// The OTLP/gRPC collector to send spans to, `http://HOST:PORT` (the OTLP port is 4317;
    /// plain HTTP/2, no TLS) (`--otlp-endpoint`, `OTEL_EXPORTER_OTLP_ENDPOINT`). Unset: no
    /// export. The SDK's other standard variables apply (`OTEL_EXPORTER_OTLP_HEADERS`,
    /// `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_BSP_SCHEDULE_DELAY` (ms between batches, default
    /// 5000), `OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_RESOURCE_ATTRIBUTES`).
    pub otlp_endpoint: Option<String>,
    /// The `service.name` of the exported spans; default `OTEL_SERVICE_NAME`, else `longrun`.
    pub service_name: Option<String>,
}

/// What `init` set up; `shutdown` flushes the spans not yet exported.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports what is still queued and stops the exporter (waits up to the export timeout,
    /// `OTEL_EXPORTER_OTLP_TIMEOUT`, 10 s by default). Call before the runtime ends: the
    /// exporter's connection runs on it.
    pub async fn shutdown(self) {
        if let Some(provider) = self.provider {
            let done = tokio::task::spawn_blocking(move || provider.shutdown()).await;
            if let Ok(Err(e)) = done {
                tracing::warn!(error = %e, "could not flush the spans to the OTLP endpoint");
            }
        }
    }
}

/// Installs the global `tracing` subscriber: the log in `log.format`, and the OTLP export
/// when `tracing.otlp_endpoint` is set. Needs a Tokio runtime (the exporter's channel runs
/// on it). Errors: an endpoint that is not an `http://` URI. Call once per process.
pub fn init(log: &LogConfig, tracing: &TracingConfig) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_from_env("LONGRUN_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // The log shows events only: spans exist for the export.
    let filter = filter.and(filter_fn(|metadata| !metadata.is_span()));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let log_layer = match log.format {
        LogFormat::Text => fmt
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_filter(filter)
            .boxed(),
    };
    let provider = match &tracing.otlp_endpoint {
        Some(endpoint) => Some(provider(endpoint, tracing.service_name.as_deref())?),
        None => None,
    };
    let export_layer = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("longrun"))
            .with_location(false)
            .with_threads(false)
            .with_filter(
                // Spans and `info` and above events of this workspace's crates, inside a
                // request: work nothing asked for (the built-in workers' polls, sweeps)
                // makes no trace.
                DynFilterFn::new(|metadata, cx| {
                    (metadata.is_span() && metadata.target() == REQUEST_TARGET)
                        || cx.lookup_current().is_some()
                })
                .with_callsite_filter(|metadata| {
                    if *metadata.level() <= Level::INFO && metadata.target().starts_with("longrun")
                    {
                        Interest::sometimes()
                    } else {
                        Interest::never()
                    }
                })
                .with_max_level_hint(Level::INFO),
            )
    });
    Registry::default()
        .with(log_layer)
        .with(export_layer)
        .try_init()?;
    if let Some(endpoint) = &tracing.otlp_endpoint {
        tracing::info!(%endpoint, "exporting traces over OTLP");
    }
    Ok(Telemetry { provider })
}

/// The tracer provider exporting to `endpoint` in batches.
fn provider(endpoint: &str, service_name: Option<&str>) -> anyhow::Result<SdkTracerProvider> {
    use opentelemetry_otlp::WithExportConfig;
    anyhow::ensure!(
        endpoint.starts_with("http://"),
        "tracing.otlp_endpoint `{endpoint}` must be an http:// URI (OTLP over gRPC, no TLS)"
    );
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| anyhow::anyhow!("tracing.otlp_endpoint `{endpoint}`: {e}"))?;
    let mut resource = opentelemetry_sdk::Resource::builder();
    match service_name {
        Some(name) => resource = resource.with_service_name(name.to_string()),
        None if std::env::var_os("OTEL_SERVICE_NAME").is_none() => {
            resource = resource.with_service_name("longrun")
        }
        None => {}
    }
    Ok(SdkTracerProvider::builder()
        .with_resource(resource.build())
        .with_batch_exporter(exporter)
        .build())
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
pub async fn layer(request: Request, next: Next) -> Response {
    if crate::console::http::is_grpc(&request) {
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
    let route = rest::route_of(&method, &path);
    let id = match &route {
        Some(route) => rest::method_of(route).0,
        None => crate::console::http::method_id(&method, &path),
    };
    if !span.is_disabled() {
        span.record("otel.name", id.as_str());
        if let Some(template) = route_template(&id, &method, &path) {
            span.record("http.route", template);
        }
        if let Some(name) = route.as_ref().and_then(operation_of) {
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

/// The operation a route names, if it names one.
fn operation_of(route: &rest::Route) -> Option<&longrun_types::Name> {
    use rest::Route::*;
    match route {
        Get(name) | Delete(name) | Cancel(name) | Wait(name) | Heartbeat(name) | Complete(name)
        | Release(name) | Output(name) => Some(name),
        _ => None,
    }
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
    if let Some(found) = rest::discovery::all()
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
