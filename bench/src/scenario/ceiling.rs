//! `ceiling`: the physical reference for fan-out on this machine.
//!
//! A child process stands where the server would: one pinned thread per core, each owning a
//! share of the sockets, encodes each broadcast once (the exact frame ringcast would send, from
//! the protocol crate's encoder) and writes it with a plain blocking `send()` to every socket of
//! the channel, with no parsing, routing, queueing or HTTP at all. This process reads the
//! sockets with the same client code as in `fanout`, so both figures pay the same client cost
//! and fan-out is reported as a fraction of this.
//!
//! The child needs a process of its own because the same number of sockets has two ends, and
//! one process may hold only 20,000 descriptors. Flow control crosses the process boundary on
//! the child's stdin: every millisecond this process writes its count of deliveries (8 bytes,
//! little endian), and the sender keeps at most `window` frames per socket undelivered, the
//! same rule the fan-out publishers follow. With `--rate` it sends that many broadcasts per
//! second instead, as `fanout --rate` publishes, and its end-to-end latency is then the floor
//! for ringcast's at the same rate.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ringcast_protocol::pusher::event::ServerEvent;

use crate::cli::{CeilingArgs, CeilingSenderArgs, Common, pick};
use crate::error::BenchError;
use crate::payload::{self, Stamp};
use crate::report::Report;
use crate::runner::Monitor;
use crate::scenario::{
    Fleet, SubSpec, channel_name, collect, integrity, merged, report_integrity, setup_timeout,
    start, wait_subscribed,
};
use crate::stats::{Percentiles, Phase};
use crate::sys::monotonic_ns;
use crate::target::{Endpoint, Target};

/// Runs the scenario.
pub fn run(args: &CeilingArgs) -> Result<Report, BenchError> {
    let common = &args.common;
    let sockets = pick(args.connections, common.smoke, 1000, 50);
    let channels = args.channels.clamp(1, sockets.max(1));
    let duration = common.duration_or(10.0);
    let threads = common.thread_count();
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.arg("ceiling-sender")
        .args(["--connections", &sockets.to_string()])
        .args(["--channels", &channels.to_string()])
        .args(["--payload", &args.payload.to_string()])
        .args(["--window", &args.window.to_string()])
        .args(["--threads", &threads.to_string()])
        .args(["--duration", &duration.to_string()])
        .args(["--rate", &args.rate.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    if common.no_pin {
        cmd.arg("--no-pin");
    }
    let mut child = cmd.spawn()?;
    let mut stdin = child.stdin.take().expect("piped");
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let first = lines
        .next()
        .ok_or_else(|| BenchError::Setup("ceiling sender exited".into()))??;
    let addr: SocketAddr = first
        .strip_prefix("listening ")
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| BenchError::Setup(format!("ceiling sender said {first:?}")))?;
    let (done_tx, done_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let _ = done_tx.send(line);
        }
    });

    let endpoint = Endpoint {
        addr,
        host_header: addr.to_string(),
        path: String::new(),
        tls: false,
        server_name: addr.ip().to_string(),
    };
    let target = Target {
        ws: endpoint.clone(),
        api: endpoint,
        app_id: String::new(),
        key: String::new(),
        secret: String::new(),
        sources: Vec::new(),
        tls: None,
    };
    let streams = threads * channels;
    let fleet = Arc::new(Fleet::new(
        target,
        threads,
        channels,
        streams,
        args.payload,
        args.read_buffer,
    ));
    let shared = fleet.shared.clone();
    let subs = (0..sockets)
        .map(|i| SubSpec {
            stream: ((i % threads) * channels + i % channels) as u32,
            raw: Some(addr),
            ..SubSpec::reader(i, channels)
        })
        .collect();
    let rx = start(&fleet, threads, !common.no_pin, subs, Vec::new());
    {
        // Runs until this process exits: the child keeps its sockets open until its stdin
        // closes, so none of them closes while the results are being collected.
        let shared = shared.clone();
        std::thread::spawn(move || {
            loop {
                let n = shared.counters.ops.load(Ordering::SeqCst);
                if stdin.write_all(&n.to_le_bytes()).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        });
    }
    let mut monitor = Monitor::new(shared.clone(), None, common.quiet);
    monitor.target_connections = sockets as u64;
    wait_subscribed(&mut monitor, &shared, sockets, setup_timeout(sockets))?;
    let run_start = monotonic_ns();
    shared.set_phase(Phase::Run);
    let mut result = None;
    monitor.wait_until(Duration::from_secs_f64(duration + 60.0), |_| {
        if let Ok(line) = done_rx.try_recv() {
            result = Some(line);
        }
        result.is_some()
    });
    let result = result.ok_or(BenchError::Timeout("ceiling sender"))?;
    let summary: SenderSummary = serde_json::from_str(&result)
        .map_err(|e| BenchError::Setup(format!("ceiling sender summary: {e}: {result}")))?;
    for (stream, count) in &summary.streams {
        fleet.published[*stream as usize].store(*count, Ordering::SeqCst);
    }
    shared.set_phase(Phase::Drain);
    monitor.wait_until(Duration::from_secs(10), |s| {
        s.counters.ops.load(Ordering::SeqCst) >= summary.writes
    });
    let elapsed = (monotonic_ns() - run_start) as f64 / 1e9;
    shared.set_phase(Phase::Done);
    let outs = collect(&rx, threads, Duration::from_secs(30))?;
    // The child exits by itself when this process exits and its stdin closes.
    drop(child);

    let delivered = shared.counters.ops.load(Ordering::SeqCst);
    let mut report = Report::new("ceiling", "deliveries");
    report.param("sockets", sockets as u64);
    report.param("channels", channels as u64);
    report.param("payload_bytes", args.payload as u64);
    report.param("window", args.window);
    report.param(
        "rate",
        if args.rate > 0.0 {
            serde_json::json!(args.rate)
        } else {
            serde_json::json!("max")
        },
    );
    report.param("duration_s", duration);
    report.param("threads", threads as u64);
    report.metric("deliveries_per_sec", delivered as f64 / elapsed, "1/s");
    report.metric("delivered", delivered as f64, "messages");
    report.metric("frames_written", summary.writes as f64, "messages");
    report.metric("broadcasts", summary.broadcasts as f64, "");
    report.metric("sender_seconds", summary.seconds, "s");
    report.metric("elapsed", elapsed, "s");
    let (latency, _) = merged(&outs);
    report
        .latency
        .push(Percentiles::of("end-to-end (encode -> deliver)", &latency));
    let i = integrity(&outs, &fleet.published);
    report_integrity(&mut report, &i);
    report.check(
        "deliveries",
        delivered > 0,
        format!("{delivered} deliveries"),
    );
    monitor.finish(&mut report);
    Ok(report)
}

