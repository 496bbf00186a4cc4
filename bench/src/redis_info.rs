//! The CPU a Redis server has used, from its own `INFO cpu` (`used_cpu_sys` and
//! `used_cpu_user`, the process's resource usage in seconds to the microsecond): finer than
//! `/proc/PID/stat`'s hundredths of a second, which a few dozen broadcasts do not reach.
//!
//! One inline command over a plain TCP connection and one bulk reply: no Redis client needed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Seconds of CPU (system and user) the Redis at `addr` (`host:port`) has used, if it answers.
pub fn cpu_seconds(addr: &str) -> Option<f64> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"INFO cpu\r\n").ok()?;
    let mut r = BufReader::new(s);
    let mut head = String::new();
    r.read_line(&mut head).ok()?;
    let len: usize = head.trim().strip_prefix('$')?.parse().ok()?;
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    parse_cpu(&String::from_utf8_lossy(&body))
}

/// `used_cpu_sys + used_cpu_user` of an `INFO cpu` reply.
pub fn parse_cpu(info: &str) -> Option<f64> {
    let field = |name: &str| -> Option<f64> {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))?
            .trim()
            .parse()
            .ok()
    };
    Some(field("used_cpu_sys")? + field("used_cpu_user")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_times_are_added() {
        let info = "# CPU\r\nused_cpu_sys:1.250000\r\nused_cpu_user:0.500000\r\nused_cpu_sys_children:9\r\n";
        assert_eq!(parse_cpu(info), Some(1.75));
        assert_eq!(parse_cpu("# CPU\r\n"), None);
    }
}
