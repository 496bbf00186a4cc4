//! `idle`: open and subscribe N connections, hold them, and report what each costs the server:
//! its resident memory (from `/proc/PID/status`, when `--pid` is given) and the kernel's TCP
//! socket memory (`/proc/net/sockstat`, both ends of each loopback connection).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::cli::{IdleArgs, pick};
use crate::error::BenchError;
use crate::procfs::{process_memory, sockstat};
use crate::report::Report;
use crate::runner::Monitor;
use crate::scenario::{Fleet, SubSpec, collect, setup_timeout, start, wait_subscribed};
use crate::stats::Phase;

/// Runs the scenario.
pub fn run(args: &IdleArgs) -> Result<Report, BenchError> {
    let common = &args.common;
    let n = pick(args.connections, common.smoke, 1000, 50);
    let channels = args.channels.max(1);
    let hold = common.duration_or(10.0);
    let threads = common.thread_count();
    let fleet = Arc::new(Fleet::for_app(common, n, channels, 0, args.read_buffer)?);
    let shared = fleet.shared.clone();
    let mut monitor = Monitor::new(shared.clone(), common.pid, common.quiet);
    monitor.target_connections = n as u64;

    let server_before = monitor.server_memory();
    let self_before = process_memory("self");
    let sock_before = sockstat();
    let subs = (0..n).map(|i| SubSpec::reader(i, channels)).collect();
    let rx = start(&fleet, threads, !common.no_pin, subs, Vec::new());
    let t0 = shared.elapsed_secs();
    wait_subscribed(&mut monitor, &shared, n, setup_timeout(n))?;
    let ramp = shared.elapsed_secs() - t0;
    shared.set_phase(Phase::Run);
    // Let freed handshake buffers and allocator caches settle before reading memory.
    monitor.hold(Duration::from_secs_f64(hold));
    let server_after = monitor.server_memory();
    let self_after = process_memory("self");
    let sock_after = sockstat();
    let c = &shared.counters;
    let open = c.subscribed.load(Ordering::SeqCst) - c.closed.load(Ordering::SeqCst);
    shared.set_phase(Phase::Done);
    collect(&rx, threads, Duration::from_secs(30))?;

    let mut report = Report::new("idle", "deliveries");
    report.param("connections", n as u64);
    report.param("channels", channels as u64);
    report.param("hold_s", hold);
    report.param("threads", threads as u64);
    report.metric("connections_open", open as f64, "");
    report.metric(
        "connections_failed",
        c.failed.load(Ordering::SeqCst) as f64,
        "",
    );
    report.metric("ramp_time", ramp, "s");
    let per = |after: u64, before: u64| after.saturating_sub(before) as f64 / open.max(1) as f64;
    if let (Some(a), Some(b)) = (server_after, server_before) {
        report.metric("server_rss_before", b.rss as f64 / 1048576.0, "MiB");
        report.metric("server_rss_after", a.rss as f64 / 1048576.0, "MiB");
        report.metric("server_rss_per_connection", per(a.rss, b.rss), "bytes");
        report.metric(
            "server_anon_per_connection",
            per(a.rss_anon, b.rss_anon),
            "bytes",
        );
    }
    if let (Some(a), Some(b)) = (sock_after, sock_before) {
        report.metric(
            "kernel_tcp_mem_delta",
            a.tcp_mem_bytes.saturating_sub(b.tcp_mem_bytes) as f64 / 1048576.0,
            "MiB",
        );
        report.metric(
            "kernel_tcp_mem_per_connection",
            per(a.tcp_mem_bytes, b.tcp_mem_bytes),
            "bytes (both ends)",
        );
        report.metric(
            "kernel_tcp_sockets_delta",
            a.tcp_alloc.saturating_sub(b.tcp_alloc) as f64,
            "",
        );
    }
    if let (Some(a), Some(b)) = (self_after, self_before) {
        report.metric("client_rss_per_connection", per(a.rss, b.rss), "bytes");
    }
    report.check(
        "all_connections_held",
        open == n as u64,
        format!("{open} of {n} open at the end"),
    );
    monitor.finish(&mut report);
    Ok(report)
}
