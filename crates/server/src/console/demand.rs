//! Why work is waiting: the header that carries the engine's reason
//! (`longrun_engine::Engine::why_waiting`) on a get of a PENDING operation, shown by the
//! page and `longrun operations describe`.

/// The header that says why a PENDING operation waits.
pub const HEADER: &str = "x-longrun-waiting";
