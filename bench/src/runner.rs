//! Threads and the main thread's watch over them.
//!
//! Each worker is one OS thread pinned to a core with its own monoio runtime (io_uring, or
//! epoll where io_uring is unavailable). The main thread does no I/O on the clients' sockets: it
//! moves the scenario through its phases, prints progress once a second and samples the
//! server's memory.

use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Duration;

use crate::cli::Common;
use crate::error::BenchError;
use crate::procfs;
use crate::report::{Report, Sample};
use crate::stats::{Percentiles, Phase, Shared, ThreadStats, histogram};
use crate::sys::monotonic_ns;

/// Starts `threads` workers, each running `body(index)` to completion on its own runtime.
/// Results arrive on the returned channel as `(index, result)`.
pub fn spawn_workers<F, Fut, R>(threads: usize, pin: bool, body: F) -> mpsc::Receiver<(usize, R)>
where
    F: Fn(usize) -> Fut + Send + Clone + 'static,
    Fut: Future<Output = R> + 'static,
    R: Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    for index in 0..threads {
        let body = body.clone();
        let tx = tx.clone();
        let core = (!cores.is_empty() && pin).then(|| cores[index % cores.len()]);
        std::thread::Builder::new()
            .name(format!("bench-{index}"))
            .spawn(move || {
                if let Some(core) = core {
                    core_affinity::set_for_current(core);
                }
                let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
                    .enable_timer()
                    .with_entries(4096)
                    .build()
                    .expect("monoio runtime");
                let result = rt.block_on(body(index));
                let _ = tx.send((index, result));
            })
            .expect("spawn worker thread");
    }
    rx
}

/// How a run of closed loops ends: after `duration` seconds or once `done` holds, whichever
/// comes first, then at most `drain` for the loops to finish what they started.
pub struct LoopRun<D> {
    /// Seconds of measurement.
    pub duration: f64,
    /// Ends the measurement early when it holds.
    pub done: D,
    /// Time the loops get to finish after the measurement.
    pub drain: Duration,
}

