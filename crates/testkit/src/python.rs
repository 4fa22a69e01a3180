//! The test Python (`LONGRUN_TEST_PYTHON`: a virtualenv's interpreter with
//! tests/python/requirements.txt installed, made by scripts/test) and the scripts in
//! tests/python, which drive Google's own clients against a server.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The variable naming the test Python; without it the tests that need it skip.
pub const PYTHON: &str = "LONGRUN_TEST_PYTHON";

pub struct Python(PathBuf);

impl Python {
    /// The test Python; `None`, with a notice that `what` is skipped, when
    /// `LONGRUN_TEST_PYTHON` is not set.
    pub fn from_env(what: &str) -> Option<Python> {
        match std::env::var_os(PYTHON) {
            Some(path) => Some(Python(path.into())),
            None => {
                eprintln!("{PYTHON} is not set: skipping {what} (.ci/run sets it)");
                None
            }
        }
    }

    /// The virtualenv the interpreter belongs to (`…/venv/bin/python` → `…/venv`).
    pub fn venv(&self) -> &Path {
        self.0
            .parent()
            .and_then(Path::parent)
            .expect("LONGRUN_TEST_PYTHON is …/bin/python")
    }

    /// Runs tests/python/SCRIPT with ARGS: whether it succeeded, and what it printed
    /// (stdout, then stderr).
    pub fn run(&self, script: &str, args: &[&str]) -> (bool, String) {
        self.run_with_env(script, args, &[])
    }

    /// `run`, with extra environment variables.
    pub fn run_with_env(
        &self,
        script: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> (bool, String) {
        let path = crate::repo_root().join("tests/python").join(script);
        let out = Command::new(&self.0)
            .arg(path)
            .args(args)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// Runs tests/python/SCRIPT, which must succeed and print a line `ok`; what it printed.
    pub fn run_ok(&self, script: &str, args: &[&str]) -> String {
        self.run_ok_with_env(script, args, &[])
    }

    /// `run_ok`, with extra environment variables.
    pub fn run_ok_with_env(&self, script: &str, args: &[&str], env: &[(&str, &str)]) -> String {
        let (ok, text) = self.run_with_env(script, args, env);
        assert!(ok, "{script} failed:\n{text}");
        assert!(text.lines().any(|l| l.trim() == "ok"), "{script}:\n{text}");
        text
    }
}
