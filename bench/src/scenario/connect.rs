//! `connect`: how many clients per second can connect, upgrade, receive
//! `pusher:connection_established`, subscribe and receive `subscription_succeeded`, and how
//! long that takes.
//!
//! `--concurrency` loops each open a connection, subscribe, and close it with an RST
//! (`SO_LINGER` 0): a graceful close would leave every client port in `TIME_WAIT` for a minute
//! and exhaust the ephemeral range in seconds. The loops stop at `--duration` or after
//! `--connections` handshakes.

use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::cli::{ConnectArgs, pick};
use crate::client::PusherConn;
use crate::error::BenchError;
use crate::report::Report;
use crate::runner::{Monitor, spawn_workers, ticker, wait_phase};
use crate::scenario::{OPEN_TIMEOUT, channel_name, require_app, target};
use crate::stats::{Percentiles, Phase, Shared, ThreadStats, histogram};
use crate::sys::monotonic_ns;
use crate::target::Target;
use crate::ws::SocketOpts;

/// Runs the scenario.
pub fn run(args: &ConnectArgs) -> Result<Report, BenchError> {
    let common = &args.common;
    let max = pick(args.connections, common.smoke, 1_000_000, 20_000) as u64;
    let concurrency = pick(args.concurrency, common.smoke, 64, 8).max(1);
    let duration = common.duration_or(10.0);
    let threads = common.thread_count();
    let target = Arc::new(target(common, concurrency)?);
    require_app(&target)?;
    let shared = Arc::new(Shared::new(threads));
    let started = Arc::new(AtomicU64::new(0));
    let rx = {
        let (target, shared, started) = (target.clone(), shared.clone(), started.clone());
        spawn_workers(threads, !common.no_pin, move |t| {
            let loops = (t..concurrency).step_by(threads).collect::<Vec<_>>();
            thread(target.clone(), shared.clone(), started.clone(), loops, max)
        })
    };
    let mut monitor = Monitor::new(shared.clone(), common.pid, common.quiet);
    monitor.target_connections = concurrency as u64;
    let run_start = monotonic_ns();
    shared.set_phase(Phase::Run);
    let c = &shared.counters;
    monitor.wait_until(Duration::from_secs_f64(duration), |s| {
        s.counters.ops.load(Ordering::Relaxed) + s.counters.errors.load(Ordering::Relaxed) >= max
    });
    shared.set_phase(Phase::Drain);
    // Loops finish the handshake in progress.
    monitor.wait_until(OPEN_TIMEOUT, |s| {
        s.counters.publishers_active.load(Ordering::SeqCst) == 0
    });
    let elapsed = (monotonic_ns() - run_start) as f64 / 1e9;
    shared.set_phase(Phase::Done);
    let mut latency = histogram();
    for _ in 0..threads {
        let (_, h) = rx
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| BenchError::Timeout("worker threads"))?;
        latency.add(&h).expect("same bounds");
    }
    let done = c.ops.load(Ordering::SeqCst);
    let errors = c.errors.load(Ordering::SeqCst);
    let mut report = Report::new("connect", "handshakes");
    report.param("concurrency", concurrency as u64);
    report.param("max_connections", max);
    report.param("duration_s", duration);
    report.param("threads", threads as u64);
    report.metric("handshakes_per_sec", done as f64 / elapsed, "1/s");
    report.metric("handshakes", done as f64, "");
    report.metric("failed", errors as f64, "");
    report.metric("elapsed", elapsed, "s");
    report.latency.push(Percentiles::of(
        "connect+upgrade+established+subscribed",
        &latency,
    ));
    report.check(
        "handshakes",
        done > 0,
        format!("{done} completed, {errors} failed"),
    );
    monitor.finish(&mut report);
    Ok(report)
}

async fn thread(
    target: Arc<Target>,
    shared: Arc<Shared>,
    started: Arc<AtomicU64>,
    loops: Vec<usize>,
    max: u64,
) -> hdrhistogram::Histogram<u64> {
    let stats = Rc::new(ThreadStats::default());
    monoio::spawn(ticker(shared.clone(), stats.clone()));
    for l in loops {
        shared
            .counters
            .publishers_active
            .fetch_add(1, Ordering::SeqCst);
        monoio::spawn(connect_loop(
            target.clone(),
            shared.clone(),
            stats.clone(),
            started.clone(),
            l,
            max,
        ));
    }
    wait_phase(&shared, Phase::Done, Duration::from_millis(10)).await;
    stats.flush(&shared.counters);
    stats.total.replace(histogram())
}

async fn connect_loop(
    target: Arc<Target>,
    shared: Arc<Shared>,
    stats: Rc<ThreadStats>,
    started: Arc<AtomicU64>,
    index: usize,
    max: u64,
) {
    wait_phase(&shared, Phase::Run, Duration::from_millis(1)).await;
    let channel = channel_name(index as u32);
    while shared.phase() == Phase::Run {
        let n = started.fetch_add(1, Ordering::Relaxed);
        if n >= max {
            break;
        }
        let opts = SocketOpts {
            source: target.source_for(n as usize),
            reset_on_close: true,
            ..SocketOpts::default()
        };
        let t0 = monotonic_ns();
        let result = async {
            let mut conn = PusherConn::open(&target, opts, 512, n as u32, OPEN_TIMEOUT).await?;
            match monoio::time::timeout(OPEN_TIMEOUT, conn.subscribe(&channel)).await {
                Ok(r) => r,
                Err(_) => Err(BenchError::Timeout("subscription_succeeded")),
            }
        }
        .await;
        match result {
            Ok(()) => {
                stats.record_ns(monotonic_ns() - t0);
                stats.flush(&shared.counters);
            }
            Err(e) => {
                shared.counters.errors.fetch_add(1, Ordering::Relaxed);
                shared.note_error("connect", &e);
            }
        }
    }
    shared
        .counters
        .publishers_active
        .fetch_sub(1, Ordering::SeqCst);
}
