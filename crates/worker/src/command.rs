//! The `command` executor: runs an argv (no shell) in its own process group. Cancel sends
//! SIGTERM to the group, then SIGKILL after the grace; the group is killed when the command
//! ends, so nothing is left behind. Stdout lines `longrun:progress 0.42`,
//! `longrun:stage NAME DONE/TOTAL` and `longrun:destination URI` update the metadata; the
//! child's CPU seconds are reported as `batchEecuUsageSeconds`.
//!
//! Stdout and stderr are kept, up to [`OUTPUT_LIMIT`] bytes, in a file per operation under
//! `outputs_dir` ([`output_path`]), beside a file holding the operation's name
//! ([`name_path`]), so that outputs of operations gone can be found and removed.
//!
//! Each running group is recorded as a file in `groups_dir`. The command itself dies with
//! the server (PR_SET_PDEATHSIG); what it started may not, so on the next start
//! [`kill_leftover_groups`] kills every group still recorded.

use crate::Context;
use longrun_types::operation::Status;
use longrun_types::{Code, Name};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// How much of stderr's end goes into a failure message.
const STDERR_TAIL: usize = 2048;

#[derive(Debug, Clone)]
pub struct CommandSpec {
    /// argv; `{payload.KEY}` is replaced by the submit payload's KEY.
    pub argv: Vec<String>,
    /// Time between SIGTERM and SIGKILL on cancel.
    pub grace: Duration,
    /// Where running process groups are recorded.
    pub groups_dir: PathBuf,
    /// Where each operation's output is kept.
    pub outputs_dir: PathBuf,
}

/// Most bytes of output kept per operation; the rest is dropped with a marker.
pub const OUTPUT_LIMIT: usize = 1 << 20;
const TRUNCATED: &[u8] = b"\n[output truncated]\n";

/// The file that keeps an operation's output.
pub fn output_path(outputs_dir: &Path, name: &Name) -> PathBuf {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(name.as_str().as_bytes());
    outputs_dir.join(
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
    )
}

/// The file beside an output that names its operation.
pub fn name_path(output: &Path) -> PathBuf {
    output.with_extension("name")
}

/// The size-capped output file of one run, shared by the stdout and stderr readers.
struct Output {
    file: Option<std::fs::File>,
    written: usize,
}

impl Output {
    fn create(path: &Path) -> Output {
        let file = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::File::create(path));
        if let Err(e) = &file {
            tracing::warn!(path = %path.display(), error = %e, "cannot keep command output");
        }
        Output {
            file: file.ok(),
            written: 0,
        }
    }

    fn append(&mut self, bytes: &[u8]) {
        use std::io::Write;
        let Some(file) = &mut self.file else { return };
        if self.written >= OUTPUT_LIMIT {
            return;
        }
        let n = bytes.len().min(OUTPUT_LIMIT - self.written);
        let _ = file.write_all(&bytes[..n]);
        self.written += n;
        if self.written >= OUTPUT_LIMIT {
            let _ = file.write_all(TRUNCATED);
        }
    }
}

/// Kills the process groups a previous run of the server left recorded in `groups_dir`.
pub fn kill_leftover_groups(groups_dir: &Path) -> std::io::Result<usize> {
    std::fs::create_dir_all(groups_dir)?;
    let mut killed = 0;
    for entry in std::fs::read_dir(groups_dir)?.flatten() {
        if let Some(pgid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
            && pgid > 1
        {
            signal_group(pgid, libc::SIGKILL);
            killed += 1;
        }
        let _ = std::fs::remove_file(entry.path());
    }
    Ok(killed)
}

/// Splits `arg` into literal text and `{payload.KEY}` placeholders.
fn pieces(arg: &str) -> Vec<Result<&str, &str>> {
    let mut out = Vec::new();
    let mut rest = arg;
    while let Some(start) = rest.find("{payload.") {
        let after = &rest[start + "{payload.".len()..];
        let Some(end) = after.find('}') else { break };
        let key = &after[..end];
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            break;
        }
        if start > 0 {
            out.push(Ok(&rest[..start]));
        }
        out.push(Err(key));
        rest = &after[end + 1..];
    }
    if !rest.is_empty() {
        out.push(Ok(rest));
    }
    out
}

