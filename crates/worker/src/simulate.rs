//! The `simulate` executor, for developing Earth Engine pipelines offline: it runs for a
//! duration with staged progress and ends as asked, honouring cancel. The payload's
//! `{"simulate": {"duration": "5s", "outcome": "SUCCEEDED" | "FAILED" | "HANG"}}` overrides
//! the task type's settings.

use crate::Context;
use longrun_types::operation::Status;
use longrun_types::{Code, duration};
use serde_json::{Value, json};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Failed,
    /// Never finishes on its own; only a cancel (or the timeout) ends it.
    Hang,
}

impl Outcome {
    pub fn parse(text: &str) -> Result<Outcome, String> {
        match text {
            "SUCCEEDED" => Ok(Outcome::Succeeded),
            "FAILED" => Ok(Outcome::Failed),
            "HANG" => Ok(Outcome::Hang),
            other => Err(format!(
                "simulate outcome `{other}` is not SUCCEEDED, FAILED or HANG"
            )),
        }
    }
}

/// A task type's simulation settings.
#[derive(Debug, Clone, Copy)]
pub struct Simulation {
    pub duration: Duration,
    pub outcome: Outcome,
}

impl Default for Simulation {
    fn default() -> Simulation {
        Simulation {
            duration: Duration::from_secs(10),
            outcome: Outcome::Succeeded,
        }
    }
}

/// Stages reported, in order, each a third of the run.
const STAGES: [&str; 3] = ["Preparing", "Computing", "Writing"];
/// Progress updates per stage.
const STEPS: i64 = 10;

impl Simulation {
    /// The settings for one operation: these defaults under its payload's overrides.
    pub fn for_payload(self, payload: &Value) -> Result<Simulation, String> {
        let overrides = &payload["simulate"];
        let duration = match overrides["duration"].as_str() {
            Some(text) => duration::parse(text)?,
            None if overrides["duration"].is_null() => self.duration,
            None => return Err("simulate.duration must be a string like \"5s\"".into()),
        };
        let outcome = match overrides["outcome"].as_str() {
            Some(text) => Outcome::parse(text)?,
            None if overrides["outcome"].is_null() => self.outcome,
            None => return Err("simulate.outcome must be a string".into()),
        };
        Ok(Simulation { duration, outcome })
    }

    /// The handler body.
    pub async fn run(self, ctx: Context) -> Result<Value, Status> {
        let cancelled = || Status::new(Code::Cancelled, "Simulation cancelled.");
        let sim = self
            .for_payload(ctx.payload())
            .map_err(|e| Status::new(Code::InvalidArgument, e))?;
        let step = sim.duration / (STAGES.len() as u32 * STEPS as u32);
        for (i, stage) in STAGES.iter().enumerate() {
            for done in 1..=STEPS {
                tokio::select! {
                    _ = ctx.cancelled() => return Err(cancelled()),
                    _ = tokio::time::sleep(step) => {}
                }
                ctx.stage(stage, done, STEPS);
                ctx.progress(
                    (i as f64 * STEPS as f64 + done as f64) / (STAGES.len() as f64 * STEPS as f64),
                );
            }
        }
        match sim.outcome {
            Outcome::Succeeded => {
                Ok(json!({"simulated": true, "duration": duration::format(sim.duration)}))
            }
            Outcome::Failed => Err(Status::new(Code::Internal, "Simulated failure.")),
            Outcome::Hang => {
                ctx.cancelled().await;
                Err(cancelled())
            }
        }
    }
}