/// What `fanout --ceiling` takes from the ceiling run it makes first.
#[derive(Clone, Copy, Debug)]
pub struct CeilingFigures {
    /// Deliveries per second of the raw sender.
    pub deliveries_per_sec: f64,
    /// Its end-to-end latency (encode to deliver), p50 and p99, in milliseconds.
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Runs `ceiling` in a child process with the same sockets, at `rate` broadcasts per second
/// (0: as fast as the window allows), and returns its figures (the child exits, releasing its
/// sockets, before the caller opens its own).
pub fn run_as_child(
    sockets: usize,
    channels: usize,
    payload: usize,
    window: u64,
    rate: f64,
    duration: f64,
    common: &Common,
) -> Result<CeilingFigures, BenchError> {
    let json = std::env::temp_dir().join(format!(
        "ringcast-bench-ceiling-{}.json",
        std::process::id()
    ));
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("ceiling")
        .args(["--connections", &sockets.to_string()])
        .args(["--channels", &channels.to_string()])
        .args(["--payload", &payload.to_string()])
        .args(["--window", &window.to_string()])
        .args(["--rate", &rate.to_string()])
        .args(["--duration", &duration.to_string()])
        .args(["--threads", &common.thread_count().to_string()])
        .arg("--json")
        .arg(&json);
    if common.no_pin {
        cmd.arg("--no-pin");
    }
    if common.quiet {
        cmd.arg("--quiet");
    }
    let status = cmd.status()?;
    let text = std::fs::read_to_string(&json)
        .map_err(|e| BenchError::Setup(format!("ceiling run ({status}): {e}")))?;
    let _ = std::fs::remove_file(&json);
    let report: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| BenchError::Setup(e.to_string()))?;
    let deliveries_per_sec = report["metrics"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["name"] == "deliveries_per_sec"))
        .and_then(|m| m["value"].as_f64())
        .ok_or_else(|| BenchError::Setup("ceiling report without deliveries_per_sec".into()))?;
    let latency = report["latency"]
        .as_array()
        .and_then(|l| l.first())
        .ok_or_else(|| BenchError::Setup("ceiling report without latency".into()))?;
    let ms = |q: &str| latency[q].as_f64().unwrap_or(0.0);
    Ok(CeilingFigures {
        deliveries_per_sec,
        p50_ms: ms("p50_ms"),
        p99_ms: ms("p99_ms"),
    })
}

/// The sender's last line: what it wrote.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct SenderSummary {
    /// Frames written in all (socket writes).
    writes: u64,
    /// Frames encoded (one per channel per round per thread).
    broadcasts: u64,
    /// `[stream, frames]` with stream = thread * channels + channel.
    streams: Vec<(u32, u64)>,
    /// Seconds spent sending.
    seconds: f64,
}

