//! `trigger`: HTTP API requests per second and their latency, over keep-alive connections
//! with one request in flight each (as the Pusher server SDKs send them). Each request
//! triggers one event on a channel of its own connection that nobody subscribes to, so the
//! figure is the API path: parse, authenticate, route, answer.

use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::cli::{TriggerArgs, pick};
use crate::error::BenchError;
use crate::http::{ApiSlot, event_body};
use crate::payload::{self, Stamp};
use crate::report::Report;
use crate::runner::{LoopRun, run_loops};
use crate::scenario::{app_target, channel_name};
use crate::stats::{Percentiles, Phase, Shared, ThreadStats};
use crate::sys::monotonic_ns;
use crate::target::Target;

/// Runs the scenario.
pub fn run(args: &TriggerArgs) -> Result<Report, BenchError> {
    let common = &args.common;
    let conns = pick(args.connections, common.smoke, 16, 4).max(1);
    let duration = common.duration_or(10.0);
    let threads = common.thread_count();
    let target = Arc::new(app_target(common, conns)?);
    let shared = Arc::new(Shared::new(threads));
    let payload = args.payload;
    let body = {
        let (target, shared) = (target.clone(), shared.clone());
        move |index, stats| request_loop(target.clone(), shared.clone(), stats, index, payload)
    };
    let run = LoopRun {
        duration,
        done: |_: &Shared| false,
        drain: Duration::from_secs(10),
    };
    let (monitor, elapsed, latency) = run_loops(common, &shared, conns, run, body)?;
    let c = &shared.counters;
    let ok = c.ops.load(Ordering::SeqCst);
    let errors = c.errors.load(Ordering::SeqCst);
    let mut report = Report::new("trigger", "requests");
    report.param("connections", conns as u64);
    report.param("payload_bytes", payload as u64);
    report.param("duration_s", duration);
    report.param("threads", threads as u64);
    report.metric("requests_per_sec", ok as f64 / elapsed, "1/s");
    report.metric("requests", ok as f64, "");
    report.metric("errors", errors as f64, "");
    report
        .latency
        .push(Percentiles::of("POST /apps/{id}/events", &latency));
    report.check(
        "requests",
        ok > 0 && errors == 0,
        format!("{ok} ok, {errors} failed"),
    );
    monitor.finish(&mut report);
    Ok(report)
}

/// One keep-alive API connection: trigger, wait for the answer, again, until the run ends.
async fn request_loop(
    target: Arc<Target>,
    shared: Arc<Shared>,
    stats: Rc<ThreadStats>,
    index: usize,
    payload: usize,
) {
    let channel = format!("{}-trigger", channel_name(index as u32));
    let mut api = ApiSlot::default();
    let mut seq = 0u64;
    while shared.phase() == Phase::Run {
        if !api.ready(&target, index, &shared, "api connect").await {
            continue;
        }
        let t0 = monotonic_ns();
        let data = payload::encode(
            Stamp {
                channel: index as u32,
                seq,
                sent_ns: t0,
            },
            payload,
        );
        seq += 1;
        let body = event_body(&channel, "bench", &data);
        if api.trigger(&target, &body, &shared, "api").await {
            stats.record_ns(monotonic_ns() - t0);
            if seq % 64 == 0 {
                stats.flush(&shared.counters);
            }
        }
    }
    stats.flush(&shared.counters);
}
