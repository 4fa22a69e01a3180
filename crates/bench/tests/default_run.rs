//! The default run (`longrun-bench` with no scenario) completes on one server and prints
//! every figure, at sizes small enough for a test. Needs the `longrun` binary beside this
//! package's (`cargo test --workspace` builds both).

use std::path::PathBuf;
use std::process::Command;

/// The benchmark and the server binary beside it.
fn binaries() -> (PathBuf, PathBuf) {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_longrun-bench"));
    let server = bench.with_file_name("longrun");
    assert!(
        server.is_file(),
        "no {}: build it first (cargo build -p longrun-cli)",
        server.display()
    );
    (bench, server)
}

#[test]
fn the_default_run_completes_and_prints_every_figure() {
    let (bench, server) = binaries();
    let out = Command::new(&bench)
        .args(["--operations", "300", "--seconds", "1", "--rounds", "3"])
        .args([
            "--drain",
            "200",
            "--concurrency",
            "4",
            "--list-clients",
            "2",
        ])
        .arg("--server-bin")
        .arg(&server)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Figures may miss their targets at these sizes in a debug build; nothing may fail.
    assert!(
        !stderr.contains("error:") && !stdout.contains("PROBLEM"),
        "{stdout}\n{stderr}"
    );
    let summary = stdout.split("\nsummary\n").nth(1).unwrap_or_else(|| {
        panic!("no summary:\n{stdout}\n{stderr}");
    });
    for figure in [
        "submit (",
        "get (",
        "gRPC GetOperation (",
        "cancels/s",
        "cancel running → worker notified p99",
        "cancel running over the worker stream → worker notified p99",
        "cancel running, built-in → CANCELLED visible p99",
        "submit→lease→complete drain",
        "list from the start",
        "server RSS after lists",
    ] {
        assert!(summary.contains(figure), "no `{figure}` in:\n{summary}");
    }
}

/// A short soak completes without a failed request and prints a row per interval.
#[test]
fn a_short_soak_prints_its_rows() {
    let (bench, server) = binaries();
    let out = Command::new(&bench)
        .args(["--scenario", "soak", "--seconds", "4", "--interval", "2"])
        .arg("--server-bin")
        .arg(&server)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let rows: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("t(s)"))
        .skip(1)
        .take_while(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
        .collect();
    assert_eq!(rows.len(), 2, "{stdout}");
    assert!(stdout.contains("soak: RSS drift"), "{stdout}");
}
