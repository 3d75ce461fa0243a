//! What a benchmarked process cost: CPU seconds and peak resident memory, read from `/proc`.

use std::path::PathBuf;

/// CPU time (user + system) and peak RSS of a live process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessCost {
    /// User plus system CPU seconds since the process started.
    pub cpu_seconds: f64,
    /// Peak resident set size in bytes (`VmHWM`).
    pub peak_rss_bytes: u64,
}

/// Reads the cost of process `pid` (Linux).
///
/// # Errors
/// The process is gone or `/proc` is unreadable.
pub fn cost(pid: u32) -> anyhow::Result<ProcessCost> {
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let stat = std::fs::read_to_string(proc.join("stat"))?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow::anyhow!("unexpected /proc/{pid}/stat: {stat}"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat; `rest` starts at field 3.
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(i - 3)
            .ok_or_else(|| anyhow::anyhow!("/proc/{pid}/stat has no field {i}"))?
            .parse::<f64>()?)
    };
    // The kernel's USER_HZ is 100 on every Linux this runs on.
    let cpu_seconds = (ticks(14)? + ticks(15)?) / 100.0;
    let status = std::fs::read_to_string(proc.join("status"))?;
    let peak_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("/proc/{pid}/status has no VmHWM"))?;
    Ok(ProcessCost {
        cpu_seconds,
        peak_rss_bytes: peak_kb * 1024,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_cost() {
        let me = cost(std::process::id()).unwrap();
        assert!(me.peak_rss_bytes > 1024 * 1024, "{me:?}");
        assert!(me.cpu_seconds >= 0.0);
    }
}
