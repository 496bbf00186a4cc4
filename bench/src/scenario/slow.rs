//! `slow`: K subscribers that stop reading next to M that read, on one channel that a
//! publisher floods.
//!
//! A server must not let a client that does not read grow its memory without bound: ringcast
//! closes it with Pusher code 4100 once its outbound queue passes the limit. The stalled
//! clients shrink their receive buffer (`SO_RCVBUF`) so the kernel stops absorbing the flood
//! early. The readers must receive every message in order all along, at the pace the
//! publisher's window allows.
//!
//! A client that never reads again cannot learn how it was closed, and a server must not wait
//! for it forever: ringcast resets a closing connection that has taken nothing for 5 seconds.
//! So by default each stalled client reads again once the flood has sent it more than the
//! server could possibly hold for it (the configured queue bound plus its socket's send
//! buffer), like a phone back from a tunnel, and reports how the server ended it: 4100.
//! With `--stall-bytes 0` they stay stalled until the flood is over, and the check is only
//! that the server let go of every one of them.
//!
//! The memory bound a configuration implies is the server's memory before the flood plus, per
//! connection, the queue bound and one frame. Broadcast frames are shared between queues, so
//! ringcast stays far below it; the kernel's socket buffers are reported beside it, for the
//! whole host (both ends of every loopback connection) and for the send side of the server's
//! own sockets alone.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::cli::{SlowArgs, pick};
use crate::error::BenchError;
use crate::procfs;
use crate::report::Report;
use crate::scenario::{
    End, Fleet, PubSpec, SubKind, SubSpec, collect, drain, launch, report_deliveries,
};
use crate::stats::Phase;
use crate::sys::monotonic_ns;

