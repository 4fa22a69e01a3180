//! Logs and traces. `init` installs the process's `tracing` subscriber: the log on stderr,
//! as text or JSON lines (`[log] format`), filtered by `LONGRUN_LOG`; and, only when an OTLP
//! endpoint is configured (`[tracing] otlp_endpoint`), the export of spans over OTLP/gRPC in
//! batches. `layer` is the HTTP layer that gives every request and gRPC call its span
//! (continuing a client's W3C `traceparent`) and writes the request log line (`debug`, target
//! `longrun_server::request`). Engine and store work inside a request are its child spans.
//!
//! Off by default, and then free: no span is created when nothing is exported (the log never
//! records spans), and the request line is a disabled `debug` event unless asked for.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde::Deserialize;
use tracing::Level;
use tracing::subscriber::Interest;
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
