//! The storage conformance suite, written once. Each backend instantiates it with
//! [`conformance_suite!`](crate::conformance_suite), passing an async expression that yields
//! `Some((store, guard))`, or `None` to skip (a backend whose database is not configured
//! prints why); the guard (a temporary directory, a database schema) lives as long as the
//! test.

use crate::{
    Cursor, Error, Inserted, LeaseQuery, ListQuery, NewOperation, ServiceAccount, Start, Store,
};
use longrun_types::filter;
use longrun_types::operation::{Outcome, Status};
use longrun_types::{Code, Event, Lease, Name, Operation, Project, State, Timestamp};
use std::collections::HashSet;
use std::sync::Arc;

/// Instantiates the suite: one `#[tokio::test]` per case, named after it, and
/// `every_case_is_in_the_suite`, which fails when a `pub async fn` of
/// `crates/store/src/conformance/*.rs` is missing from the list below (the only list of
/// cases) or the list names one that is not there.
#[macro_export]
macro_rules! conformance_suite {
    (@cases [$($then:tt)*]) => {
        $crate::conformance_suite!($($then)*;
            insert_then_get_returns_the_whole_record,
            insert_batch_is_all_or_nothing,
            request_ids_deduplicate_per_project,
            names_are_unique,
            queue_limit_counts_pending_operations,
            queue_limit_counts_operations_put_back_by_a_retry,
            concurrent_inserts_keep_every_insert_rule,
            update_is_a_compare_and_set,
            concurrent_updates_have_exactly_one_winner,
            delete_is_a_compare_and_set,
            list_pages_in_order_without_skips_or_repeats,
            list_filters_agree_with_the_reference_semantics,
            name_filters_match_ids_as_typed,
            retries_are_kept_and_filtered,
            expire_removes_only_old_done_operations,
            payload_is_kept_apart,
            lease_takes_priority_then_age_within_limits,
            due_finds_expired_leases_and_passed_deadlines,
            scan_then_import_copies_every_operation,
            service_accounts_are_kept,
            lease_keeps_to_the_given_projects,
            text_no_backend_can_index_is_refused_alike,
            awkward_values_round_trip_exactly,
            assets_keep_to_their_folders,
            assets_move_with_their_contents,
            values_past_their_limits_are_refused_alike,
            project_export_caps_are_kept,
            lease_caps_exports_per_project,
            the_project_registry_is_kept,
            lease_takes_turns_across_projects,
            lease_limits_each_concurrency_key,
            lease_limits_keys_with_turns_across_projects,
            concurrent_leases_keep_key_limits,
            concurrency_keys_are_kept_and_filtered,
            running_counts_what_leases_are_limited_by,
            lease_waits_for_the_schedule_time,
            start_deadlines_are_due_and_never_leased,
            schedule_fields_are_kept_and_filtered,
            schedules_are_kept_and_listed_by_name,
            schedule_updates_are_a_compare_and_set,
            due_schedules_come_by_next_fire_time,
            operations_keep_their_schedule_and_filter_by_it,
            queue_counts_follow_every_change,
            queue_counts_are_exact_under_concurrent_changes,
            state_counts_follow_every_change,
            paused_queues_are_not_leased,
            children_need_an_open_parent_and_mark_it,
            children_are_leased_only_under_a_running_parent,
            a_parent_that_closes_records_its_cascade
        );
    };
    (@each $make:expr; $($test:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                let Some((store, _guard)) = $make.await else { return };
                $crate::conformance::$test(::std::sync::Arc::new(store)).await;
            }
        )*

        #[test]
        fn every_case_is_in_the_suite() {
            $crate::conformance::check_cases(&[$(stringify!($test)),*]);
        }
    };
    ($make:expr) => {
        $crate::conformance_suite!(@cases [@each $make]);
    };
}

/// Where the cases are defined: read by [`check_cases`] when a backend's tests run.
const SOURCES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/conformance");

/// Panics unless `listed` (the suite's list) names exactly the `pub async fn`s of the
/// files in [`SOURCES`]: a case written but not listed would never run.
pub fn check_cases(listed: &[&str]) {
    let mut defined = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(SOURCES).expect("the conformance sources are readable") {
        let path = entry.expect("a directory entry").path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("a conformance source is readable");
        for line in text.lines() {
            if let Some(rest) = line.trim_start().strip_prefix("pub async fn ") {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                defined.insert(name);
            }
        }
    }
    let listed: std::collections::BTreeSet<String> =
        listed.iter().map(|name| name.to_string()).collect();
    let unlisted: Vec<_> = defined.difference(&listed).collect();
    let undefined: Vec<_> = listed.difference(&defined).collect();
    assert!(
        unlisted.is_empty() && undefined.is_empty(),
        "conformance_suite! must list every case: not listed {unlisted:?}, not defined {undefined:?}"
    );
}

mod assets;
mod batch;
mod leasing;
mod list;
mod operations;
mod projects;
mod queues;
mod schedule;
mod schedules;
mod trees;

pub use assets::*;
pub use batch::*;
pub use leasing::*;
pub use list::*;
pub use operations::*;
pub use projects::*;
pub use queues::*;
pub use schedule::*;
pub use schedules::*;
pub use trees::*;

fn project(p: &str) -> Project {
    Project::parse(p).unwrap()
}
fn operation(p: &str, id: &str, created: i64) -> Operation {
    Operation::new(
        Name::new(&project(p), id).unwrap(),
        "EXPORT_IMAGE".into(),
        Timestamp(created),
    )
}
fn new(op: Operation) -> NewOperation {
    NewOperation {
        operation: op,
        payload: serde_json::json!({}),
        max_queued: 1_000_000,
    }
}
async fn created<S: Store>(store: &S, op: Operation) -> Operation {
    match store.insert(new(op)).await.unwrap() {
        Inserted::Created(op) => op,
        other => panic!("expected Created, got {other:?}"),
    }
}
fn done(mut op: Operation, state: State, at: i64) -> Operation {
    let outcome = match state {
        State::Succeeded => Outcome::Response(serde_json::json!({"@type": "t", "x": 1})),
        State::Cancelled => Outcome::Error(Status::new(Code::Cancelled, "cancelled")),
        _ => Outcome::Error(Status::new(Code::Internal, "boom")),
    };
    op.move_to(state, Some(outcome), Timestamp(at));
    op
}
fn leasing(types: &[&str], limit: usize, max_running: u64, expire: i64) -> LeaseQuery {
    LeaseQuery {
        types: types.iter().map(|t| t.to_string()).collect(),
        now: Timestamp(expire - 10),
        limit,
        max_running,
        projects: None,
        max_exports: 0,
        key_limits: Default::default(),
        start: Arc::new(move |mut op: Operation| {
            op.apply(Event::Lease, None, Timestamp(expire - 10));
            op.lease = Some(Lease {
                id: format!("lease-{}", op.name.id()),
                worker: "w".into(),
                expire_time: Timestamp(expire),
                duration_ms: 10,
            });
            op
        }),
    }
}
async fn created_op<S: Store>(store: &S, op: Operation) -> Operation {
    created(store, op).await
}

#[cfg(test)]
mod tests {
    #[test]
    #[should_panic(expected = "not listed")]
    fn a_case_left_out_of_the_list_fails_the_check() {
        super::check_cases(&["names_are_unique"]);
    }
}
