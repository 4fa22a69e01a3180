//! The `longrun` binary's tests, as users run it: `longrun serve` as a child process on
//! port 0, the CLI's commands, and Google's own Python clients (tests/python) against it.

mod console;
mod container;
mod earthengine;
mod ee_emulator;
mod google_auth;
mod grpc_client;
mod openapi;
mod process;
mod projects;
mod queues;
mod remote_auth;
mod schedules;
mod storage_faults;
mod telemetry;
mod tls;
