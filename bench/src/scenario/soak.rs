//! `soak`: many connections held for a long time while some churn (connect, subscribe,
//! unsubscribe, disconnect) and publishers publish at a steady rate.
//!
//! What it shows: the server's memory over time (a leak is a rising line on the chart), and
//! that subscribers who stayed connected the whole time lost, duplicated and reordered nothing
//! while others came and went around them.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::cli::{SoakArgs, pick};
use crate::error::BenchError;
use crate::report::Report;
use crate::scenario::{
    Fleet, PubSpec, SubKind, SubSpec, collect, drain_and_finish, launch, report_deliveries,
};
use crate::stats::Phase;
use crate::sys::monotonic_ns;

/// Runs the scenario.
pub fn run(args: &SoakArgs) -> Result<Report, BenchError> {
    let common = &args.common;
    let n = pick(args.connections, common.smoke, 1000, 60).max(2);
    let channels = pick(args.channels, common.smoke, 10, 4).max(1);
    let churn = pick(args.churn, common.smoke, 20.0, 10.0);
    let rate = pick(args.rate, common.smoke, 100.0, 50.0);
    let duration = common.duration_or(60.0);
    let pool = args
        .churn_pool
        .unwrap_or(if churn > 0.0 { (n / 10).max(1) } else { 0 })
        .min(n - 1);
    let stable = n - pool;
    let threads = common.thread_count();
    let publishers = channels.min(4);
    let fleet = Arc::new(Fleet::for_app(
        common,
        n + publishers,
        channels,
        args.payload,
        1024,
    )?);
    let shared = fleet.shared.clone();
    let hold_ms = if churn > 0.0 {
        (pool as f64 / churn * 1000.0).max(10.0) as u64
    } else {
        0
    };
    let subs = (0..n)
        .map(|i| {
            let reader = SubSpec::reader(i, channels);
            if i < stable {
                reader
            } else {
                SubSpec {
                    kind: SubKind::Churner {
                        hold_ms,
                        channels: channels as u32,
                    },
                    ..reader
                }
            }
        })
        .collect();
    let interval = Some(Duration::from_secs_f64(publishers as f64 / rate.max(0.001)));
    let pubs = (0..publishers)
        .map(|p| PubSpec::owning(n + p, p, publishers, channels, interval, 0))
        .collect();
    let (rx, mut monitor) = launch(&fleet, common, subs, pubs, stable)?;
    let rss_start = monitor.server_memory();
    let run_start = monotonic_ns();
    shared.set_phase(Phase::Run);
    monitor.hold(Duration::from_secs_f64(duration));
    let rss_end = monitor.server_memory();
    let elapsed = drain_and_finish(&mut monitor, &shared, Duration::from_secs(10), run_start);
    let outs = collect(&rx, threads, Duration::from_secs(30))?;

    let c = &shared.counters;
    let mut report = Report::new("soak", "deliveries");
    report.param("connections", n as u64);
    report.param("stable", stable as u64);
    report.param("churn_pool", pool as u64);
    report.param("churn_per_sec", churn);
    report.param("channels", channels as u64);
    report.param("rate", rate);
    report.param("payload_bytes", args.payload as u64);
    report.param("duration_s", duration);
    let published = c.published.load(Ordering::SeqCst);
    report.metric("published", published as f64, "requests");
    report.metric("publish_errors", c.errors.load(Ordering::SeqCst) as f64, "");
    let delivered = c.ops.load(Ordering::SeqCst);
    report.metric(
        "stable_deliveries_per_sec",
        delivered as f64 / elapsed,
        "1/s",
    );
    report.metric(
        "delivered",
        delivered as f64,
        "messages (stable subscribers)",
    );
    let churners: Vec<_> = outs
        .iter()
        .flat_map(|o| &o.subs)
        .filter(|r| matches!(r.kind, SubKind::Churner { .. }))
        .collect();
    let cycles: u64 = churners.iter().map(|r| r.cycles).sum();
    let churn_dups: u64 = churners.iter().map(|r| r.tracker.duplicates).sum();
    let churn_late: u64 = churners.iter().map(|r| r.tracker.reordered).sum();
    let churn_gaps: u64 = churners.iter().map(|r| r.churn_gaps).sum();
    report.metric("churn_cycles", cycles as f64, "");
    report.metric("churn_cycles_per_sec", cycles as f64 / duration, "1/s");
    report.metric("churn_failures", c.failed.load(Ordering::SeqCst) as f64, "");
    report.metric("churner_duplicated", churn_dups as f64, "messages");
    report.metric("churner_out_of_order", churn_late as f64, "messages");
    report.metric("churner_gaps", churn_gaps as f64, "messages");
    let mib = |b: u64| b as f64 / 1048576.0;
    if let (Some(a), Some(b)) = (rss_start, rss_end) {
        report.metric("server_rss_start", mib(a.rss), "MiB");
        report.metric("server_rss_end", mib(b.rss), "MiB");
        report.metric("server_rss_growth", mib(b.rss) - mib(a.rss), "MiB");
    }
    let peak = monitor.server_rss_peak();
    if let Some(p) = peak {
        report.metric("server_rss_peak", mib(p), "MiB (setup included)");
    }
    let i = report_deliveries(&mut report, &outs, &fleet.published, "end-to-end");
    report.check(
        "stable_subscribers_stayed",
        i.closed == 0 && i.failed == 0,
        format!("{} closed by the server, {} failed", i.closed, i.failed),
    );
    report.check(
        "churners_in_order",
        churn_dups == 0 && churn_late == 0,
        format!("{cycles} cycles, duplicated {churn_dups}, out of order {churn_late}"),
    );
    monitor.finish(&mut report);
    Ok(report)
}
