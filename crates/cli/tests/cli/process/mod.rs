//! The `longrun` binary as users run it: start on port 0, SIGTERM, kill -9 and restart on
//! the same data directory, the processes of its commands, several servers on one
//! PostgreSQL, and the `operations` commands with their exit codes.

mod commands;
mod lifecycle;
mod operations;
mod postgres;
mod startup;

use longrun_types::Name;

fn name(id: &str) -> Name {
    Name::parse(&format!("projects/p/operations/{id}")).unwrap()
}
