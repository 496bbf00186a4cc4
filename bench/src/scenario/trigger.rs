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
use crate::http::{HttpConn, event_body, events_request};
use crate::payload::{self, Stamp};
use crate::report::Report;
use crate::runner::{Monitor, spawn_workers, ticker, wait_phase};
use crate::scenario::{channel_name, require_app, target};
use crate::stats::{Percentiles, Phase, Shared, ThreadStats, histogram};
use crate::sys::monotonic_ns;
use crate::target::Target;

/// Runs the scenario.
pub fn run(args: &TriggerArgs) -> Result<Report, BenchError> {
    let common = &args.common;
    let conns = pick(args.connections, common.smoke, 16, 4).max(1);
    let duration = common.duration_or(10.0);
    let threads = common.thread_count();
    let target = Arc::new(target(common, conns)?);
    require_app(&target)?;
    let shared = Arc::new(Shared::new(threads));
    let payload = args.payload;
    let rx = {
        let (target, shared) = (target.clone(), shared.clone());
        spawn_workers(threads, !common.no_pin, move |t| {
            let loops = (t..conns).step_by(threads).collect::<Vec<_>>();
            thread(target.clone(), shared.clone(), loops, payload)
        })
    };
    let mut monitor = Monitor::new(shared.clone(), common.pid, common.quiet);
    monitor.target_connections = conns as u64;
    let run_start = monotonic_ns();
    shared.set_phase(Phase::Run);
    monitor.hold(Duration::from_secs_f64(duration));
    shared.set_phase(Phase::Drain);
    monitor.wait_until(Duration::from_secs(10), |s| {
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

async fn thread(
    target: Arc<Target>,
    shared: Arc<Shared>,
    loops: Vec<usize>,
    payload: usize,
) -> hdrhistogram::Histogram<u64> {
    let stats = Rc::new(ThreadStats::default());
    monoio::spawn(ticker(shared.clone(), stats.clone()));
    for l in loops {
        shared
            .counters
            .publishers_active
            .fetch_add(1, Ordering::SeqCst);
        monoio::spawn(request_loop(
            target.clone(),
            shared.clone(),
            stats.clone(),
            l,
            payload,
        ));
    }
    wait_phase(&shared, Phase::Done, Duration::from_millis(10)).await;
    stats.flush(&shared.counters);
    stats.total.replace(histogram())
}

async fn request_loop(
    target: Arc<Target>,
    shared: Arc<Shared>,
    stats: Rc<ThreadStats>,
    index: usize,
    payload: usize,
) {
    wait_phase(&shared, Phase::Run, Duration::from_millis(1)).await;
    let channel = format!("{}-trigger", channel_name(index as u32));
    let mut conn: Option<HttpConn> = None;
    let mut seq = 0u64;
    while shared.phase() == Phase::Run {
        if conn.is_none() {
            match HttpConn::connect(&target, index).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    shared.counters.errors.fetch_add(1, Ordering::Relaxed);
                    shared.note_error("api connect", &e);
                    monoio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
        }
        let http = conn.as_mut().expect("connected");
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
        match http.request(events_request(&target, &body)).await {
            Ok(resp) if (200..300).contains(&resp.status) => {
                stats.record_ns(monotonic_ns() - t0);
                if seq % 64 == 0 {
                    stats.flush(&shared.counters);
                }
                if http.closed {
                    conn = None;
                }
            }
            Ok(resp) => {
                shared.counters.errors.fetch_add(1, Ordering::Relaxed);
                shared.note_error(
                    "api",
                    &BenchError::Http(format!(
                        "status {}: {}",
                        resp.status,
                        String::from_utf8_lossy(&resp.body)
                    )),
                );
                if http.closed {
                    conn = None;
                }
            }
            Err(e) => {
                shared.counters.errors.fetch_add(1, Ordering::Relaxed);
                shared.note_error("api", &e);
                conn = None;
            }
        }
    }
    stats.flush(&shared.counters);
    shared
        .counters
        .publishers_active
        .fetch_sub(1, Ordering::SeqCst);
}
