//! Every input of the fuzz corpus (`fuzz/corpus/<target>/`) through its target's check, as
//! `cargo fuzz run` would start: a regression on the corpus fails here without cargo-fuzz.
//! Targets that take text skip inputs that are not UTF-8, as libFuzzer's `&str` targets do.

use longrun_testkit::fuzz;
use std::panic::AssertUnwindSafe;

/// Runs `check` on every file of `fuzz/corpus/TARGET`, naming the input that fails.
fn replay(target: &str, check: impl Fn(&[u8])) {
    let dir = longrun_testkit::repo_root()
        .join("fuzz/corpus")
        .join(target);
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "no corpus in {}", dir.display());
    for path in inputs {
        let data = std::fs::read(&path).unwrap();
        if let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(|| check(&data))) {
            eprintln!(
                "fuzz/corpus/{target}/{} fails",
                path.file_name().unwrap().display()
            );
            std::panic::resume_unwind(panic);
        }
    }
}

fn text(check: fn(&str)) -> impl Fn(&[u8]) {
    move |data| {
        if let Ok(text) = std::str::from_utf8(data) {
            check(text);
        }
    }
}

#[test]
fn http() {
    replay("http", fuzz::http);
}

#[test]
fn names() {
    replay("names", text(fuzz::names));
}

#[test]
fn filter() {
    replay("filter", text(fuzz::filter));
}

#[test]
fn page_token() {
    replay("page_token", fuzz::page_token);
}

#[test]
fn config() {
    replay("config", text(fuzz::config));
}
