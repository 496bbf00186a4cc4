//! `fanout`: S subscribers over C channels, publishers on the HTTP API.
//!
//! Subscriber i joins channel i mod C. With `--rate 0` the publishers go as fast as the
//! subscribers keep up: a publish is sent only while fewer than `window` messages per
//! subscriber are published and undelivered, which finds the sustained delivery rate without
//! letting the server's per-connection queues overflow. With `--rate R` they publish R times a
//! second in all, for latency at a chosen load.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::cli::{FanoutArgs, pick};
use crate::error::BenchError;
use crate::report::Report;
use crate::scenario::{
    Fleet, PubSpec, SubSpec, collect, drain_and_finish, launch, report_deliveries,
};
use crate::stats::Phase;
use crate::sys::monotonic_ns;

/// Runs the scenario.
pub fn run(args: &FanoutArgs) -> Result<Report, BenchError> {
    let common = &args.common;
    let subscribers = pick(args.connections, common.smoke, 1000, 50);
    let channels = args.channels.clamp(1, subscribers.max(1));
    let duration = common.duration_or(10.0);
    let threads = common.thread_count();
    let publishers = args
        .publishers
        .unwrap_or(channels.min(4))
        .clamp(1, channels);
    let ceiling = if args.ceiling {
        Some(super::ceiling::run_as_child(
            subscribers,
            channels,
            args.payload,
            args.window,
            args.rate,
            duration,
            common,
        )?)
    } else {
        None
    };
    let fleet = Arc::new(Fleet::for_app(
        common,
        subscribers + publishers,
        channels,
        args.payload,
        args.read_buffer,
    )?);
    let shared = fleet.shared.clone();

    let subs: Vec<SubSpec> = (0..subscribers)
        .map(|i| SubSpec::reader(i, channels))
        .collect();
    // Subscribers per channel, for the window in deliveries.
    let per_channel = subscribers.div_ceil(channels) as u64;
    let interval =
        (args.rate > 0.0).then(|| Duration::from_secs_f64(publishers as f64 / args.rate));
    let pubs: Vec<PubSpec> = (0..publishers)
        .map(|p| {
            PubSpec::owning(
                subscribers + p,
                p,
                publishers,
                channels,
                interval,
                args.window * subscribers as u64,
            )
        })
        .collect();
    let (rx, mut monitor) = launch(&fleet, common, subs, pubs, subscribers)?;
    let ops_before = shared.counters.ops.load(Ordering::SeqCst);
    let run_start = monotonic_ns();
    shared.set_phase(Phase::Run);
    monitor.hold(Duration::from_secs_f64(duration));
    let elapsed = drain_and_finish(&mut monitor, &shared, Duration::from_secs(10), run_start);
    let outs = collect(&rx, threads, Duration::from_secs(30))?;

    let c = &shared.counters;
    let delivered = c.ops.load(Ordering::SeqCst) - ops_before;
    let mut report = Report::new("fanout", "deliveries");
    report.param("subscribers", subscribers as u64);
    report.param("channels", channels as u64);
    report.param("payload_bytes", args.payload as u64);
    report.param(
        "rate",
        if args.rate > 0.0 {
            args.rate.to_string()
        } else {
            "max".into()
        },
    );
    report.param("window", args.window);
    report.param("publishers", publishers as u64);
    report.param("duration_s", duration);
    report.param("threads", threads as u64);
    let rate = delivered as f64 / elapsed;
    report.metric("deliveries_per_sec", rate, "1/s");
    report.metric("delivered", delivered as f64, "messages");
    let published = c.published.load(Ordering::SeqCst);
    report.metric("published", published as f64, "requests");
    report.metric("publishes_per_sec", published as f64 / elapsed, "1/s");
    report.metric(
        "publish_errors",
        c.errors.load(Ordering::SeqCst) as f64,
        "requests",
    );
    report.metric("subscribers_per_channel", per_channel as f64, "");
    report.metric("elapsed", elapsed, "s");
    if let Some(c) = ceiling {
        report.metric("ceiling_deliveries_per_sec", c.deliveries_per_sec, "1/s");
        report.metric("fraction_of_ceiling", rate / c.deliveries_per_sec, "");
        report.metric("ceiling_end_to_end_p50", c.p50_ms, "ms");
        report.metric("ceiling_end_to_end_p99", c.p99_ms, "ms");
    }
    report_deliveries(
        &mut report,
        &outs,
        &fleet.published,
        "end-to-end (publish -> deliver)",
    );
    if let Some(c) = ceiling
        && let Some(e2e) = report.latency.first()
        && c.p99_ms > 0.0
    {
        // At a fixed rate, the raw sender's latency is the floor for ringcast's.
        let over = e2e.p99_ms / c.p99_ms;
        report.metric("end_to_end_p99_over_ceiling", over, "");
    }
    report.check(
        "deliveries",
        delivered > 0,
        format!("{delivered} deliveries of {published} publishes"),
    );
    monitor.finish(&mut report);
    Ok(report)
}