impl CommandSpec {
    /// The payload keys the argv needs.
    pub fn placeholders(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .argv
            .iter()
            .flat_map(|arg| {
                pieces(arg)
                    .into_iter()
                    .filter_map(|p| p.err().map(str::to_string))
            })
            .collect();
        keys.dedup();
        keys
    }

    /// The argv with placeholders filled from `payload`.
    pub fn expand(&self, payload: &Value) -> Result<Vec<String>, String> {
        self.argv
            .iter()
            .map(|arg| {
                pieces(arg)
                    .into_iter()
                    .map(|piece| match piece {
                        Ok(text) => Ok(text.to_string()),
                        Err(key) => match payload.get(key) {
                            Some(Value::String(s)) => Ok(s.clone()),
                            Some(Value::Null) | None => Err(format!("the payload has no `{key}`")),
                            Some(other) => Ok(other.to_string()),
                        },
                    })
                    .collect::<Result<String, String>>()
            })
            .collect()
    }

    /// The handler body.
    pub async fn run(&self, ctx: Context) -> Result<Value, Status> {
        let argv = self
            .expand(ctx.payload())
            .map_err(|e| Status::new(Code::InvalidArgument, e))?;
        let mut command = std::process::Command::new(&argv[0]);
        command
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        // SAFETY: prctl is async-signal-safe. The child dies with the thread that spawned it,
        // a runtime worker thread that lives as long as the server, so a killed server leaves
        // no command running.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = command.spawn().map_err(|e| {
            Status::new(
                Code::FailedPrecondition,
                format!("cannot start `{}`: {e}", argv[0]),
            )
        })?;
        let pid = child.id() as i32;
        // Kills the group however this ends: done, failed, or dropped at shutdown.
        let record = self.groups_dir.join(pid.to_string());
        let _ = std::fs::write(&record, argv.join(" "));
        let _group = KillGroupOnDrop(pid, record);
        let path = output_path(&self.outputs_dir, ctx.name());
        let output = std::sync::Arc::new(std::sync::Mutex::new(Output::create(&path)));
        let _ = std::fs::write(name_path(&path), ctx.name().as_str());
        let (lines, mut lines_rx) = tokio::sync::mpsc::unbounded_channel();
        let stdout = child.stdout.take().expect("piped");
        let stdout_output = output.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = Vec::new();
            while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                stdout_output.lock().expect("output lock").append(&line);
                let text = String::from_utf8_lossy(&line).trim_end().to_string();
                line.clear();
                if lines.send(text).is_err() {
                    break;
                }
            }
        });
        let mut stderr = child.stderr.take().expect("piped");
        let stderr_tail = std::thread::spawn(move || {
            let mut tail = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                output.lock().expect("output lock").append(&buf[..n]);
                tail.extend_from_slice(&buf[..n]);
                if tail.len() > STDERR_TAIL {
                    tail.drain(..tail.len() - STDERR_TAIL);
                }
            }
            String::from_utf8_lossy(&tail).trim().to_string()
        });
        let (exit_tx, exit_rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let _ = exit_tx.send(wait4(pid));
        });
        tokio::pin!(exit_rx);

        let mut stop_sent: Option<tokio::time::Instant> = None;
        let (status, cpu_seconds) = loop {
            let kill_at = stop_sent.map(|t| t + self.grace);
            tokio::select! {
                exit = &mut exit_rx => break exit.unwrap_or((-1, 0.0)),
                Some(line) = lines_rx.recv() => apply(&ctx, &line),
                _ = ctx.cancelled(), if stop_sent.is_none() => {
                    signal_group(pid, libc::SIGTERM);
                    stop_sent = Some(tokio::time::Instant::now());
                }
                _ = tokio::time::sleep_until(kill_at.unwrap_or_else(tokio::time::Instant::now)), if kill_at.is_some() => {
                    signal_group(pid, libc::SIGKILL);
                    stop_sent = Some(tokio::time::Instant::now() + Duration::from_secs(3600));
                }
            }
        };
        while let Ok(line) = lines_rx.try_recv() {
            apply(&ctx, &line);
        }
        ctx.usage(cpu_seconds);
        drop(child);
        let stderr = stderr_tail.join().unwrap_or_default();
        if stop_sent.is_some() {
            return Err(Status::new(
                Code::Cancelled,
                format!("Command stopped on cancel ({}).", describe(status)),
            ));
        }
        if status == 0 {
            return Ok(json!({"exitCode": 0}));
        }
        let mut message = format!("Command failed: {}.", describe(status));
        if !stderr.is_empty() {
            message.push_str(&format!(" stderr: {stderr}"));
        }
        Err(Status::new(Code::Unknown, message))
    }
}