/// Runs the scenario.
pub fn run(args: &SlowArgs) -> Result<Report, BenchError> {
    let common = &args.common;
    let stalled = pick(args.stalled, common.smoke, 10, 4);
    let readers = pick(args.readers, common.smoke, 100, 20).max(1);
    let duration = common.duration_or(10.0);
    let threads = common.thread_count();
    let total = stalled + readers;
    // A channel event frame: the payload plus the JSON envelope and the frame header.
    let frame_bytes = args.payload as u64 + 128;
    let send_buffer = match args.send_buffer_bytes {
        0 => procfs::tcp_wmem_max().unwrap_or(4 << 20),
        n => n,
    };
    let stall_bytes = args
        .stall_bytes
        .unwrap_or(args.max_outbound_bytes + send_buffer + (64 << 10));
    let mut fleet = Fleet::for_app(common, total + 1, 1, args.payload, 4096)?;
    if stall_bytes > 0 {
        // Counted in payload bytes, which are fewer than frame bytes: never early.
        fleet.stall_until = stall_bytes.div_ceil(args.payload.max(1) as u64);
    }
    let fleet = Arc::new(fleet);
    let shared = fleet.shared.clone();
    let subs = (0..total)
        .map(|i| SubSpec {
            kind: if i < stalled {
                SubKind::Stalled
            } else {
                SubKind::Reader
            },
            ..SubSpec::reader(i, 1)
        })
        .collect();
    let pubs = vec![PubSpec {
        index: total,
        channels: vec![0],
        interval: None,
        window: args.window * readers as u64,
    }];
    let (rx, mut monitor) = launch(&fleet, common, subs, pubs, total)?;
    // The server's own share of the kernel's socket memory: the send side of its sockets, on
    // the ports the clients reach it at (a loopback run only: on another host, `ss` here
    // sees the clients' ends).
    let target = &fleet.target;
    monitor.send_buffer_ports = (0..target.nodes())
        .map(|n| target.ws_for(n))
        .filter(|e| e.is_loopback())
        .map(|e| e.addr.port())
        .collect();
    let rss_before = monitor.server_memory();
    let run_start = monotonic_ns();
    shared.set_phase(Phase::Run);
    monitor.hold(Duration::from_secs_f64(duration));
    let c = &shared.counters;
    // The flood goes on past the duration until every stalled client has been sent enough
    // to come back and read its close (bounded by the flood timeout): how long that takes
    // depends on the machine, what the scenario checks does not.
    monitor.wait_until(Duration::from_secs_f64(args.flood_timeout), |_| {
        c.closed.load(Ordering::SeqCst) >= stalled as u64
    });
    let elapsed = drain(&mut monitor, &shared, Duration::from_secs(10), run_start);
    let rss_after_flood = monitor.server_memory();
    shared.set_phase(Phase::Release);
    monitor.wait_until(Duration::from_secs_f64(args.release_timeout), |_| {
        c.closed.load(Ordering::SeqCst) >= stalled as u64
    });
    shared.set_phase(Phase::Done);
    let outs = collect(&rx, threads, Duration::from_secs(30))?;

    let mut report = Report::new("slow", "deliveries");
    report.param("stalled", stalled as u64);
    report.param("readers", readers as u64);
    report.param("payload_bytes", args.payload as u64);
    report.param("window", args.window);
    report.param("duration_s", duration);
    report.param("max_outbound_bytes", args.max_outbound_bytes);
    report.param("send_buffer_bytes", args.send_buffer_bytes);
    report.param("stall_bytes", stall_bytes);
    let delivered = c.ops.load(Ordering::SeqCst);
    let published = c.published.load(Ordering::SeqCst);
    report.metric("published", published as f64, "requests");
    report.metric("publishes_per_sec", published as f64 / elapsed, "1/s");
    report.metric(
        "reader_deliveries_per_sec",
        delivered as f64 / elapsed,
        "1/s",
    );
    report.metric("delivered", delivered as f64, "messages (readers)");
    report.metric(
        "flood_bytes_per_stalled_client",
        (published * args.payload as u64) as f64 / 1048576.0,
        "MiB (payload only)",
    );
    let (mut got_4100, mut other_close, mut broken, mut open) = (0u64, 0u64, 0u64, 0u64);
    for r in outs
        .iter()
        .flat_map(|o| &o.subs)
        .filter(|r| r.kind == SubKind::Stalled)
    {
        match r.end {
            _ if r.error_code == Some(4100) || r.end == End::Closed(Some(4100)) => got_4100 += 1,
            End::Closed(_) => other_close += 1,
            End::Broken => broken += 1,
            _ => open += 1,
        }
    }
    report.metric("stalled_closed_4100", got_4100 as f64, "clients");
    report.metric("stalled_closed_other_code", other_close as f64, "clients");
    report.metric("stalled_dropped_without_close", broken as f64, "clients");
    report.metric("stalled_still_open", open as f64, "clients");
    let mib = |b: u64| b as f64 / 1048576.0;
    if let Some(m) = rss_after_flood {
        report.metric("server_rss_after_flood", mib(m.rss), "MiB");
    }
    let peak = monitor.server_rss_peak();
    if let (Some(before), Some(peak)) = (rss_before, peak) {
        let bound = before.rss + total as u64 * (args.max_outbound_bytes + frame_bytes);
        report.metric("server_rss_before_flood", mib(before.rss), "MiB");
        report.metric("server_rss_peak", mib(peak), "MiB");
        report.metric(
            "server_rss_bound",
            mib(bound),
            "MiB (before + connections × (queue bound + frame))",
        );
        report.metric(
            "server_rss_peak_growth_per_stalled_client",
            (peak.saturating_sub(before.rss)) as f64 / stalled.max(1) as f64,
            "bytes",
        );
        report.check(
            "server_memory_within_bound",
            peak <= bound,
            format!("peak {:.1} MiB, bound {:.1} MiB", mib(peak), mib(bound)),
        );
    }
    let tcp = monitor.samples.iter().filter_map(|s| s.kernel_tcp);
    if let (Some(lo), Some(hi)) = (tcp.clone().min(), tcp.max()) {
        report.metric("kernel_tcp_buffers_min", mib(lo), "MiB (whole host)");
        report.metric("kernel_tcp_buffers_peak", mib(hi), "MiB (whole host)");
    }
    if let Some(peak) = monitor
        .samples
        .iter()
        .filter_map(|s| s.server_send_buffers)
        .max()
    {
        report.metric(
            "server_send_buffers_peak",
            mib(peak),
            "MiB (send side of the server's sockets, ss -tm)",
        );
        report.metric(
            "server_send_buffers_peak_per_stalled_client",
            peak as f64 / stalled.max(1) as f64,
            "bytes",
        );
    }
    let i = report_deliveries(&mut report, &outs, &fleet.published, "readers end-to-end");
    let outcome = format!(
        "{got_4100} of {stalled} got 4100 (other code {other_close}, no close frame {broken}, open {open})"
    );
    if stall_bytes > 0 {
        report.check(
            "stalled_clients_closed_with_4100",
            got_4100 == stalled as u64,
            outcome,
        );
    } else {
        report.check(
            "stalled_clients_released",
            open == 0 && other_close == 0,
            outcome,
        );
    }
    report.check(
        "readers_kept_up",
        i.closed == 0 && i.failed == 0 && delivered > 0,
        format!(
            "{} readers closed, {} failed, {delivered} deliveries",
            i.closed, i.failed
        ),
    );
    monitor.finish(&mut report);
    Ok(report)
}
