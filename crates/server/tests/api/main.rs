//! API tests: a real server on port 0, driven over HTTP, whole JSON bodies compared.

mod auth;
mod batch_cancel;
mod command;
mod common;
mod connections;
mod data_dir;
mod earthengine;
mod emulator;
mod encodings;
mod errors;
mod gate;
mod grpc;
mod jwks;
mod keys;
mod limits;
mod list;
mod metrics;
mod operations;
mod page;
mod postgres;
mod projects;
mod response_types;
mod sdk;
mod simulate;
mod watch;
mod workers;
