//! The agent process's own metrics, in the names Prometheus client
//! libraries use: `process_cpu_seconds_total`, `process_resident_memory_bytes`,
//! `process_open_fds`, `process_max_fds`. Read at each scrape from the
//! kernel (`getrusage`, `getrlimit`, and `/proc/self` on Linux); a value the
//! system cannot give is left out rather than reported as 0.

use std::fmt::Write;

/// Appends the process metrics to `out`.
pub fn render(out: &mut String) {
    let families: [(&str, &str, &str, Option<f64>); 4] = [
        (
            "process_cpu_seconds_total",
            "counter",
            "CPU time the agent has used, user and system, in seconds.",
            cpu_seconds(),
        ),
        (
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory of the agent in bytes.",
            resident_bytes().map(|b| b as f64),
        ),
        (
            "process_open_fds",
            "gauge",
            "File descriptors the agent has open (files, sockets, pipes).",
            open_fds().map(|n| n as f64),
        ),
        (
            "process_max_fds",
            "gauge",
            "The most file descriptors the agent may open (its soft limit).",
            max_fds().map(|n| n as f64),
        ),
    ];
    for (name, kind, help, value) in families {
        let Some(v) = value else { continue };
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {v}");
    }
}

/// User plus system CPU time of the whole process.
#[cfg(unix)]
fn cpu_seconds() -> Option<f64> {
    // SAFETY: `getrusage` only writes into the struct it is given.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut u) != 0 {
            return None;
        }
        u
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Some(secs(usage.ru_utime) + secs(usage.ru_stime))
}

#[cfg(not(unix))]
fn cpu_seconds() -> Option<f64> {
    None
}

/// The soft limit on open file descriptors.
#[cfg(unix)]
fn max_fds() -> Option<u64> {
    // SAFETY: `getrlimit` only writes into the struct it is given.
    let limit = unsafe {
        let mut l: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) != 0 {
            return None;
        }
        l
    };
    (limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur as u64)
}

#[cfg(not(unix))]
fn max_fds() -> Option<u64> {
    None
}

/// `VmRSS` of `/proc/self/status`, in bytes.
#[cfg(target_os = "linux")]
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_rss(&status)
}

#[cfg(not(target_os = "linux"))]
fn resident_bytes() -> Option<u64> {
    None
}

/// The `VmRSS:   1234 kB` line, in bytes.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Entries of `/proc/self/fd` (less the one the listing itself opens).
#[cfg(target_os = "linux")]
fn open_fds() -> Option<u64> {
    let n = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    Some(n.saturating_sub(1))
}

#[cfg(not(target_os = "linux"))]
fn open_fds() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_is_read_from_the_status_line_in_bytes() {
        let status = "Name:\tsluice\nVmPeak:\t  9000 kB\nVmRSS:\t  1234 kB\nThreads:\t4\n";
        assert_eq!(parse_vm_rss(status), Some(1234 * 1024));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_cpu_time_memory_and_descriptors() {
        let mut out = String::new();
        render(&mut out);
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
        ] {
            assert!(out.contains(&format!("\n{name} ")), "{name} in\n{out}");
        }
        assert!(resident_bytes().is_some_and(|b| b > 1 << 20));
        // stdin, stdout and stderr at least.
        assert!(open_fds().is_some_and(|n| n >= 3));
    }
}
