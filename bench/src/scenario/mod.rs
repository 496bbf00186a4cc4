//! The scenarios, and the subscriber and publisher tasks they share.
//!
//! A scenario runs in phases driven by the main thread (see [`Phase`]): worker threads open
//! their share of the subscribers during `Setup`, publishers start at `Run` and stop at `Drain`,
//! and at `Done` each thread hands in its histograms and per-subscriber results.

pub mod ceiling;
pub mod connect;
pub mod fanout;
pub mod idle;
pub mod slow;
pub mod soak;
pub mod trigger;

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use hdrhistogram::Histogram;
use monoio::io::AsyncWriteRentExt;

use crate::cli::Common;
use crate::client::{Event, PusherConn, Step, unsubscribe};
use crate::error::BenchError;
use crate::http::{ApiSlot, event_body};
use crate::payload::{self, Stamp};
use crate::report::Report;
use crate::runner::{Monitor, ticker, wait_phase};
use crate::stats::{Percentiles, Phase, Shared, ThreadStats, histogram};
use crate::sys::monotonic_ns;
use crate::target::{Endpoint, Target, source_addresses};
use crate::track::SeqTracker;
use crate::ws::{SocketOpts, WsConn, tcp_connect};

/// Time allowed for a connection's handshake plus `connection_established`.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

/// Handshakes in progress at once per thread while a scenario opens its subscribers: enough to
/// ramp quickly, few enough for the server's accept backlog.
pub const OPEN_CONCURRENCY: usize = 128;

/// The channel name for channel index `c`.
pub fn channel_name(c: u32) -> String {
    format!("bench-{c}")
}

/// Builds the [`Target`] from the command line.
pub fn target(common: &Common, sockets: usize) -> Result<Target, BenchError> {
    let ws = Endpoint::parse(&common.ws_url, "ws", 80)?;
    let api = Endpoint::parse(&common.api_url, "http", 80)?;
    let sources = source_addresses(&ws, sockets, common.source_addrs)?;
    let tls = match &common.ca_file {
        Some(f) => Some(crate::stream::TlsClient::new(f)?),
        None => None,
    };
    Ok(Target {
        ws,
        api,
        app_id: common.app_id.clone(),
        key: common.key.clone(),
        secret: common.secret.clone(),
        sources,
        tls,
    })
}

/// The target of an app run: [`target`], failing unless the app credentials were given.
pub fn app_target(common: &Common, sockets: usize) -> Result<Target, BenchError> {
    let target = target(common, sockets)?;
    require_app(&target)?;
    Ok(target)
}

/// Fails unless the app credentials were given.
pub fn require_app(target: &Target) -> Result<(), BenchError> {
    if target.app_id.is_empty() || target.key.is_empty() || target.secret.is_empty() {
        return Err(BenchError::Setup(
            "--app-id, --key and --secret (or REVERB_APP_ID/KEY/SECRET) are required".into(),
        ));
    }
    Ok(())
}

/// What every thread of a run shares.
#[derive(Debug)]
pub struct Fleet {
    /// The server.
    pub target: Target,
    /// Counters, phase and timeline slots.
    pub shared: Arc<Shared>,
    /// Reading subscribers currently subscribed, per channel (publishers' flow control).
    pub live: Vec<AtomicU64>,
    /// Publishes the server accepted, per stream (loss accounting).
    pub published: Vec<AtomicU64>,
    /// Payload bytes.
    pub payload: usize,
    /// Initial read buffer per connection.
    pub read_buffer: usize,
    /// A stalled subscriber reads again once this many messages were published on its stream
    /// (`u64::MAX`: only when the run moves to its `Release` phase).
    pub stall_until: u64,
}

impl Fleet {
    /// A fleet for `channels` channels and `streams` sequence streams.
    pub fn new(
        target: Target,
        threads: usize,
        channels: usize,
        streams: usize,
        payload: usize,
        read_buffer: usize,
    ) -> Self {
        Self {
            target,
            shared: Arc::new(Shared::new(threads)),
            live: (0..channels).map(|_| AtomicU64::new(0)).collect(),
            published: (0..streams).map(|_| AtomicU64::new(0)).collect(),
            payload,
            read_buffer,
            stall_until: u64::MAX,
        }
    }

