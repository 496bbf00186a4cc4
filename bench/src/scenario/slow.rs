//! `slow`: K subscribers that stop reading next to M that read, on one channel that a
//! publisher floods.
//!
//! A server must not let a client that does not read grow its memory without bound: ringcast
//! closes it with Pusher code 4100 once its outbound queue passes the limit. The stalled
//! clients shrink their receive buffer (`SO_RCVBUF`) so the kernel stops absorbing the flood
//! early. After the flood the stalled clients read again and report how the server ended them;
//! the readers must have received every message in order all along, at the pace the
//! publisher's window allows.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::cli::{SlowArgs, pick};
use crate::error::BenchError;
use crate::report::Report;
use crate::runner::Monitor;
use crate::scenario::{
    End, Fleet, PubSpec, SubKind, SubSpec, collect, integrity, merged, report_integrity,
    require_app, setup_timeout, start, target, wait_subscribed,
};
use crate::stats::{Percentiles, Phase};
use crate::sys::monotonic_ns;

/// Runs the scenario.
pub fn run(args: &SlowArgs) -> Result<Report, BenchError> {
    let common = &args.common;
    let stalled = pick(args.stalled, common.smoke, 10, 4);
    let readers = pick(args.readers, common.smoke, 100, 20).max(1);
    let duration = common.duration_or(10.0);
    let threads = common.thread_count();
    let total = stalled + readers;
    let target = target(common, total + 1)?;
    require_app(&target)?;
    let fleet = Arc::new(Fleet::new(target, threads, 1, 1, args.payload, 4096));
    let shared = fleet.shared.clone();
    let subs = (0..total)
        .map(|i| SubSpec {
            index: i,
            channel: 0,
            stream: 0,
            kind: if i < stalled {
                SubKind::Stalled
            } else {
                SubKind::Reader
            },
            raw: None,
        })
        .collect();
    let pubs = vec![PubSpec {
        index: total,
        channels: vec![0],
        interval: None,
        window: args.window * readers as u64,
    }];
    let rx = start(&fleet, threads, !common.no_pin, subs, pubs);
    let mut monitor = Monitor::new(shared.clone(), common.pid, common.quiet);
    monitor.target_connections = total as u64;
    wait_subscribed(&mut monitor, &shared, total, setup_timeout(total))?;
    let rss_before = monitor.server_memory();
    let run_start = monotonic_ns();
    shared.set_phase(Phase::Run);
    monitor.hold(Duration::from_secs_f64(duration));
    let c = &shared.counters;
    shared.set_phase(Phase::Drain);
    monitor.wait_until(Duration::from_secs(10), |_| {
        c.publishers_active.load(Ordering::SeqCst) == 0
            && c.ops.load(Ordering::SeqCst) >= c.expected.load(Ordering::SeqCst)
    });
    let elapsed = (monotonic_ns() - run_start) as f64 / 1e9;
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
    if let Some(m) = rss_before {
        report.metric("server_rss_before_flood", mib(m.rss), "MiB");
    }
    if let Some(m) = rss_after_flood {
        report.metric("server_rss_after_flood", mib(m.rss), "MiB");
    }
    let peak = monitor.samples.iter().filter_map(|s| s.server_rss).max();
    if let Some(p) = peak {
        report.metric("server_rss_peak", mib(p), "MiB");
    }
    let (latency, publish) = merged(&outs);
    report
        .latency
        .push(Percentiles::of("readers end-to-end", &latency));
    report
        .latency
        .push(Percentiles::of("publish request (HTTP API)", &publish));
    let i = integrity(&outs, &fleet.published);
    report_integrity(&mut report, &i);
    report.check(
        "stalled_clients_closed_with_4100",
        got_4100 == stalled as u64,
        format!("{got_4100} of {stalled} (other code {other_close}, no close frame {broken}, open {open})"),
    );
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