/// Runs `count` closed loops spread round robin over the worker threads. Loop `i` runs
/// `body(i, stats)` from the start of the measurement; the future should return once the
/// phase leaves `Run`, and record its latencies in `stats`. Returns the monitor, the
/// seconds from the start of the measurement until the last loop ended (or the drain ran
/// out) and the loops' merged latencies.
pub fn run_loops<B, Fut, D>(
    common: &Common,
    shared: &Arc<Shared>,
    count: usize,
    run: LoopRun<D>,
    body: B,
) -> Result<(Monitor, f64, hdrhistogram::Histogram<u64>), BenchError>
where
    B: Fn(usize, Rc<ThreadStats>) -> Fut + Send + Clone + 'static,
    Fut: Future<Output = ()> + 'static,
    D: FnMut(&Shared) -> bool,
{
    let threads = common.thread_count();
    let rx = {
        let shared = shared.clone();
        spawn_workers(threads, !common.no_pin, move |t| {
            let loops = (t..count).step_by(threads).collect();
            loop_thread(shared.clone(), loops, body.clone())
        })
    };
    let mut monitor = Monitor::new(shared.clone(), common.pid, common.quiet);
    monitor.target_connections = count as u64;
    let run_start = monotonic_ns();
    shared.set_phase(Phase::Run);
    monitor.wait_until(Duration::from_secs_f64(run.duration), run.done);
    shared.set_phase(Phase::Drain);
    monitor.wait_until(run.drain, |s| {
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
    Ok((monitor, elapsed, latency))
}

/// One thread's part of [`run_loops`]: its loops, each counted as active until it returns,
/// and its latencies handed over at the end.
async fn loop_thread<B, Fut>(
    shared: Arc<Shared>,
    loops: Vec<usize>,
    body: B,
) -> hdrhistogram::Histogram<u64>
where
    B: Fn(usize, Rc<ThreadStats>) -> Fut,
    Fut: Future<Output = ()> + 'static,
{
    let stats = Rc::new(ThreadStats::default());
    monoio::spawn(ticker(shared.clone(), stats.clone()));
    for i in loops {
        let active = &shared.counters.publishers_active;
        active.fetch_add(1, Ordering::SeqCst);
        let work = body(i, stats.clone());
        let shared = shared.clone();
        monoio::spawn(async move {
            wait_phase(&shared, Phase::Run, Duration::from_millis(1)).await;
            work.await;
            shared
                .counters
                .publishers_active
                .fetch_sub(1, Ordering::SeqCst);
        });
    }
    wait_phase(&shared, Phase::Done, Duration::from_millis(10)).await;
    stats.flush(&shared.counters);
    stats.total.replace(histogram())
}

/// Sleeps on a monoio runtime until `phase` is reached, checking every `poll`.
pub async fn wait_phase(shared: &Shared, phase: Phase, poll: Duration) {
    while shared.phase() < phase {
        monoio::time::sleep(poll).await;
    }
}

/// Hands the thread's interval latencies to the shared per-second slots, once a second,
/// until the scenario is done.
pub async fn ticker(shared: Arc<Shared>, stats: std::rc::Rc<crate::stats::ThreadStats>) {
    let mut index = 0usize;
    loop {
        let due = shared.start_ns + (index as u64 + 1) * 1_000_000_000;
        let now = monotonic_ns();
        if due > now {
            monoio::time::sleep(Duration::from_nanos(due - now)).await;
        }
        {
            let mut interval = stats.interval.borrow_mut();
            shared.deposit(index, &interval);
            interval.reset();
        }
        stats.flush(&shared.counters);
        index += 1;
        if shared.phase() == Phase::Done {
            return;
        }
    }
}

/// The main thread's view of a run: progress lines and per-second samples.
pub struct Monitor {
    shared: Arc<Shared>,
    pid: Option<u32>,
    quiet: bool,
    /// Samples taken so far.
    pub samples: Vec<Sample>,
    next_sample: u64,
    last_ops: u64,
    /// Expected connections (for the progress line).
    pub target_connections: u64,
    /// The server's ports whose sockets' send-side kernel memory each sample records; empty
    /// for none (listing thousands of sockets each second costs the run some CPU).
    pub send_buffer_ports: Vec<u16>,
}

impl Monitor {
    /// A monitor over `shared`, sampling the server `pid` if given.
    pub fn new(shared: Arc<Shared>, pid: Option<u32>, quiet: bool) -> Self {
        let next_sample = shared.start_ns + 1_000_000_000;
        Self {
            shared,
            pid,
            quiet,
            samples: Vec::new(),
            next_sample,
            last_ops: 0,
            target_connections: 0,
            send_buffer_ports: Vec::new(),
        }
    }

    /// Server resident memory now.
    pub fn server_memory(&self) -> Option<procfs::ProcMemory> {
        self.pid
            .and_then(|p| procfs::process_memory(&p.to_string()))
    }

    /// The server's highest resident size so far: the largest sample, or the kernel's
    /// high-water mark, which also counts a peak handed back between two samples.
    pub fn server_rss_peak(&self) -> Option<u64> {
        self.samples
            .iter()
            .filter_map(|s| s.server_rss)
            .chain(self.server_memory().map(|m| m.rss_peak))
            .max()
    }

    /// Waits up to `timeout` for `done` to hold, sampling once a second. Returns whether it
    /// held.
    pub fn wait_until(&mut self, timeout: Duration, mut done: impl FnMut(&Shared) -> bool) -> bool {
        let deadline = monotonic_ns() + timeout.as_nanos() as u64;
        loop {
            if done(&self.shared) {
                return true;
            }
            let now = monotonic_ns();
            if now >= self.next_sample {
                self.sample();
            }
            if now >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for `duration`, sampling.
    pub fn hold(&mut self, duration: Duration) {
        self.wait_until(duration, |_| false);
    }

    fn sample(&mut self) {
        let c = &self.shared.counters;
        let ops = c.ops.load(Ordering::Relaxed);
        let t = (self.next_sample - self.shared.start_ns) as f64 / 1e9;
        let open = c
            .subscribed
            .load(Ordering::Relaxed)
            .saturating_sub(c.closed.load(Ordering::Relaxed));
        let sample = Sample {
            t,
            phase: self.shared.phase().label().to_string(),
            ops_per_sec: (ops - self.last_ops) as f64,
            connections: open,
            server_rss: self.server_memory().map(|m| m.rss),
            kernel_tcp: procfs::sockstat().map(|s| s.tcp_mem_bytes),
            server_send_buffers: procfs::send_queued(&self.send_buffer_ports),
            ..Sample::default()
        };
        self.last_ops = ops;
        self.next_sample += 1_000_000_000;
        if !self.quiet {
            let p99 = self
                .recent_p99()
                .map_or(String::from("-"), |v| format!("{v:.2}ms"));
            let rss = sample.server_rss.map_or(String::from("-"), |b| {
                format!("{:.1}MiB", b as f64 / 1048576.0)
            });
            eprintln!(
                "[{:>5.0}s] {:<7} conns {}/{} ops/s {:>12} p99 {:>9} rss {:>10} failed {} closed {} errors {}",
                t,
                sample.phase,
                open,
                self.target_connections,
                crate::report::human(sample.ops_per_sec),
                p99,
                rss,
                c.failed.load(Ordering::Relaxed),
                c.closed.load(Ordering::Relaxed),
                c.errors.load(Ordering::Relaxed),
            );
        }
        self.samples.push(sample);
    }

    fn recent_p99(&self) -> Option<f64> {
        let slots = self.shared.slots.lock().ok()?;
        let slot = slots
            .iter()
            .rev()
            .find(|s| s.deposits >= self.shared.threads)?;
        (!slot.hist.is_empty()).then(|| slot.hist.value_at_quantile(0.99) as f64 / 1000.0)
    }

    /// Fills the report's timeline with the samples and each second's latency percentiles.
    pub fn finish(self, report: &mut Report) {
        let slots = self.shared.slots.lock().expect("poisoned");
        let mut samples = self.samples;
        for (i, s) in samples.iter_mut().enumerate() {
            if let Some(slot) = slots.get(i) {
                if !slot.hist.is_empty() {
                    let p = Percentiles::of("", &slot.hist);
                    s.p50_ms = Some(p.p50_ms);
                    s.p99_ms = Some(p.p99_ms);
                    s.p999_ms = Some(p.p999_ms);
                    s.max_ms = Some(p.max_ms);
                }
            }
        }
        report.timeline = samples;
        report.errors = self.shared.errors.lock().expect("poisoned").clone();
    }
}
