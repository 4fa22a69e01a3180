//! The official Earth Engine Python client (`earthengine-api`, pinned in
//! tests/python/requirements.txt) and its `earthengine` CLI, unmodified, against a server
//! running examples/ee-emulator.toml with auth mode `oauth`. The checks themselves are in
//! tests/python/ee_client.py and ee_cli.py. Needs `LONGRUN_TEST_PYTHON` (set by .ci/run,
//! which fails if the client cannot be installed); without it the tests say so and skip.

mod common;

use common::{Server, create_account, point_at, python};
use std::path::Path;

const PROJECT: &str = "ee-project";

/// Runs tests/python/SCRIPT against a fresh emulator, with a key holding
/// `roles/earthengine.admin` on `PROJECT`.
fn run(script: &str) {
    let Ok(python_bin) = std::env::var("LONGRUN_TEST_PYTHON") else {
        eprintln!("LONGRUN_TEST_PYTHON is not set: skipping {script} (.ci/run sets it)");
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let example = std::fs::read_to_string(root.join("examples/ee-emulator.toml")).unwrap();
    // The account is made before the server holds the data directory.
    let key = create_account(&data, "ee-tester", PROJECT, dir.path());
    let server = Server::start_with_config(
        &data,
        &format!(
            "{example}\n[auth]\nmode = \"oauth\"\n\n[[iam.binding]]\nproject = \"{PROJECT}\"\n\
             role = \"roles/earthengine.admin\"\nmembers = [\"serviceAccount:ee-tester@{PROJECT}.iam.longrun\"]\n"
        ),
    );
    point_at(&key, &server);
    let (ok, text) = python(
        &python_bin,
        script,
        &[&server.base, key.to_str().unwrap(), PROJECT],
    );
    assert!(ok, "{script} failed:\n{text}");
    assert!(text.lines().any(|l| l.trim() == "ok"), "{script}:\n{text}");
}

#[test]
fn the_python_client() {
    run("ee_client.py");
}

#[test]
fn the_earthengine_cli() {
    run("ee_cli.py");
}
