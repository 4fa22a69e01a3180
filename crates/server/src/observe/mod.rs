//! What operators observe: `metrics` (the one registry of every series, and the engine's
//! observer that feeds it), `endpoints` (`GET /metrics`, `GET /readyz`) and `telemetry`
//! (the process's log and trace export). The HTTP layers that count and trace each request
//! sit above the adapters, in `layers`.

pub mod endpoints;
pub mod metrics;
pub mod telemetry;