    /// The fleet of a run against the app the common options name: its target (for
    /// `sockets` client sockets), checked to have credentials, with one sequence stream per
    /// channel and one worker per thread.
    pub fn for_app(
        common: &Common,
        sockets: usize,
        channels: usize,
        payload: usize,
        read_buffer: usize,
    ) -> Result<Self, BenchError> {
        Ok(Self::new(
            app_target(common, sockets)?,
            common.thread_count(),
            channels,
            channels,
            payload,
            read_buffer,
        ))
    }

    /// Whether a stalled subscriber of `stream` should read again.
    fn stall_over(&self, stream: u32) -> bool {
        self.shared.phase() >= Phase::Release
            || self.published[stream as usize].load(Ordering::Relaxed) >= self.stall_until
    }
}

/// The role of one subscriber.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SubKind {
    /// Reads everything; checked for loss, duplicates and order.
    #[default]
    Reader,
    /// Subscribes, then stops reading until the `Release` phase or until
    /// [`Fleet::stall_until`] messages were published on its stream.
    Stalled,
    /// Subscribes and leaves in cycles (soak); checked for duplicates and order only.
    Churner {
        /// Seconds each cycle stays subscribed.
        hold_ms: u64,
        /// Channels to rotate over.
        channels: u32,
    },
}

/// One subscriber to open.
#[derive(Clone, Debug)]
pub struct SubSpec {
    /// Global index (source address choice, raw stream id).
    pub index: usize,
    /// Channel index.
    pub channel: u32,
    /// Sequence stream whose published count this subscriber is checked against.
    pub stream: u32,
    /// Role.
    pub kind: SubKind,
    /// Connect to this raw frame sender instead of the Pusher server (ceiling).
    pub raw: Option<SocketAddr>,
}

/// How a subscriber ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum End {
    /// Still connected when the run ended.
    #[default]
    Open,
    /// Could not connect or subscribe.
    Failed,
    /// The server closed it (code if any).
    Closed(Option<u16>),
    /// The connection broke without a close frame.
    Broken,
    /// A stalled subscriber read nothing conclusive before its release timeout.
    TimedOut,
}

/// What one subscriber saw.
#[derive(Clone, Debug, Default)]
pub struct SubResult {
    /// Index.
    pub index: usize,
    /// Stream.
    pub stream: u32,
    /// Role.
    pub kind: SubKind,
    /// Sequence checking (for churners: summed over cycles, `unique` counts deliveries).
    pub tracker: SeqTracker,
    /// Missing numbers inside churn cycles.
    pub churn_gaps: u64,
    /// Churn cycles completed.
    pub cycles: u64,
    /// Payloads stamped with another channel than the one subscribed.
    pub wrong_channel: u64,
    /// A `pusher:error` code received.
    pub error_code: Option<u16>,
    /// How it ended.
    pub end: End,
}

/// One publisher connection.
#[derive(Clone, Debug)]
pub struct PubSpec {
    /// Index (source address choice).
    pub index: usize,
    /// Channels this publisher owns, published round robin.
    pub channels: Vec<u32>,
    /// Time between publishes (paced), or `None` for window flow control.
    pub interval: Option<Duration>,
    /// With `interval` `None`: deliveries outstanding at most.
    pub window: u64,
}

impl SubSpec {
    /// Subscriber `index` as a reader of channel `index mod channels`, checked against that
    /// channel's stream.
    pub fn reader(index: usize, channels: usize) -> Self {
        let channel = (index % channels.max(1)) as u32;
        Self {
            index,
            channel,
            stream: channel,
            kind: SubKind::Reader,
            raw: None,
        }
    }
}

impl PubSpec {
    /// Publisher `p` of `publishers`, owning the channels `c` with `c mod publishers == p` (so
    /// one channel's publishes are never concurrent), with connection index `index`.
    pub fn owning(
        index: usize,
        p: usize,
        publishers: usize,
        channels: usize,
        interval: Option<Duration>,
        window: u64,
    ) -> Self {
        Self {
            index,
            channels: (0..channels as u32)
                .filter(|c| *c as usize % publishers == p)
                .collect(),
            interval,
            window,
        }
    }
}

