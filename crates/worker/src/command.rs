//! The `command` executor: runs an argv (no shell) under a [`supervisor`] process that
//! owns everything the command starts, even processes that leave its process group
//! (`setsid`, `nohup … &`, a double fork). Cancel sends SIGTERM to the command's group, then
//! the supervisor kills everything after the grace; when the command itself exits, every
//! process it left behind is killed, so the operation ends when its command does and nothing
//! outlives it. Stdout lines `longrun:progress 0.42`, `longrun:stage NAME DONE/TOTAL` and
//! `longrun:destination URI` update the metadata; the CPU seconds of the command and of
//! everything reaped under it are reported as `batchEecuUsageSeconds`. Output is read on the
//! async runtime, never blocking it, with memory bounded whatever the command prints.
//!
//! Stdout and stderr are kept, up to [`OUTPUT_LIMIT`] bytes, in a file per operation under
//! `outputs_dir` ([`output_path`]), beside a file holding the operation's name
//! ([`name_path`]), so that outputs of operations gone can be found and removed.
//!
//! Each running supervisor is recorded (id and start time) as a file in `groups_dir`. It
//! ends its command's processes when the server dies (PR_SET_PDEATHSIG); should it be killed
//! too, [`kill_leftover_groups`] tells the recorded ones still alive on the next start.

mod supervisor;

use crate::Context;
use longrun_types::operation::Status;
use longrun_types::{Code, Name};
use serde_json::{Value, json};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncReadExt;

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

