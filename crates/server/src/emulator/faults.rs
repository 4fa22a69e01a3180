//! Fault injection (docs/earth-engine.md#faults): `[[fault]]` rules pick the fate of simulated
//! tasks, `[[api_fault]]` rules fail or delay requests, both deterministic under
//! `[faults] seed`.
//!
//! - A task takes the first `[[fault]]` whose `project`, `type` and `description` globs
//!   match it and whose `probability` draw hits; the draw is a hash of the seed, the rule's
//!   position and the operation's name, so the same task gets the same fate on every run.
//! - A request takes every matching `[[api_fault]]` in order: its `latency` is added, then
//!   it fails with the rule's `status` when the rule's draw hits; the n-th matching request
//!   of a rule draws from a hash of the seed, the rule's position and n, so a sequence of
//!   requests meets the same faults on every run.

use crate::kit::error::ApiError;
use longrun_types::Code;
use serde::Deserialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

fn star() -> String {
    "*".into()
}

fn one() -> f64 {
    1.0
}

/// One `[[fault]]`: the fate of the simulated tasks it matches.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskFault {
    /// Glob on the project id.
    #[serde(default = "star")]
    pub project: String,
    /// Glob on the operation type (`EXPORT_*`).
    #[serde(rename = "type", default = "star")]
    pub op_type: String,
    /// Glob on the task's description, which ordinary client code sets.
    #[serde(default = "star")]
    pub description: String,
    /// SUCCEEDED, FAILED or HANG (default: the task type's).
    #[serde(default)]
    pub outcome: Option<String>,
    /// With FAILED: the google.rpc code (default 13 INTERNAL).
    #[serde(default)]
    pub error_code: Option<i32>,
    /// With FAILED: the message (default "Simulated failure.").
    #[serde(default)]
    pub error_message: Option<String>,
    /// The first N attempts end UNAVAILABLE and are retried (attempts 1..N+1).
    #[serde(default)]
    pub transient_failures: i32,
    /// Run length before the outcome (default: the task type's).
    #[serde(default, with = "crate::kit::config_duration::option")]
    pub duration: Option<Duration>,
    /// Keep running after a cancel, until the type's `cancel_grace` ends it.
    #[serde(default)]
    pub ignore_cancel: bool,
    /// Fraction of matching tasks the rule takes, 0..1 (default 1).
    #[serde(default = "one")]
    pub probability: f64,
}

/// One `[[api_fault]]`: failures and latency of the requests it matches.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiFault {
    /// Glob on the discovery method id without `earthengine.projects.`:
    /// `operations.get`, `image.export`, `assets.*`, `*`.
    #[serde(default = "star")]
    pub method: String,
    /// Glob on the project id (requests that name no project match only `*`).
    #[serde(default = "star")]
    pub project: String,
    /// 429 or 503; none: latency only.
    #[serde(default)]
    pub status: Option<u16>,
    /// Fraction of matching requests that fail with `status`, 0..1 (default 1).
    #[serde(default = "one")]
    pub rate: f64,
    /// Added before answering, with or without a status.
    #[serde(default, with = "crate::kit::config_duration::option")]
    pub latency: Option<Duration>,
}

/// `[faults]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultSettings {
    /// Seeds every draw (default 0).
    pub seed: u64,
}

/// `*` any run of characters, `?` one character; everything else literal. Written by hand:
/// the rules need nothing more than this, and no glob crate is in the tree.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// A draw in [0, 1) from the seed, a rule's position and a key: FNV-1a over the bytes,
/// then SplitMix64's finalizer (stable across runs and platforms, unlike std's hasher).
fn draw(seed: u64, rule: usize, key: &[u8]) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for b in (rule as u64).to_le_bytes().iter().chain(key) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// The configured rules and the counters of the request draws.
#[derive(Debug, Default)]
pub struct Faults {
    pub tasks: Vec<TaskFault>,
    pub api: Vec<ApiFault>,
    pub seed: u64,
    counters: Vec<AtomicU64>,
}

impl Faults {
    /// Checks the rules (the config is refused at start otherwise).
    pub fn new(tasks: Vec<TaskFault>, api: Vec<ApiFault>, seed: u64) -> anyhow::Result<Faults> {
        for (i, f) in tasks.iter().enumerate() {
            if let Some(outcome) = &f.outcome {
                longrun_worker::simulate::Outcome::parse(outcome)
                    .map_err(|e| anyhow::anyhow!("fault {}: {e}", i + 1))?;
            }
            if let Some(code) = f.error_code {
                anyhow::ensure!(
                    (1..=16).contains(&code),
                    "fault {}: error_code {code} is not a google.rpc code 1..16",
                    i + 1
                );
            }
            anyhow::ensure!(
                f.transient_failures >= 0,
                "fault {}: transient_failures must not be negative",
                i + 1
            );
            anyhow::ensure!(
                (0.0..=1.0).contains(&f.probability),
                "fault {}: probability must be within 0..1",
                i + 1
            );
        }
        for (i, f) in api.iter().enumerate() {
            anyhow::ensure!(
                matches!(f.status, None | Some(429) | Some(503)),
                "api_fault {}: status must be 429 or 503",
                i + 1
            );
            anyhow::ensure!(
                (0.0..=1.0).contains(&f.rate),
                "api_fault {}: rate must be within 0..1",
                i + 1
            );
        }
        let counters = api.iter().map(|_| AtomicU64::new(0)).collect();
        Ok(Faults {
            tasks,
            api,
            seed,
            counters,
        })
    }