struct KillGroupOnDrop(i32, PathBuf);

impl Drop for KillGroupOnDrop {
    fn drop(&mut self) {
        signal_group(self.0, libc::SIGKILL);
        let _ = std::fs::remove_file(&self.1);
    }
}

fn signal_group(pid: i32, signal: i32) {
    // SAFETY: kill(2) on a process group id has no memory-safety preconditions.
    unsafe {
        libc::kill(-pid, signal);
    }
}

/// Waits for `pid`; returns its raw wait status and its CPU seconds (user + system).
/// `std` and tokio do not expose the child's rusage, so this calls wait4(2).
fn wait4(pid: i32) -> (i32, f64) {
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: valid pointers to a local status and rusage.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        if r == -1 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return (-1, 0.0);
        }
    }
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (status, seconds(usage.ru_utime) + seconds(usage.ru_stime))
}

fn describe(status: i32) -> String {
    if libc::WIFEXITED(status) {
        format!("exit status {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("wait status {status}")
    }
}

/// Applies one stdout line of the progress protocol; other lines are ignored.
fn apply(ctx: &Context, line: &str) {
    let Some(rest) = line.strip_prefix("longrun:") else {
        return;
    };
    let (verb, arg) = rest.split_once(' ').unwrap_or((rest, ""));
    match verb {
        "progress" => {
            if let Ok(p) = arg.trim().parse::<f64>() {
                ctx.progress(p);
            }
        }
        "stage" => {
            if let Some((name, counts)) = arg.trim().rsplit_once(' ')
                && let Some((done, total)) = counts.split_once('/')
                && let (Ok(done), Ok(total)) = (done.parse(), total.parse())
            {
                ctx.stage(name, done, total);
            }
        }
        "destination" if !arg.trim().is_empty() => ctx.destination(arg.trim()),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(argv: &[&str]) -> CommandSpec {
        CommandSpec {
            argv: argv.iter().map(|a| a.to_string()).collect(),
            grace: Duration::from_secs(1),
            groups_dir: PathBuf::new(),
            outputs_dir: PathBuf::new(),
        }
    }

    #[test]
    fn placeholders_expand_from_the_payload() {
        let s = spec(&[
            "sleep",
            "{payload.seconds}",
            "x{payload.a}-{payload.b}y",
            "{literal}",
        ]);
        assert_eq!(s.placeholders(), ["seconds", "a", "b"]);
        let argv = s
            .expand(&json!({"seconds": 5, "a": "A", "b": true}))
            .unwrap();
        assert_eq!(argv, ["sleep", "5", "xA-truey", "{literal}"]);
        assert_eq!(
            s.expand(&json!({"seconds": 5})).unwrap_err(),
            "the payload has no `a`"
        );
    }
}
