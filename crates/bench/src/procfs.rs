//! What `/proc` says about a process: CPU time used and resident memory.

use anyhow::Context;

/// Seconds of CPU (user and system) the processes have used so far, together.
pub fn cpu_seconds(pids: &[u32]) -> anyhow::Result<f64> {
    pids.iter().map(|&pid| process_cpu_seconds(pid)).sum()
}

fn process_cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    // The command name is in parentheses and may hold spaces: count fields after it.
    let (_, rest) = text
        .rsplit_once(')')
        .with_context(|| format!("unexpected {path}"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("unexpected {path}"))
    };
    // utime and stime are fields 14 and 15 of the line; the state (field 3) is index 0 here.
    let total = ticks(11)? + ticks(12)?;
    // SAFETY: sysconf only reads a system constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    anyhow::ensure!(per_second > 0, "cannot read the clock tick rate");
    Ok(total as f64 / per_second as f64)
}

/// Resident memory of a process, in megabytes (10^6 bytes).
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss_mb: f64,
    /// `VmHWM`: the most that was ever resident.
    pub peak_mb: f64,
}

pub fn memory(pid: u32) -> anyhow::Result<Memory> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    let field = |key: &str| -> anyhow::Result<f64> {
        let kib: f64 = text
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no {key} in {path}"))?;
        Ok(kib * 1024.0 / 1e6)
    };
    Ok(Memory {
        rss_mb: field("VmRSS:")?,
        peak_mb: field("VmHWM:")?,
    })
}
