//! The simulate executor's run of a task (docs/earth-engine.md#simulated-tasks): the task type's
//! duration and outcome, under the payload's `simulate` overrides, under the first `[[fault]]` that
//! takes the task. A successful task reports the destinations its request names and the
//! EECU-seconds it "used", and creates the asset of an ingestion or a `toAsset` export.
//!
//! Usage reported: 2 EECU-seconds per simulated second (at least 0.01), as the run goes.
//! An asset made is 1 MiB per second of the run long (`sizeBytes`, at least 1 byte), so that
//! a script reading sizes sees them grow with the simulated work, the same on every run.

use super::Emulator;
use super::exports::{NewAsset, destinations};
use longrun_engine::Engine;
use longrun_store::Asset;
use longrun_types::operation::Status;
use longrun_types::{Code, Timestamp};
use longrun_worker::Context;
use longrun_worker::simulate::{Outcome, Simulation};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Stages reported, in order, each a third of the run.
const STAGES: [&str; 3] = ["Preparing", "Computing", "Writing"];
/// Progress updates per stage.
const STEPS: u32 = 10;
/// EECU-seconds per simulated second.
const EECU_PER_SECOND: f64 = 2.0;
/// Bytes of the asset a run makes per second of the run.
const BYTES_PER_SECOND: f64 = 1024.0 * 1024.0;

/// The `sizeBytes` of the asset a run of `duration` makes.
fn size_bytes(duration: Duration) -> u64 {
    ((duration.as_secs_f64() * BYTES_PER_SECOND) as u64).max(1)
}

/// What a task's run needs besides its context.
#[derive(Clone)]
pub struct Runner {
    /// Its engine and asset registry too.
    pub emulator: Arc<Emulator>,
    /// The task type's settings.
    pub simulation: Simulation,
}

fn usage(elapsed: Duration) -> f64 {
    (elapsed.as_secs_f64() * EECU_PER_SECOND).max(0.01)
}

/// Whether the operation has ended (the sweep ends one whose cancel grace ran out).
async fn ended(engine: &Engine, ctx: &Context) -> bool {
    match engine.get(ctx.name()).await {
        Ok(op) => op.state.is_done(),
        Err(_) => true,
    }
}

impl Runner {
    /// The handler body.
    pub async fn run(self, ctx: Context) -> Result<Value, Status> {
        let op = self
            .emulator
            .engine
            .get(ctx.name())
            .await
            .map_err(|e| Status::new(Code::Unavailable, e.to_string()))?;
        let sim = self
            .simulation
            .for_payload(ctx.payload())
            .map_err(|e| Status::new(Code::InvalidArgument, e))?;
        let project = op.name.project();
        let fault = self
            .emulator
            .faults
            .task(
                project.as_str(),
                &op.op_type,
                &op.description,
                op.name.as_str(),
            )
            .cloned();
        let duration = fault
            .as_ref()
            .and_then(|f| f.duration)
            .unwrap_or(sim.duration);
        let outcome = match fault.as_ref().and_then(|f| f.outcome.as_deref()) {
            Some(text) => {
                Outcome::parse(text).map_err(|e| Status::new(Code::InvalidArgument, e))?
            }
            None => sim.outcome,
        };
        let ignore_cancel = fault.as_ref().is_some_and(|f| f.ignore_cancel);
        let started = Instant::now();
        let step = duration / (STAGES.len() as u32 * STEPS);
        let mut cancel_seen = false;
        for (i, stage) in STAGES.iter().enumerate() {
            for done in 1..=STEPS {
                self.pause(&ctx, step, ignore_cancel, &mut cancel_seen)
                    .await?;
                ctx.stage(stage, i64::from(done), i64::from(STEPS));
                ctx.progress(
                    (i as f64 * f64::from(STEPS) + f64::from(done))
                        / (STAGES.len() as f64 * f64::from(STEPS)),
                );
                ctx.usage(usage(started.elapsed()));
            }
        }
        let transient = fault.as_ref().map_or(0, |f| f.transient_failures);
        if op.attempt <= transient {
            return Err(Status::new(
                Code::Unavailable,
                format!(
                    "Simulated transient failure (attempt {} of the first {transient}); the task is retried.",
                    op.attempt
                ),
            ));
        }
        match outcome {
            Outcome::Succeeded => {}
            Outcome::Failed => {
                let code = fault.as_ref().and_then(|f| f.error_code).unwrap_or(13);
                let message = fault
                    .as_ref()
                    .and_then(|f| f.error_message.clone())
                    .unwrap_or_else(|| "Simulated failure.".into());
                return Err(Status::new(
                    Code::from_i32(code).unwrap_or(Code::Internal),
                    message,
                ));
            }
            Outcome::Hang => loop {
                // Only a cancel (or the timeout) ends it.
                self.pause(
                    &ctx,
                    Duration::from_secs(3600),
                    ignore_cancel,
                    &mut cancel_seen,
                )
                .await?;
            },
        }
        let (uris, asset) = destinations(&op.op_type, ctx.payload(), &op.description);
        if let Some(asset) = asset {
            self.create(asset, size_bytes(duration)).await?;
        }
        for uri in &uris {
            ctx.destination(uri);
        }
        ctx.usage(usage(started.elapsed()));
        Ok(json!({"simulated": true, "duration": longrun_types::duration::format(duration)}))
    }

    /// Sleeps `step`; a cancel ends the run, unless the task ignores cancels: then it runs
    /// on until the server ends the operation at the end of the cancel grace.
    async fn pause(
        &self,
        ctx: &Context,
        step: Duration,
        ignore_cancel: bool,
        cancel_seen: &mut bool,
    ) -> Result<(), Status> {
        let cancelled = || Status::new(Code::Cancelled, "Simulation cancelled.");
        if *cancel_seen {
            // Ignoring a cancel: look now and then whether the operation has ended.
            let until = Instant::now() + step;
            while Instant::now() < until {
                if ended(&self.emulator.engine, ctx).await {
                    return Err(cancelled());
                }
                tokio::time::sleep(step.min(Duration::from_millis(250))).await;
            }
            return Ok(());
        }
        tokio::select! {
            _ = ctx.cancelled() => {
                if !ignore_cancel {
                    return Err(cancelled());
                }
                *cancel_seen = true;
                tracing::info!(operation = %ctx.name(), "simulated task ignores its cancel");
                Ok(())
            }
            _ = tokio::time::sleep(step) => Ok(()),
        }
    }

    /// Creates the task's asset, `size` bytes large; a missing parent or a taken name fails
    /// the task as Earth Engine does.
    async fn create(&self, new: NewAsset, size: u64) -> Result<(), Status> {
        let invalid = |e: crate::kit::error::ApiError| Status::new(e.code, e.message);
        super::assets::parse_name("name", &new.name).map_err(invalid)?;
        let mut record = json!({
            "updateTime": Timestamp::now().to_string(),
            super::assets::SIZE_BYTES: size.to_string(),
        });
        // Manifests come in either JSON spelling (the CLI writes `start_time`).
        for (key, snake) in [
            ("properties", "properties"),
            ("startTime", "start_time"),
            ("endTime", "end_time"),
        ] {
            let value = new.manifest.get(key).or_else(|| new.manifest.get(snake));
            if let Some(v) = value.filter(|v| !v.is_null()) {
                record[key] = v.clone();
            }
        }
        let asset = Asset {
            parent: super::assets::parent_of(&new.name),
            name: new.name,
            asset_type: new.asset_type.to_string(),
            record,
        };
        super::assets::put(&*self.emulator.store, asset, new.overwrite)
            .await
            .map(|_| ())
            .map_err(invalid)
    }
}