/// The child process: accept the sockets, then send for `duration`.
pub fn sender(args: &CeilingSenderArgs) -> Result<(), BenchError> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    socket.listen(4096)?;
    let listener: std::net::TcpListener = socket.into();
    println!("listening {}", listener.local_addr()?);
    std::io::stdout().flush()?;

    let threads = args.threads.max(1);
    let channels = args.channels.max(1);
    // groups[t][c]: thread t's sockets of channel c.
    let mut groups: Vec<Vec<Vec<TcpStream>>> = (0..threads)
        .map(|_| (0..channels).map(|_| Vec::new()).collect())
        .collect();
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut accepted = 0;
    while accepted < args.connections && Instant::now() < deadline {
        match listener.accept() {
            Ok((mut s, _)) => {
                s.set_nonblocking(false)?;
                s.set_nodelay(true)?;
                s.set_read_timeout(Some(Duration::from_secs(10)))?;
                let mut id = [0u8; 4];
                s.read_exact(&mut id)?;
                let i = u32::from_le_bytes(id) as usize;
                groups[i % threads][i % channels].push(s);
                accepted += 1;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(e.into()),
        }
    }

    let delivered = Arc::new(AtomicU64::new(0));
    let parent_gone = Arc::new(AtomicBool::new(false));
    {
        let (delivered, parent_gone) = (delivered.clone(), parent_gone.clone());
        std::thread::spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut word = [0u8; 8];
            while stdin.read_exact(&mut word).is_ok() {
                delivered.store(u64::from_le_bytes(word), Ordering::SeqCst);
            }
            parent_gone.store(true, Ordering::SeqCst);
        });
    }
    let writes = Arc::new(AtomicU64::new(0));
    let limit = args.window * accepted as u64;
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let start = Instant::now();
    let duration = Duration::from_secs_f64(args.duration);
    // At a fixed rate, round k (one broadcast per channel) starts at k intervals after the
    // start on every thread, so the threads' shares of a broadcast leave together.
    let round_interval =
        (args.rate > 0.0).then(|| Duration::from_secs_f64(channels as f64 / args.rate));
    let handles: Vec<_> = groups
        .into_iter()
        .enumerate()
        .map(|(t, mut mine)| {
            let (delivered, writes, parent_gone) =
                (delivered.clone(), writes.clone(), parent_gone.clone());
            let core = (!args.no_pin && !cores.is_empty()).then(|| cores[t % cores.len()]);
            let payload_size = args.payload;
            std::thread::spawn(move || {
                if let Some(core) = core {
                    core_affinity::set_for_current(core);
                }
                let names: Vec<String> = (0..mine.len() as u32).map(channel_name).collect();
                let mut seqs = vec![0u64; mine.len()];
                let mut broadcasts = 0u64;
                let mut data = Vec::with_capacity(payload_size + 64);
                let mut round = 0u32;
                'run: while start.elapsed() < duration {
                    if let Some(interval) = round_interval {
                        let at = start + interval * round;
                        if at >= start + duration {
                            break 'run;
                        }
                        std::thread::sleep(at.saturating_duration_since(Instant::now()));
                    }
                    round += 1;
                    for (c, socks) in mine.iter_mut().enumerate() {
                        if socks.is_empty() {
                            continue;
                        }
                        while writes.load(Ordering::SeqCst)
                            > delivered.load(Ordering::SeqCst) + limit
                        {
                            if start.elapsed() >= duration || parent_gone.load(Ordering::SeqCst) {
                                break 'run;
                            }
                            std::thread::sleep(Duration::from_micros(50));
                        }
                        data.clear();
                        payload::encode_into(
                            &mut data,
                            Stamp {
                                channel: c as u32,
                                seq: seqs[c],
                                sent_ns: monotonic_ns(),
                            },
                            payload_size,
                        );
                        let frame = ServerEvent::ChannelEvent {
                            event: "bench",
                            channel: &names[c],
                            data: std::str::from_utf8(&data).expect("ASCII"),
                        }
                        .to_frame();
                        socks.retain_mut(|s| s.write_all(&frame).is_ok());
                        writes.fetch_add(socks.len() as u64, Ordering::SeqCst);
                        seqs[c] += 1;
                        broadcasts += 1;
                    }
                }
                let streams: Vec<(u32, u64)> = seqs
                    .iter()
                    .enumerate()
                    .map(|(c, n)| ((t * seqs.len() + c) as u32, *n))
                    .collect();
                (broadcasts, streams, mine)
            })
        })
        .collect();
    let mut summary = SenderSummary {
        writes: 0,
        broadcasts: 0,
        streams: Vec::new(),
        seconds: 0.0,
    };
    let mut keep = Vec::new();
    for h in handles {
        let (b, s, socks) = h
            .join()
            .map_err(|_| BenchError::Setup("sender thread".into()))?;
        summary.broadcasts += b;
        summary.streams.extend(s);
        keep.push(socks);
    }
    summary.seconds = start.elapsed().as_secs_f64();
    summary.writes = writes.load(Ordering::SeqCst);
    println!(
        "{}",
        serde_json::to_string(&summary).map_err(|e| BenchError::Setup(e.to_string()))?
    );
    std::io::stdout().flush()?;
    // Keep the sockets open until the parent has read everything and closes our stdin.
    let wait_until = Instant::now() + Duration::from_secs(60);
    while !parent_gone.load(Ordering::SeqCst) && Instant::now() < wait_until {
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(keep);
    Ok(())
}
