//! What longrun's test suites share, written once: servers, schemas, fixtures and the fuzz
//! targets' checks. A dev-dependency of the crates whose tests use it (and a dependency of
//! the fuzz crate); never published.
//!
//! - [`server`]: a real server started in-process on 127.0.0.1:0 with a temporary data
//!   directory ([`TestServer`]), and one shared by every case of a property test;
//! - [`process`]: `longrun serve` as a child process, the CLI's commands, and the processes
//!   a test looks for in `/proc`;
//! - [`postgres`]: a fresh schema in the test database (`LONGRUN_TEST_DATABASE_URL`);
//! - [`auth`]: service accounts and their key files, signed assertions and their exchange
//!   at `/token`, an identity provider's key and JWKS;
//! - [`python`]: the test Python (`LONGRUN_TEST_PYTHON`) and the scripts in tests/python;
//! - [`fuzz`]: the check of each fuzz target, which `fuzz/` runs under libFuzzer and this
//!   crate's tests replay over `fuzz/corpus`.

pub mod auth;
pub mod fuzz;
pub mod postgres;
pub mod process;
pub mod python;
pub mod server;
pub mod tls;

pub use server::TestServer;

use std::path::PathBuf;

/// The repository's root directory (for tests/python, examples/, fuzz/corpus, README.md).
pub fn repo_root() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}