/// Ends the runs a previous server process left recorded in `groups_dir` (it was killed
/// before it could): a recorded supervisor still alive, proven by its start time beside its
/// id, is told to kill everything under it; a record whose process is gone, or whose id now
/// names another process, is only removed. Returns how many were told.
pub fn kill_leftover_groups(groups_dir: &Path) -> std::io::Result<usize> {
    std::fs::create_dir_all(groups_dir)?;
    let mut killed = 0;
    for entry in std::fs::read_dir(groups_dir)?.flatten() {
        let recorded = std::fs::read_to_string(entry.path()).unwrap_or_default();
        let mut fields = recorded.lines().next().unwrap_or("").split_whitespace();
        if let (Some(Ok(pid)), Some(Ok(started))) = (
            fields.next().map(str::parse::<i32>),
            fields.next().map(str::parse::<u64>),
        ) && pid > 1
            && start_time(pid) == Some(started)
        {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe {
                libc::kill(pid, supervisor::KILL_ALL);
            }
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

    /// The handler body: runs the command under its [`supervisor`], reads its output as it
    /// comes (memory bounded by [`MAX_LINE`] and [`STDERR_TAIL`], whatever it prints), and
    /// returns once the command has exited and everything it started has been ended.
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
        // SAFETY: `split` runs as a pre_exec hook, in the forked child, calling only system
        // calls. The supervisor dies with the thread that spawned it (PR_SET_PDEATHSIG), a
        // runtime worker thread that lives as long as the server, and takes the command's
        // processes with it.
        unsafe {
            command.pre_exec(|| supervisor::split());
        }
        let mut child = command.spawn().map_err(|e| {
            Status::new(
                Code::FailedPrecondition,
                format!("cannot start `{}`: {e}", argv[0]),
            )
        })?;
        let supervisor = Supervisor::new(child.id() as i32, &self.groups_dir, &argv);
        let path = output_path(&self.outputs_dir, ctx.name());
        let output = Arc::new(Mutex::new(Output::create(&path)));
        let _ = std::fs::write(name_path(&path), ctx.name().as_str());
        let stdout = tokio::spawn(read_stdout(
            pipe(child.stdout.take().expect("piped")),
            output.clone(),
            ctx.clone(),
        ));
        let stderr = tokio::spawn(read_stderr(
            pipe(child.stderr.take().expect("piped")),
            output,
        ));
        let _readers = AbortOnDrop([stdout.abort_handle(), stderr.abort_handle()]);
        let pid = supervisor.pid;
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
                _ = ctx.cancelled(), if stop_sent.is_none() => {
                    supervisor.signal(libc::SIGTERM);
                    stop_sent = Some(tokio::time::Instant::now());
                }
                _ = tokio::time::sleep_until(kill_at.unwrap_or_else(tokio::time::Instant::now)), if kill_at.is_some() => {
                    supervisor.signal(supervisor::KILL_ALL);
                    stop_sent = Some(tokio::time::Instant::now() + Duration::from_secs(3600));
                }
            }
        };
        drop(supervisor);
        drop(child);
        // Everything that held the pipes is gone; what they buffered is read within a bound.
        let _ = tokio::time::timeout(DRAIN, stdout).await;
        let stderr = match tokio::time::timeout(DRAIN, stderr).await {
            Ok(Ok(tail)) => tail,
            _ => String::new(),
        };
        ctx.usage(cpu_seconds);
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

/// How long output left in the pipes is read once the command and its processes are gone.
const DRAIN: Duration = Duration::from_secs(2);

/// Longest stdout line read for the progress protocol; the rest of a longer line is skipped
/// (it is still kept in the output file, up to [`OUTPUT_LIMIT`]).
pub const MAX_LINE: usize = 4096;

fn pipe(end: impl Into<std::os::fd::OwnedFd>) -> Option<tokio::net::unix::pipe::Receiver> {
    tokio::net::unix::pipe::Receiver::from_owned_fd(end.into())
        .inspect_err(|e| tracing::warn!(error = %e, "cannot read command output"))
        .ok()
}

/// Reads stdout into the output file and applies its protocol lines as they complete.
async fn read_stdout(
    pipe: Option<tokio::net::unix::pipe::Receiver>,
    output: Arc<Mutex<Output>>,
    ctx: Context,
) {
    let Some(mut pipe) = pipe else { return };
    let mut buf = vec![0u8; 64 * 1024];
    let mut line = Vec::with_capacity(256);
    let mut overlong = false;
    while let Ok(n) = pipe.read(&mut buf).await
        && n > 0
    {
        output.lock().expect("output lock").append(&buf[..n]);
        for piece in buf[..n].split_inclusive(|b| *b == b'\n') {
            let complete = piece.ends_with(b"\n");
            let piece = piece.strip_suffix(b"\n").unwrap_or(piece);
            if !overlong && line.len() + piece.len() <= MAX_LINE {
                line.extend_from_slice(piece);
            } else {
                overlong = true;
                line.clear();
            }
            if complete {
                if !overlong {
                    apply(&ctx, String::from_utf8_lossy(&line).trim_end());
                }
                line.clear();
                overlong = false;
            }
        }
    }
}

/// Reads stderr into the output file; returns its last [`STDERR_TAIL`] bytes.
async fn read_stderr(
    pipe: Option<tokio::net::unix::pipe::Receiver>,
    output: Arc<Mutex<Output>>,
) -> String {
    let Some(mut pipe) = pipe else {
        return String::new();
    };
    let mut tail = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = pipe.read(&mut buf).await
        && n > 0
    {
        output.lock().expect("output lock").append(&buf[..n]);
        tail.extend_from_slice(&buf[..n]);
        if tail.len() > STDERR_TAIL {
            tail.drain(..tail.len() - STDERR_TAIL);
        }
    }
    String::from_utf8_lossy(&tail).trim().to_string()
}

struct AbortOnDrop([tokio::task::AbortHandle; 2]);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// The supervisor of one run, signalled through a pidfd (never another process that reused
/// its id), and recorded in `groups_dir` while it runs. Dropped (done, or the run dropped at
/// shutdown), it tells the supervisor to kill everything left.
struct Supervisor {
    pid: i32,
    pidfd: Option<std::os::fd::OwnedFd>,
    record: PathBuf,
}

impl Supervisor {
    fn new(pid: i32, groups_dir: &Path, argv: &[String]) -> Supervisor {
        use std::os::fd::FromRawFd;
        // SAFETY: pidfd_open on our own unreaped child; the new fd is owned from here on.
        let pidfd = unsafe {
            let fd = libc::syscall(libc::SYS_pidfd_open, pid, 0) as i32;
            (fd >= 0).then(|| std::os::fd::OwnedFd::from_raw_fd(fd))
        };
        let record = groups_dir.join(pid.to_string());
        let started = start_time(pid).unwrap_or_default();
        let _ = std::fs::write(&record, format!("{pid} {started}\n{}", argv.join(" ")));
        Supervisor { pid, pidfd, record }
    }

    fn signal(&self, signal: i32) {
        use std::os::fd::AsRawFd;
        if let Some(fd) = &self.pidfd {
            // SAFETY: pidfd_send_signal with a valid pidfd and no siginfo.
            unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    fd.as_raw_fd(),
                    signal,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                );
            }
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.signal(supervisor::KILL_ALL);
        let _ = std::fs::remove_file(&self.record);
    }
}

/// A process's start time, in clock ticks since boot (field 22 of `/proc/PID/stat`): with
/// the id, it tells one process from a later one that reused the id.
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces or parentheses.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
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
