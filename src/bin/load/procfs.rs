//! What the load generator reads about the server under test from /proc: CPU seconds
//! (user + system, all threads, from `/proc/<pid>/stat`), resident memory (`VmRSS` from
//! `/proc/<pid>/status`), and the CPU time of each thread (`/proc/<pid>/task/*/stat`) to
//! name the busiest one.

use std::time::Duration;

use anyhow::{anyhow, Context};

/// One reading of a process.
#[derive(Debug, Clone, Default)]
pub struct ProcSample {
    /// User + system CPU time of all threads.
    pub cpu: Duration,
    /// Resident set size.
    pub rss_bytes: u64,
    /// Its anonymous part (`RssAnon`: heap, stacks), without the pages of the binary and
    /// libraries that running new code paths maps in once (`RssFile`).
    pub rss_anon_bytes: u64,
    /// (thread name, CPU time) of each thread.
    pub threads: Vec<(u32, String, Duration)>,
    /// Datagrams the kernel dropped on the process' UDP sockets (full receive buffer), from
    /// `/proc/<pid>/net/udp` (its network namespace) matched to its socket inodes.
    pub udp_drops: u64,
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// (comm, utime + stime) of a `stat` line.
fn parse_stat(line: &str) -> Option<(String, Duration)> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let comm = line.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = line.get(close + 2..)?.split_whitespace().collect();
    // Fields after the comm start at field 3 (state); utime is field 14, stime 15.
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((
        comm,
        Duration::from_secs_f64((utime + stime) as f64 / clock_ticks()),
    ))
}

/// Reads CPU time, RSS and per-thread CPU of `pid`.
pub fn sample(pid: u32) -> anyhow::Result<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat (is the server running?)"))?;
    let (_, cpu) = parse_stat(&stat).ok_or_else(|| anyhow!("unreadable /proc/{pid}/stat"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let kib = |field: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let (rss_kib, rss_anon_kib) = (kib("VmRSS:"), kib("RssAnon:"));
    let mut threads = Vec::new();
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for entry in dir.flatten() {
            let Some(tid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some((comm, t)) = std::fs::read_to_string(entry.path().join("stat"))
                .ok()
                .as_deref()
                .and_then(parse_stat)
            {
                threads.push((tid, comm, t));
            }
        }
    }
    Ok(ProcSample {
        cpu,
        rss_bytes: rss_kib * 1024,
        rss_anon_bytes: rss_anon_kib * 1024,
        threads,
        udp_drops: udp_drops(pid),
    })
}

/// Sum of the `drops` column of `/proc/<pid>/net/udp` over the sockets `pid` holds.
fn udp_drops(pid: u32) -> u64 {
    let mut inodes = std::collections::HashSet::new();
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for entry in dir.flatten() {
            if let Ok(target) = std::fs::read_link(entry.path()) {
                let t = target.to_string_lossy();
                if let Some(inode) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                    inodes.insert(inode.to_string());
                }
            }
        }
    }
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/udp")).unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let inode = f.get(9)?;
            inodes
                .contains(*inode)
                .then(|| f.last()?.parse::<u64>().ok())
                .flatten()
        })
        .sum()
}

/// The thread that used the most CPU between two samples: (name, seconds).
pub fn busiest_thread(before: &ProcSample, after: &ProcSample) -> Option<(String, f64)> {
    after
        .threads
        .iter()
        .map(|(tid, name, t)| {
            let prev = before
                .threads
                .iter()
                .find(|(b, _, _)| b == tid)
                .map(|(_, _, d)| *d)
                .unwrap_or_default();
            (name.clone(), t.saturating_sub(prev).as_secs_f64())
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_line_with_spaces_in_comm() {
        let line = "42 (media worker) S 1 42 42 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 3 0";
        let (comm, cpu) = parse_stat(line).expect("parses");
        assert_eq!(comm, "media worker");
        assert!((cpu.as_secs_f64() - 300.0 / clock_ticks()).abs() < 1e-9);
    }

    #[test]
    fn reads_our_own_process() {
        let s = sample(std::process::id()).expect("self");
        assert!(s.rss_bytes > 0);
        assert!(s.rss_anon_bytes > 0 && s.rss_anon_bytes <= s.rss_bytes);
        assert!(!s.threads.is_empty());
    }
}
