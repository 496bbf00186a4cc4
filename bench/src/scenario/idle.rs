//! `idle`: open and subscribe N connections, hold them, and report what each costs the server:
//! its resident memory (from `/proc/PID/status`, when `--pid` is given) and the kernel's TCP
//! socket memory (`/proc/net/sockstat`, both ends of each loopback connection).
//!
//! With `--presence` each connection joins a presence channel as a user of its own (signed as
//! an auth endpoint signs it, as `connect --presence` does), so that the difference from a run
//! with the same channels made public is what a presence member costs.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::cli::{IdleArgs, pick};
use crate::client::{PusherConn, Step, subscribe_presence};
use crate::error::BenchError;
use crate::procfs::{process_memory, sockstat};
use crate::report::Report;
use crate::runner::{Monitor, spawn_workers, wait_phase};
use crate::scenario::{
    Fleet, OPEN_CONCURRENCY, OPEN_TIMEOUT, SubSpec, ThreadOut, channel_name, collect,
    setup_timeout, start, wait_subscribed,
};
use crate::stats::{Phase, histogram};
use crate::ws::SocketOpts;

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
    let rx = if args.presence {
        let fleet = fleet.clone();
        spawn_workers(threads, !common.no_pin, move |t| {
            presence_worker(fleet.clone(), (t..n).step_by(threads).collect(), channels)
        })
    } else {
        let subs = (0..n).map(|i| SubSpec::reader(i, channels)).collect();
        start(&fleet, threads, !common.no_pin, subs, Vec::new())
    };
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
    report.param("presence", if args.presence { "yes" } else { "no" });
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

/// One thread's share of the `--presence` connections (global indices `members`), opened with
/// bounded concurrency; returns once the run is done, leaving them parked.
async fn presence_worker(fleet: Arc<Fleet>, members: Vec<usize>, channels: usize) -> ThreadOut {
    let opening = Rc::new(Cell::new(0usize));
    let shared = fleet.shared.clone();
    for index in members {
        while opening.get() >= OPEN_CONCURRENCY {
            monoio::time::sleep(Duration::from_millis(1)).await;
        }
        if shared.phase() >= Phase::Drain {
            break;
        }
        opening.set(opening.get() + 1);
        monoio::spawn(presence_member(
            fleet.clone(),
            opening.clone(),
            index,
            channels,
        ));
    }
    wait_phase(&shared, Phase::Done, Duration::from_millis(10)).await;
    ThreadOut {
        latency: histogram(),
        secondary: histogram(),
        subs: Vec::new(),
    }
}

/// Connection `index`: joins `presence-bench-{index mod channels}` as user `index`, then reads
/// (answering pings, taking the other members' arrivals) until the server closes it or the run
/// ends.
async fn presence_member(
    fleet: Arc<Fleet>,
    opening: Rc<Cell<usize>>,
    index: usize,
    channels: usize,
) {
    let target = &fleet.target;
    let shared = &fleet.shared;
    let counters = &shared.counters;
    let channel = format!("presence-{}", channel_name((index % channels) as u32));
    // Boxed so that the handshake's state is freed once it is done.
    let opened = Box::pin(async {
        let opts = SocketOpts {
            source: target.source_for(index),
            node: index,
            ..SocketOpts::default()
        };
        let mut conn =
            PusherConn::open(target, opts, fleet.read_buffer, index as u32, OPEN_TIMEOUT).await?;
        counters.connected.fetch_add(1, Ordering::Relaxed);
        let message = subscribe_presence(
            &channel,
            &index.to_string(),
            &target.key,
            &target.secret,
            &conn.socket_id,
        );
        match monoio::time::timeout(OPEN_TIMEOUT, conn.send_subscribe(&channel, &message)).await {
            Ok(r) => r?,
            Err(_) => return Err(BenchError::Timeout("subscription_succeeded")),
        }
        Ok(conn)
    })
    .await;
    opening.set(opening.get() - 1);
    let mut conn = match opened {
        Ok(c) => c,
        Err(e) => {
            counters.failed.fetch_add(1, Ordering::Relaxed);
            shared.note_error("presence member", &e);
            return;
        }
    };
    counters.subscribed.fetch_add(1, Ordering::Relaxed);
    loop {
        match conn.next(&|| {}).await {
            Ok(Step::Closed(_)) => break,
            Ok(_) => {}
            Err(e) => {
                if shared.phase() < Phase::Done {
                    shared.note_error("presence member read", &e);
                }
                break;
            }
        }
    }
    if shared.phase() < Phase::Drain {
        counters.closed.fetch_add(1, Ordering::Relaxed);
    }
}