    /// The rule that decides a task's fate, if any.
    pub fn task(
        &self,
        project: &str,
        op_type: &str,
        description: &str,
        name: &str,
    ) -> Option<&TaskFault> {
        self.tasks.iter().enumerate().find_map(|(i, f)| {
            (glob(&f.project, project)
                && glob(&f.op_type, op_type)
                && glob(&f.description, description)
                && draw(self.seed, i, name.as_bytes()) < f.probability)
                .then_some(f)
        })
    }

    /// Whether any `[[api_fault]]` is configured (requests skip the matching otherwise).
    pub fn has_request_faults(&self) -> bool {
        !self.api.is_empty()
    }

    /// Applies the request faults of `method` on `project` (empty: none named): waits the
    /// added latency, then fails when a rule's draw hits.
    pub async fn request(&self, method: &str, project: &str) -> Result<(), ApiError> {
        for (i, f) in self.api.iter().enumerate() {
            let project_ok = if project.is_empty() {
                f.project == "*"
            } else {
                glob(&f.project, project)
            };
            if !project_ok || !glob(&f.method, method) {
                continue;
            }
            if let Some(latency) = f.latency {
                tokio::time::sleep(latency).await;
            }
            let Some(status) = f.status else { continue };
            let n = self.counters[i].fetch_add(1, Ordering::Relaxed);
            if draw(self.seed, i, &n.to_le_bytes()) < f.rate {
                let (code, reason) = if status == 429 {
                    (Code::ResourceExhausted, "SIMULATED_RATE_LIMIT")
                } else {
                    (Code::Unavailable, "SIMULATED_UNAVAILABLE")
                };
                return Err(ApiError::new(
                    code,
                    reason,
                    format!("Simulated {status} for {method} (api_fault {}).", i + 1),
                )
                .with("method", method.to_string()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("*", ""));
        assert!(glob("EXPORT_*", "EXPORT_IMAGE"));
        assert!(!glob("EXPORT_*", "INGEST_IMAGE"));
        assert!(glob("*fail*", "please fail now"));
        assert!(!glob("*fail*", "succeed"));
        assert!(glob("a?c", "abc"));
        assert!(glob("operations.*", "operations.get"));
        assert!(!glob("operations.get", "operations.list"));
        assert!(glob("*a*b", "xaxxb"));
    }

    #[test]
    fn draws_are_deterministic_and_spread() {
        assert_eq!(draw(7, 0, b"x"), draw(7, 0, b"x"));
        assert_ne!(draw(7, 0, b"x"), draw(8, 0, b"x"));
        let hits = (0..10_000u64)
            .filter(|n| draw(7, 1, &n.to_le_bytes()) < 0.2)
            .count();
        assert!((1_700..2_300).contains(&hits), "{hits}");
    }

    #[test]
    fn the_first_matching_rule_decides() {
        let rule = |description: &str, probability: f64| TaskFault {
            project: "*".into(),
            op_type: "EXPORT_*".into(),
            description: description.into(),
            outcome: Some("FAILED".into()),
            error_code: None,
            error_message: Some(description.into()),
            transient_failures: 0,
            duration: None,
            ignore_cancel: false,
            probability,
        };
        let faults =
            Faults::new(vec![rule("*never*", 0.0), rule("*fail*", 1.0)], vec![], 7).unwrap();
        let got = faults
            .task("p", "EXPORT_IMAGE", "never fail", "projects/p/operations/A")
            .unwrap();
        assert_eq!(got.error_message.as_deref(), Some("*fail*"));
        assert!(
            faults
                .task("p", "INGEST_IMAGE", "fail", "projects/p/operations/A")
                .is_none()
        );
        assert!(Faults::new(vec![rule("*", 1.5)], vec![], 0).is_err());
    }

    #[tokio::test]
    async fn request_faults_follow_the_seed() {
        let fault = ApiFault {
            method: "operations.*".into(),
            project: "*".into(),
            status: Some(503),
            rate: 0.5,
            latency: None,
        };
        let run = || async {
            let faults = Faults::new(vec![], vec![fault.clone()], 3).unwrap();
            let mut seen = Vec::new();
            for _ in 0..40 {
                seen.push(faults.request("operations.get", "p").await.is_err());
            }
            assert!(faults.request("assets.get", "p").await.is_ok());
            seen
        };
        let (a, b) = (run().await, run().await);
        assert_eq!(a, b);
        assert!(a.iter().any(|x| *x) && a.iter().any(|x| !*x));
    }
}
