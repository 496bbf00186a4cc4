//! `connect`: how many clients per second can connect, upgrade, receive
//! `pusher:connection_established`, subscribe and receive `subscription_succeeded`, and how
//! long that takes.
//!
//! With `--presence` each loop joins a presence channel of its own as a new user (signed as an
//! auth endpoint signs it), and the latency reported is the join's alone: from the subscribe
//! to the member list, the step a cluster sends through Redis.
//!
//! `--concurrency` loops each open a connection, subscribe, and close it with an RST
//! (`SO_LINGER` 0): a graceful close would leave every client port in `TIME_WAIT` for a minute
//! and exhaust the ephemeral range in seconds. The loops stop at `--duration` or after
//! `--connections` handshakes.

use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::cli::{ConnectArgs, pick};
use crate::client::{PusherConn, subscribe, subscribe_presence};
use crate::error::BenchError;
use crate::report::Report;
use crate::runner::{LoopRun, run_loops};
use crate::scenario::{OPEN_TIMEOUT, app_target, channel_name};
use crate::stats::{Percentiles, Phase, Shared, ThreadStats};
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
    let target = Arc::new(app_target(common, concurrency)?);
    let shared = Arc::new(Shared::new(threads));
    let started = Arc::new(AtomicU64::new(0));
    let body = {
        let (target, shared) = (target.clone(), shared.clone());
        let presence = args.presence;
        move |index, stats| {
            connect_loop(
                target.clone(),
                shared.clone(),
                stats,
                started.clone(),
                Loop {
                    index,
                    max,
                    presence,
                },
            )
        }
    };
    let run = LoopRun {
        duration,
        done: |s: &Shared| {
            s.counters.ops.load(Ordering::Relaxed) + s.counters.errors.load(Ordering::Relaxed)
                >= max
        },
        // Loops finish the handshake in progress.
        drain: OPEN_TIMEOUT,
    };
    let (monitor, elapsed, latency) = run_loops(common, &shared, concurrency, run, body)?;
    let c = &shared.counters;
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
    report.param("presence", if args.presence { "yes" } else { "no" });
    report.param("nodes", target.nodes() as u64);
    report.latency.push(Percentiles::of(
        if args.presence {
            "presence join (subscribe -> member list)"
        } else {
            "connect+upgrade+established+subscribed"
        },
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

/// What one loop does.
#[derive(Clone, Copy)]
struct Loop {
    index: usize,
    /// Handshakes to start in all.
    max: u64,
    /// Join a presence channel, timing the join alone.
    presence: bool,
}

/// One loop: connect, subscribe, close with RST, again, until the run ends or `max`
/// handshakes were started in all.
async fn connect_loop(
    target: Arc<Target>,
    shared: Arc<Shared>,
    stats: Rc<ThreadStats>,
    started: Arc<AtomicU64>,
    l: Loop,
) {
    let channel = if l.presence {
        format!("presence-{}", channel_name(l.index as u32))
    } else {
        channel_name(l.index as u32)
    };
    while shared.phase() == Phase::Run {
        let n = started.fetch_add(1, Ordering::Relaxed);
        if n >= l.max {
            break;
        }
        let opts = SocketOpts {
            source: target.source_for(n as usize),
            reset_on_close: true,
            node: n as usize,
            ..SocketOpts::default()
        };
        let mut t0 = monotonic_ns();
        let result = async {
            let mut conn = PusherConn::open(&target, opts, 512, n as u32, OPEN_TIMEOUT).await?;
            let message = if l.presence {
                t0 = monotonic_ns();
                subscribe_presence(
                    &channel,
                    &n.to_string(),
                    &target.key,
                    &target.secret,
                    &conn.socket_id,
                )
            } else {
                subscribe(&channel)
            };
            match monoio::time::timeout(OPEN_TIMEOUT, conn.send_subscribe(&channel, &message)).await
            {
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
}
