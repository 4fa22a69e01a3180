//! The Earth Engine emulator (docs/earth-engine.md) through the official client and CLI
//! (`earthengine-api`, pinned in tests/python/requirements.txt), unmodified: a realistic
//! pipeline (tests/python/ee_pipeline.py), the CLI's asset and task commands
//! (ee_cli_assets.py), the project config commands (ee_cli_project_config.py), and every
//! fault kind (ee_faults.py). The server finds the full
//! algorithm list in the client's virtualenv the way a user's does: `VIRTUAL_ENV` names it.
//! Needs `LONGRUN_TEST_PYTHON` (set by .ci/run); without it the tests say so and skip.

use longrun_testkit::auth::{create_account, point_at};
use longrun_testkit::process::Server;
use longrun_testkit::python::Python;

const PROJECT: &str = "ee-pipeline";
const TYPES: [&str; 8] = [
    "EXPORT_IMAGE",
    "EXPORT_FEATURES",
    "EXPORT_VIDEO",
    "EXPORT_TILES",
    "EXPORT_VIDEO_MAP",
    "EXPORT_CLASSIFIER",
    "INGEST_IMAGE",
    "INGEST_TABLE",
];

/// Every Earth Engine task type on the simulate executor, `duration` long, with
/// `cancel_grace`; auth on, the tester an admin of `PROJECT`.
pub fn config(duration: &str, cancel_grace: &str, extra: &str) -> String {
    let mut config = format!(
        "[auth]\nmode = \"oauth\"\n\n[[iam.binding]]\nproject = \"{PROJECT}\"\n\
         role = \"roles/earthengine.admin\"\nmembers = [\"serviceAccount:tester@{PROJECT}.iam.longrun\"]\n\n"
    );
    for t in TYPES {
        config.push_str(&format!(
            "[[task_type]]\ntype = \"{t}\"\nexecutor = \"simulate\"\nduration = \"{duration}\"\n\
             cancel_grace = \"{cancel_grace}\"\nconcurrency = 8\n\n"
        ));
    }
    config + extra
}

/// Runs tests/python/SCRIPT against a fresh server with `config`; returns its output.
fn run(script: &str, config: &str) -> Option<String> {
    let python = Python::from_env(script)?;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let venv = python.venv();
    // The account is made before the server holds the data directory.
    let key = create_account(&data, "tester", PROJECT, dir.path());
    let server = Server::start_with_config_env(
        &data,
        config,
        &[
            ("VIRTUAL_ENV", venv.to_str().unwrap()),
            ("LONGRUN_EE_ALGORITHMS", ""),
        ],
    );
    point_at(&key, &server.base);
    let readme = longrun_testkit::repo_root().join("README.md");
    let args = [
        server.base.as_str(),
        key.to_str().unwrap(),
        PROJECT,
        readme.to_str().unwrap(),
    ];
    Some(python.run_ok(script, &args))
}

#[test]
fn a_realistic_pipeline_runs_offline() {
    if let Some(text) = run("ee_pipeline.py", &config("1s", "30s", "")) {
        // The 20 common calls: 19 work, getInfo (a computation) does not.
        assert!(
            text.contains("common calls: 19/20 work; failing: ['getInfo()']"),
            "{text}"
        );
    }
}

/// Tasks whose description matches `*slow*` run 4 s.
const SLOW: &str = "[[fault]]\ndescription = \"*slow*\"\nduration = \"4s\"\n";

/// For the CLI's task commands, such tasks run 60 s: long enough that a loaded machine
/// still lists, describes and cancels one while it runs.
const SLOW_CLI: &str = "[[fault]]\ndescription = \"*slow*\"\nduration = \"60s\"\n";

#[test]
fn the_cli_asset_and_task_commands() {
    run("ee_cli_assets.py", &config("1s", "30s", SLOW_CLI));
}

#[test]
fn every_fault_kind_through_the_client() {
    let faults = format!(
        "[[fault]]\ndescription = \"*fail*\"\noutcome = \"FAILED\"\nerror_code = 3\n\
         error_message = \"Simulated bad input.\"\n\n\
         [[fault]]\ndescription = \"*flaky*\"\ntransient_failures = 2\n\n\
         [[fault]]\ndescription = \"*stubborn*\"\noutcome = \"HANG\"\nignore_cancel = true\n\n\
         {SLOW}\n\
         [[fault]]\ndescription = \"coin *\"\noutcome = \"FAILED\"\nprobability = 0.5\n\n\
         [[api_fault]]\nmethod = \"assets.get\"\nstatus = 429\nrate = 0.3\n\n\
         [[api_fault]]\nmethod = \"listAssets\"\nstatus = 503\nlatency = \"200ms\"\n\n\
         [[api_fault]]\nmethod = \"operations.list\"\nlatency = \"300ms\"\n\n\
         [faults]\nseed = 7\n"
    );
    run("ee_faults.py", &config("1s", "2s", &faults));
}

/// `earthengine alpha project_config get|set` unmodified, and the export cap it sets
/// (docs/projects.md#project-config): tasks run 1.5 s, the plan maximum is 5.
#[test]
fn the_cli_project_config_commands() {
    let extra = "[projects]\nplan_max_concurrent_exports = 5\n";
    run("ee_cli_project_config.py", &config("1500ms", "30s", extra));
}

/// The README's recipe: examples/ee-emulator.toml as it is (auth off), and a key made in
/// another store, which an auth-off server accepts too.
#[test]
fn the_readme_recipe_without_auth() {
    let Some(python) = Python::from_env("ee_readme.py") else {
        return;
    };
    let root = longrun_testkit::repo_root();
    let dir = tempfile::tempdir().unwrap();
    let example = std::fs::read_to_string(root.join("examples/ee-emulator.toml")).unwrap();
    let venv = python.venv();
    let server = Server::start_with_config_env(
        &dir.path().join("data"),
        &example,
        &[("VIRTUAL_ENV", venv.to_str().unwrap())],
    );
    // The key's account lives in a store this server never sees.
    let key = create_account(
        &dir.path().join("elsewhere"),
        "pipeline-ci",
        "my-project",
        dir.path(),
    );
    point_at(&key, &server.base);
    let readme = root.join("README.md");
    let args = [
        server.base.as_str(),
        key.to_str().unwrap(),
        "my-project",
        readme.to_str().unwrap(),
    ];
    python.run_ok("ee_readme.py", &args);
}

/// The README's recipe with auth on: the same client code, the account bound to the project.
#[test]
fn the_readme_recipe_with_auth() {
    let example =
        std::fs::read_to_string(longrun_testkit::repo_root().join("examples/ee-emulator.toml"))
            .unwrap();
    let config = format!(
        "{example}\n[auth]\nmode = \"oauth\"\n\n[[iam.binding]]\nproject = \"{PROJECT}\"\n\
         role = \"roles/earthengine.writer\"\nmembers = [\"serviceAccount:tester@{PROJECT}.iam.longrun\"]\n"
    );
    run("ee_readme.py", &config);
}