/// A thread's part of the results.
#[derive(Debug)]
pub struct ThreadOut {
    /// Primary latencies.
    pub latency: Histogram<u64>,
    /// Secondary latencies (publish request time).
    pub secondary: Histogram<u64>,
    /// Per-subscriber results.
    pub subs: Vec<SubResult>,
}

/// Thread-local state.
pub struct Local {
    /// The shared fleet.
    pub fleet: Arc<Fleet>,
    /// This thread's histograms and pending counts.
    pub stats: Rc<ThreadStats>,
    /// This thread's subscribers' results, indexed by slot.
    pub subs: RefCell<Vec<SubResult>>,
    /// Subscribers opening right now.
    pub opening: Cell<usize>,
}

/// The body of one worker thread: start `pubs` (they wait for `Run`), open `subs` with bounded
/// concurrency, wait for `Done`, hand in the results.
pub async fn worker(fleet: Arc<Fleet>, subs: Vec<SubSpec>, pubs: Vec<PubSpec>) -> ThreadOut {
    let local = Rc::new(Local {
        fleet: fleet.clone(),
        stats: Rc::new(ThreadStats::default()),
        subs: RefCell::new(Vec::with_capacity(subs.len())),
        opening: Cell::new(0),
    });
    let shared = fleet.shared.clone();
    monoio::spawn(ticker(shared.clone(), local.stats.clone()));
    for p in pubs {
        shared
            .counters
            .publishers_active
            .fetch_add(1, Ordering::SeqCst);
        monoio::spawn(publisher(local.clone(), p));
    }
    for spec in subs {
        while local.opening.get() >= OPEN_CONCURRENCY {
            monoio::time::sleep(Duration::from_millis(1)).await;
        }
        if shared.phase() >= Phase::Drain {
            break;
        }
        local.opening.set(local.opening.get() + 1);
        let slot = {
            let mut results = local.subs.borrow_mut();
            results.push(SubResult {
                index: spec.index,
                stream: spec.stream,
                kind: spec.kind,
                ..SubResult::default()
            });
            results.len() - 1
        };
        monoio::spawn(subscriber(local.clone(), slot, spec));
    }
    wait_phase(&shared, Phase::Done, Duration::from_millis(10)).await;
    local.stats.flush(&shared.counters);
    ThreadOut {
        latency: local.stats.total.borrow().clone(),
        secondary: local.stats.secondary.borrow().clone(),
        subs: local.subs.take(),
    }
}

/// Connects to a raw frame sender and says which subscriber this is (4 bytes, little endian).
async fn open_raw(
    addr: SocketAddr,
    spec: &SubSpec,
    local: &Local,
) -> Result<PusherConn, BenchError> {
    let opts = SocketOpts {
        source: local.fleet.target.source_for(spec.index),
        ..SocketOpts::default()
    };
    let mut stream = tcp_connect(addr, opts).await?;
    let (res, _) = stream
        .write_all((spec.index as u32).to_le_bytes().to_vec())
        .await;
    res?;
    Ok(PusherConn::raw(WsConn::from_stream(
        stream,
        local.fleet.read_buffer,
        spec.index as u32,
    )))
}

