//! Memory figures from `/proc`: a process's resident memory and the kernel's socket memory.
//! The send-side memory of one server's own sockets comes from `ss` (iproute2's socket
//! statistics over netlink), which `/proc` does not give per socket.
//!
//! `VmRSS` is everything resident, `VmHWM` its highest value as of the last unmapping; `RssAnon` is the heap and stacks, the part that grows per
//! connection in user space (`RssFile` is the mapped binary and libraries). `/proc/net/sockstat`
//! counts TCP socket buffers in pages for the whole machine, both ends of every loopback
//! connection included.

use std::fs;

/// Resident memory of one process, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProcMemory {
    /// `VmRSS`.
    pub rss: u64,
    /// `RssAnon`.
    pub rss_anon: u64,
    /// `VmHWM`: the highest `VmRSS` the kernel has recorded. It records it when memory is
    /// unmapped, so a peak handed back between two samples counts; a peak still resident is
    /// only in `VmRSS`.
    pub rss_peak: u64,
}

/// Reads `/proc/{pid}/status` (`pid` "self" for this process).
pub fn process_memory(pid: &str) -> Option<ProcMemory> {
    parse_status(&fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

/// Parses the memory lines of a `status` file.
pub fn parse_status(text: &str) -> Option<ProcMemory> {
    let kb = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        let value = line[name.len()..].trim().trim_end_matches("kB").trim();
        value.parse::<u64>().ok().map(|v| v * 1024)
    };
    Some(ProcMemory {
        rss: kb("VmRSS:")?,
        rss_anon: kb("RssAnon:").unwrap_or(0),
        rss_peak: kb("VmHWM:").unwrap_or(0),
    })
}

/// Clock ticks per second of `/proc/PID/stat`'s times: Linux's `USER_HZ`, 100 on every
/// architecture it exposes to user space in that file.
const USER_HZ: f64 = 100.0;

/// Seconds of CPU (user and system) process `pid` has used, from `/proc/PID/stat`.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    parse_stat_cpu(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// `utime + stime` of a `/proc/PID/stat` line, in seconds. The command name (field 2) may hold
/// spaces and parentheses, so the fields are counted after its last `)`.
pub fn parse_stat_cpu(text: &str) -> Option<f64> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After the name: state (3), ppid ... majflt ... then utime (14) and stime (15).
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// The TCP line of `/proc/net/sockstat`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SockStat {
    /// TCP sockets in use.
    pub tcp_inuse: u64,
    /// TCP sockets allocated (including orphans and TIME_WAIT-less closing ones).
    pub tcp_alloc: u64,
    /// TCP socket buffer memory in bytes (the kernel counts pages).
    pub tcp_mem_bytes: u64,
}

/// Reads `/proc/net/sockstat`.
pub fn sockstat() -> Option<SockStat> {
    parse_sockstat(&fs::read_to_string("/proc/net/sockstat").ok()?)
}

/// Parses `TCP: inuse N orphan N tw N alloc N mem N`.
pub fn parse_sockstat(text: &str) -> Option<SockStat> {
    let line = text.lines().find(|l| l.starts_with("TCP:"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let field = |name: &str| -> Option<u64> {
        let i = words.iter().position(|w| *w == name)?;
        words.get(i + 1)?.parse().ok()
    };
    Some(SockStat {
        tcp_inuse: field("inuse")?,
        tcp_alloc: field("alloc")?,
        tcp_mem_bytes: field("mem")? * page_size(),
    })
}

fn page_size() -> u64 {
    4096
}

/// Bytes queued for sending in the kernel (`wmem_queued`, `ss -tm`'s `w`) on every connected
/// TCP socket whose local port is one of `ports`: on a loopback run, the send side of the
/// server's own sockets, which is its share of `/proc/net/sockstat`'s total (the other share
/// is the clients' receive buffers). `None` when `ss` cannot be run.
pub fn send_queued(ports: &[u16]) -> Option<u64> {
    if ports.is_empty() {
        return None;
    }
    let filter = ports
        .iter()
        .map(|p| format!("sport = :{p}"))
        .collect::<Vec<_>>()
        .join(" or ");
    let out = std::process::Command::new("ss")
        .args(["-tmnH", "state", "connected"])
        .arg(format!("( {filter} )"))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| sum_wmem_queued(&String::from_utf8_lossy(&out.stdout)))
}

/// Adds up the `w` fields of every `skmem:(...)` in `ss -m` output.
pub fn sum_wmem_queued(text: &str) -> u64 {
    text.split("skmem:(")
        .skip(1)
        .filter_map(|rest| {
            let fields = &rest[..rest.find(')')?];
            fields
                .split(',')
                .find_map(|f| f.strip_prefix('w').and_then(|v| v.parse::<u64>().ok()))
        })
        .sum()
}

/// The largest send buffer the kernel grows a TCP socket to (the last `tcp_wmem` field).
pub fn tcp_wmem_max() -> Option<u64> {
    parse_last_field(&fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem").ok()?)
}

fn parse_last_field(text: &str) -> Option<u64> {
    text.split_whitespace().last()?.parse().ok()
}

/// Machine facts for reports.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Machine {
    /// Online CPUs.
    pub nproc: usize,
    /// CPU model name.
    pub cpu: String,
    /// Kernel release.
    pub kernel: String,
}

/// Reads the machine facts.
pub fn machine() -> Machine {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    Machine {
        nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu,
        kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wmem_queued_is_summed_over_sockets() {
        let text = "ESTAB 0 0 127.0.0.1:8092 127.0.0.1:40000\n\t skmem:(r0,rb131072,t0,tb65536,f0,w66304,o0,bl0,d0)\n\
                    ESTAB 0 0 127.0.0.1:8092 127.0.0.1:40002 skmem:(r0,rb131072,t0,tb65536,f4096,w1280,o0,bl0,d0)\n";
        assert_eq!(sum_wmem_queued(text), 66304 + 1280);
        assert_eq!(sum_wmem_queued(""), 0);
    }

    #[test]
    fn tcp_wmem_last_field_is_the_max() {
        assert_eq!(parse_last_field("4096\t16384\t4194304\n"), Some(4194304));
        assert_eq!(parse_last_field(""), None);
    }

    #[test]
    fn status_and_sockstat_parse() {
        let status =
            "Name:\tringcast\nVmHWM:\t   20000 kB\nVmRSS:\t   12345 kB\nRssAnon:\t    1000 kB\n";
        assert_eq!(
            parse_status(status),
            Some(ProcMemory {
                rss: 12345 * 1024,
                rss_anon: 1000 * 1024,
                rss_peak: 20000 * 1024,
            })
        );
        let sock =
            "sockets: used 10\nTCP: inuse 4 orphan 0 tw 2 alloc 6 mem 3\nUDP: inuse 0 mem 0\n";
        assert_eq!(
            parse_sockstat(sock),
            Some(SockStat {
                tcp_inuse: 4,
                tcp_alloc: 6,
                tcp_mem_bytes: 3 * 4096
            })
        );
        assert!(process_memory("self").unwrap().rss > 0);
        assert!(sockstat().is_some());
        assert!(cpu_seconds(std::process::id()).is_some());
        let line = "12 (ring cast) S 1 12 12 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1 1 1";
        assert_eq!(parse_stat_cpu(line), Some(3.0));
    }
}
