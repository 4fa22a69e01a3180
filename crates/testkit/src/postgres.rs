//! A fresh PostgreSQL schema per test: the store's own helper
//! (`longrun_store_postgres::testing`), which its conformance suite uses too.

pub use longrun_store_postgres::testing::{DATABASE_URL, Schema};