/// Opens, subscribes and reads one subscriber until the run ends or the server closes it.
async fn subscriber(local: Rc<Local>, slot: usize, spec: SubSpec) {
    if let SubKind::Churner { .. } = spec.kind {
        local.opening.set(local.opening.get() - 1);
        churner(local, slot, spec).await;
        return;
    }
    let fleet = local.fleet.clone();
    let shared = &fleet.shared;
    let counters = &shared.counters;
    let channel = channel_name(spec.channel);
    // Boxed so that the handshake's state is freed once it is done: the task that stays
    // parked on the connection's reads keeps only the reading loop's state.
    let opened = Box::pin(async {
        if let Some(addr) = spec.raw {
            let conn = open_raw(addr, &spec, &local).await?;
            counters.connected.fetch_add(1, Ordering::Relaxed);
            return Ok(conn);
        }
        let opts = SocketOpts {
            source: fleet.target.source_for(spec.index),
            recv_buffer: (spec.kind == SubKind::Stalled).then_some(4096),
            ..SocketOpts::default()
        };
        let mut conn = PusherConn::open(
            &fleet.target,
            opts,
            fleet.read_buffer,
            spec.index as u32,
            OPEN_TIMEOUT,
        )
        .await?;
        counters.connected.fetch_add(1, Ordering::Relaxed);
        match monoio::time::timeout(OPEN_TIMEOUT, conn.subscribe(&channel)).await {
            Ok(r) => r?,
            Err(_) => return Err(BenchError::Timeout("subscription_succeeded")),
        }
        Ok(conn)
    })
    .await;
    local.opening.set(local.opening.get() - 1);
    let mut conn = match opened {
        Ok(c) => c,
        Err(e) => {
            counters.failed.fetch_add(1, Ordering::Relaxed);
            shared.note_error("subscriber", &e);
            local.subs.borrow_mut()[slot].end = End::Failed;
            return;
        }
    };
    counters.subscribed.fetch_add(1, Ordering::Relaxed);
    let reader = spec.kind == SubKind::Reader;
    if reader {
        fleet.live[spec.channel as usize].fetch_add(1, Ordering::SeqCst);
    }
    if spec.kind == SubKind::Stalled {
        while !fleet.stall_over(spec.stream) {
            monoio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let stats = local.stats.clone();
    let flush = || stats.flush(counters);
    let end = loop {
        let step = if reader {
            conn.next(&flush).await
        } else {
            // A released stalled subscriber reads what is left, up to its close.
            match monoio::time::timeout(Duration::from_secs(10), conn.next(&|| {})).await {
                Ok(r) => r,
                Err(_) => break End::TimedOut,
            }
        };
        match step {
            Ok(Step::Stamped(stamp)) => {
                let latency = monotonic_ns().saturating_sub(stamp.sent_ns);
                if reader {
                    local.stats.record_ns(latency);
                }
                let mut results = local.subs.borrow_mut();
                let r = &mut results[slot];
                if stamp.channel != spec.channel {
                    r.wrong_channel += 1;
                }
                r.tracker.record(stamp.seq);
            }
            Ok(Step::Closed(code)) => break End::Closed(code),
            Ok(Step::Event(Event::Error(code, _))) => {
                local.subs.borrow_mut()[slot].error_code = code.and_then(|c| u16::try_from(c).ok());
            }
            Ok(_) => {}
            Err(BenchError::Closed(code)) => {
                break if code.is_some() {
                    End::Closed(code)
                } else {
                    End::Broken
                };
            }
            Err(e) => {
                shared.note_error("subscriber read", &e);
                break End::Broken;
            }
        }
    };
    stats.flush(counters);
    if reader {
        fleet.live[spec.channel as usize].fetch_sub(1, Ordering::SeqCst);
    }
    if shared.phase() < Phase::Drain || spec.kind == SubKind::Stalled {
        counters.closed.fetch_add(1, Ordering::Relaxed);
    }
    // Once the results are being collected, the run is over: a close seen now (a server or
    // sender shutting down) is not the subscriber's fate during the run.
    if shared.phase() < Phase::Done {
        local.subs.borrow_mut()[slot].end = end;
    }
}

/// A soak churner: connect, subscribe, read for a while, unsubscribe, disconnect; again until
/// the run ends. Each cycle's stream is checked for duplicates and order; loss is not, since the
/// cycle's first and last messages race the subscribe and unsubscribe.
async fn churner(local: Rc<Local>, slot: usize, spec: SubSpec) {
    let SubKind::Churner { hold_ms, channels } = spec.kind else {
        return;
    };
    let fleet = local.fleet.clone();
    let shared = &fleet.shared;
    let counters = &shared.counters;
    // Spread the cycles' starts over one hold period.
    let offset = (spec.index as u64 * 7919) % hold_ms.max(1);
    monoio::time::sleep(Duration::from_millis(offset)).await;
    let mut cycle = 0u64;
    while shared.phase() <= Phase::Run {
        let channel_index = (spec.channel + cycle as u32) % channels.max(1);
        let channel = channel_name(channel_index);
        cycle += 1;
        let opts = SocketOpts {
            source: fleet.target.source_for(spec.index),
            ..SocketOpts::default()
        };
        let opened = async {
            let mut conn = PusherConn::open(
                &fleet.target,
                opts,
                fleet.read_buffer,
                spec.index as u32 ^ cycle as u32,
                OPEN_TIMEOUT,
            )
            .await?;
            conn.subscribe(&channel).await?;
            Ok::<_, BenchError>(conn)
        }
        .await;
        let mut conn = match opened {
            Ok(c) => c,
            Err(e) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                shared.note_error("churner", &e);
                monoio::time::sleep(Duration::from_millis(hold_ms)).await;
                continue;
            }
        };
        let mut tracker = SeqTracker::default();
        let deadline = monotonic_ns() + hold_ms * 1_000_000;
        let mut broken = false;
        loop {
            let now = monotonic_ns();
            if now >= deadline || shared.phase() > Phase::Run {
                break;
            }
            let left = Duration::from_nanos(deadline - now);
            match monoio::time::timeout(left, conn.next(&|| {})).await {
                Err(_) => break,
                Ok(Ok(Step::Stamped(stamp))) => {
                    local
                        .stats
                        .record_latency_ns(monotonic_ns().saturating_sub(stamp.sent_ns));
                    tracker.record(stamp.seq);
                    if stamp.channel != channel_index {
                        local.subs.borrow_mut()[slot].wrong_channel += 1;
                    }
                }
                Ok(Ok(Step::Closed(_))) | Ok(Err(_)) => {
                    broken = true;
                    break;
                }
                Ok(Ok(_)) => {}
            }
        }
        if !broken {
            // The read that timed out was cancelled; the socket is still usable for writes.
            let _ = conn.ws.send_text(&unsubscribe(&channel)).await;
        } else {
            counters.errors.fetch_add(1, Ordering::Relaxed);
        }
        drop(conn);
        let mut results = local.subs.borrow_mut();
        let r = &mut results[slot];
        r.cycles += 1;
        r.churn_gaps += tracker.gaps();
        r.tracker.duplicates += tracker.duplicates;
        r.tracker.reordered += tracker.reordered;
        r.tracker.unique += tracker.unique;
    }
}

/// Publishes to the owned channels until the run ends: paced, or as fast as the window of
/// undelivered messages allows. One request in flight, so one channel's messages are
/// published in sequence order.
async fn publisher(local: Rc<Local>, spec: PubSpec) {
    let fleet = local.fleet.clone();
    let shared = &fleet.shared;
    let counters = &shared.counters;
    wait_phase(shared, Phase::Run, Duration::from_millis(1)).await;
    let mut api = ApiSlot::default();
    let mut seqs = vec![0u64; spec.channels.len()];
    let names: Vec<String> = spec.channels.iter().map(|&c| channel_name(c)).collect();
    let mut next_at = monotonic_ns();
    let mut turn = 0usize;
    let mut data = Vec::with_capacity(fleet.payload + 64);
    while shared.phase() == Phase::Run {
        match spec.interval {
            Some(interval) => {
                let now = monotonic_ns();
                if now < next_at {
                    monoio::time::sleep(Duration::from_nanos(next_at - now)).await;
                    continue;
                }
                next_at += interval.as_nanos() as u64;
            }
            None => {
                let outstanding = counters
                    .expected
                    .load(Ordering::SeqCst)
                    .saturating_sub(counters.ops.load(Ordering::SeqCst));
                if outstanding > spec.window {
                    monoio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
            }
        }
        let k = turn % spec.channels.len();
        turn += 1;
        let channel = spec.channels[k];
        if !api
            .ready(&fleet.target, spec.index, shared, "publisher connect")
            .await
        {
            continue;
        }
        let receivers = fleet.live[channel as usize].load(Ordering::SeqCst);
        counters.expected.fetch_add(receivers, Ordering::SeqCst);
        let sent_ns = monotonic_ns();
        data.clear();
        payload::encode_into(
            &mut data,
            Stamp {
                channel,
                seq: seqs[k],
                sent_ns,
            },
            fleet.payload,
        );
        let body = event_body(
            &names[k],
            "bench",
            std::str::from_utf8(&data).expect("ASCII payload"),
        );
        let accepted = api.trigger(&fleet.target, &body, shared, "publish").await;
        local
            .stats
            .record_secondary_ns(monotonic_ns().saturating_sub(sent_ns));
        seqs[k] += 1;
        if accepted {
            fleet.published[channel as usize].fetch_add(1, Ordering::SeqCst);
            counters.published.fetch_add(1, Ordering::Relaxed);
        } else {
            counters.expected.fetch_sub(receivers, Ordering::SeqCst);
        }
    }
    counters.publishers_active.fetch_sub(1, Ordering::SeqCst);
}

/// Collects `threads` results, waiting at most `timeout`.
pub fn collect(
    rx: &mpsc::Receiver<(usize, ThreadOut)>,
    threads: usize,
    timeout: Duration,
) -> Result<Vec<ThreadOut>, BenchError> {
    let mut outs = Vec::with_capacity(threads);
    for _ in 0..threads {
        let (_, out) = rx
            .recv_timeout(timeout)
            .map_err(|_| BenchError::Timeout("worker threads"))?;
        outs.push(out);
    }
    Ok(outs)
}

/// Merged primary and secondary histograms of all threads.
pub fn merged(outs: &[ThreadOut]) -> (Histogram<u64>, Histogram<u64>) {
    let mut a = histogram();
    let mut b = histogram();
    for o in outs {
        a.add(&o.latency).expect("same bounds");
        b.add(&o.secondary).expect("same bounds");
    }
    (a, b)
}

/// Totals of the readers' sequence checks.
#[derive(Clone, Copy, Debug, Default)]
pub struct Integrity {
    /// Readers checked (subscribed and still open at the end).
    pub checked: u64,
    /// Messages the server accepted but a reader never got.
    pub lost: u64,
    /// Messages a reader got twice.
    pub duplicated: u64,
    /// Messages that arrived after a later one.
    pub reordered: u64,
    /// Payloads for another channel.
    pub wrong_channel: u64,
    /// Readers closed by the server during the run.
    pub closed: u64,
    /// Readers that failed to open.
    pub failed: u64,
}

/// Checks every reader against the published counts of its stream.
pub fn integrity(outs: &[ThreadOut], published: &[AtomicU64]) -> Integrity {
    let mut t = Integrity::default();
    for r in outs
        .iter()
        .flat_map(|o| &o.subs)
        .filter(|r| r.kind == SubKind::Reader)
    {
        match r.end {
            End::Failed => t.failed += 1,
            End::Open => {
                t.checked += 1;
                t.lost += r
                    .tracker
                    .lost(published[r.stream as usize].load(Ordering::SeqCst));
                t.duplicated += r.tracker.duplicates;
                t.reordered += r.tracker.reordered;
                t.wrong_channel += r.wrong_channel;
            }
            _ => t.closed += 1,
        }
    }
    t
}

/// Adds the readers' end-to-end latency (as `label`), the publish requests' latency and the
/// readers' integrity figures to `report`, and returns the integrity totals for its checks.
pub fn report_deliveries(
    report: &mut Report,
    outs: &[ThreadOut],
    published: &[AtomicU64],
    label: &str,
) -> Integrity {
    let (latency, publish) = merged(outs);
    report.latency.push(Percentiles::of(label, &latency));
    report
        .latency
        .push(Percentiles::of("publish request (HTTP API)", &publish));
    let i = integrity(outs, published);
    report_integrity(report, &i);
    i
}

/// Adds the integrity figures and the check that they are all zero.
pub fn report_integrity(report: &mut Report, i: &Integrity) {
    report.metric("subscribers_checked", i.checked as f64, "");
    report.metric("lost", i.lost as f64, "messages");
    report.metric("duplicated", i.duplicated as f64, "messages");
    report.metric("out_of_order", i.reordered as f64, "messages");
    report.metric("wrong_channel", i.wrong_channel as f64, "messages");
    report.metric("subscribers_closed_by_server", i.closed as f64, "");
    report.metric("subscribers_failed", i.failed as f64, "");
    report.check(
        "no_loss_duplication_or_reordering",
        i.lost == 0 && i.duplicated == 0 && i.reordered == 0 && i.wrong_channel == 0,
        format!(
            "{} subscribers: lost {}, duplicated {}, out of order {}, wrong channel {}",
            i.checked, i.lost, i.duplicated, i.reordered, i.wrong_channel
        ),
    );
}

/// Waits until every subscriber opened or failed; fails the run if some did not in time.
pub fn wait_subscribed(
    monitor: &mut Monitor,
    shared: &Shared,
    count: usize,
    timeout: Duration,
) -> Result<(), BenchError> {
    let count = count as u64;
    let ok = monitor.wait_until(timeout, |s| {
        let c = &s.counters;
        c.subscribed.load(Ordering::Relaxed) + c.failed.load(Ordering::Relaxed) >= count
    });
    if !ok {
        let c = &shared.counters;
        return Err(BenchError::Timeout(
            if c.subscribed.load(Ordering::Relaxed) == 0 {
                "no subscriber connected"
            } else {
                "subscribers still connecting"
            },
        ));
    }
    Ok(())
}

/// Time allowed for `n` subscribers to connect.
pub fn setup_timeout(n: usize) -> Duration {
    Duration::from_secs(30) + Duration::from_millis(n as u64 * 2)
}

/// Starts the fleet's threads with `subs` and `pubs` and waits until `expected` of the
/// subscribers are subscribed (or failed). Returns the threads' results channel and the
/// monitor that sampled the setup.
pub fn launch(
    fleet: &Arc<Fleet>,
    common: &Common,
    subs: Vec<SubSpec>,
    pubs: Vec<PubSpec>,
    expected: usize,
) -> Result<(mpsc::Receiver<(usize, ThreadOut)>, Monitor), BenchError> {
    let setup = setup_timeout(subs.len());
    let rx = start(fleet, common.thread_count(), !common.no_pin, subs, pubs);
    let shared = &fleet.shared;
    let mut monitor = Monitor::new(shared.clone(), common.pid, common.quiet);
    monitor.target_connections = expected as u64;
    wait_subscribed(&mut monitor, shared, expected, setup)?;
    Ok((rx, monitor))
}

/// Stops the publishers and waits for the last deliveries to arrive (or `timeout` to pass).
/// Returns the seconds from `run_start_ns` until deliveries stopped.
pub fn drain(monitor: &mut Monitor, shared: &Shared, timeout: Duration, run_start_ns: u64) -> f64 {
    shared.set_phase(Phase::Drain);
    let c = &shared.counters;
    monitor.wait_until(timeout, |_| {
        c.publishers_active.load(Ordering::SeqCst) == 0
            && c.ops.load(Ordering::SeqCst) >= c.expected.load(Ordering::SeqCst)
    });
    (monotonic_ns() - run_start_ns) as f64 / 1e9
}

/// Ends a run: [`drain`], then the threads hand in their results.
pub fn drain_and_finish(
    monitor: &mut Monitor,
    shared: &Shared,
    timeout: Duration,
    run_start_ns: u64,
) -> f64 {
    let elapsed = drain(monitor, shared, timeout, run_start_ns);
    shared.set_phase(Phase::Done);
    elapsed
}

/// Starts the worker threads, giving thread `t` the subscribers and publishers with index
/// `t` modulo the thread count.
pub fn start(
    fleet: &Arc<Fleet>,
    threads: usize,
    pin: bool,
    subs: Vec<SubSpec>,
    pubs: Vec<PubSpec>,
) -> mpsc::Receiver<(usize, ThreadOut)> {
    let parts: Vec<Option<(Vec<SubSpec>, Vec<PubSpec>)>> = by_thread(subs, threads)
        .into_iter()
        .zip(by_thread(pubs, threads))
        .map(Some)
        .collect();
    let parts = Arc::new(std::sync::Mutex::new(parts));
    let fleet = fleet.clone();
    crate::runner::spawn_workers(threads, pin, move |i| {
        let (s, p) = parts.lock().expect("poisoned")[i]
            .take()
            .expect("taken once");
        worker(fleet.clone(), s, p)
    })
}

/// Assigns items to threads round robin.
pub fn by_thread<T>(items: Vec<T>, threads: usize) -> Vec<Vec<T>> {
    let mut out: Vec<Vec<T>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, item) in items.into_iter().enumerate() {
        out[i % threads].push(item);
    }
    out
}

/// Writes the report's outputs and prints its table.
pub fn emit(report: &Report, common: &Common) -> std::io::Result<()> {
    print!("{}", report.table());
    if let Some(path) = &common.json {
        report.write_json(path)?;
    }
    if let Some(path) = &common.svg {
        std::fs::write(path, crate::svg::render(report))?;
    }
    Ok(())
}
