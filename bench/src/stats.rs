//! Counters shared by every thread, latency histograms kept per thread, and the per-second
//! slots the timeline is drawn from.
//!
//! Hot-path counting stays thread-local: a subscriber adds deliveries to its thread's pending
//! count and publishes it to the shared atomic once per socket read, so two threads do not
//! bounce one cache line per message.

use std::cell::{Cell, RefCell};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use hdrhistogram::Histogram;

use crate::error::BenchError;

/// Largest latency a histogram records, in microseconds (one minute); longer ones are clamped.
pub const MAX_LATENCY_US: u64 = 60_000_000;

/// A latency histogram in microseconds with three significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid bounds")
}

/// Where a scenario is. Threads read it to know when to start, stop publishing and finish.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Phase {
    /// Connecting and subscribing.
    Setup = 0,
    /// Measuring.
    Run = 1,
    /// Publishers stopped; waiting for the last deliveries.
    Drain = 2,
    /// Clients that stopped reading start again (slow scenario).
    Release = 3,
    /// Threads hand in their results.
    Done = 4,
}

impl Phase {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Setup,
            1 => Self::Run,
            2 => Self::Drain,
            3 => Self::Release,
            _ => Self::Done,
        }
    }

    /// Short name for the progress line.
    pub fn label(self) -> &'static str {
        match self {
            Self::Setup => "setup",
            Self::Run => "run",
            Self::Drain => "drain",
            Self::Release => "release",
            Self::Done => "done",
        }
    }
}

/// Counters every thread adds to.
#[derive(Debug, Default)]
pub struct Counters {
    /// Client connections that completed the handshake.
    pub connected: AtomicU64,
    /// Client connections subscribed.
    pub subscribed: AtomicU64,
    /// Client connections that failed to open or subscribe.
    pub failed: AtomicU64,
    /// Client connections the server closed after they were subscribed.
    pub closed: AtomicU64,
    /// The scenario's unit of throughput: deliveries, handshakes or API requests.
    pub ops: AtomicU64,
    /// Operations that failed (API errors, broken handshakes in a loop).
    pub errors: AtomicU64,
    /// Deliveries the publishers have asked for (flow control).
    pub expected: AtomicU64,
    /// Publishes the server accepted.
    pub published: AtomicU64,
    /// Publisher tasks still running.
    pub publishers_active: AtomicU64,
}

/// One second of latencies from every thread.
#[derive(Debug)]
pub struct Slot {
    /// Latencies recorded in this second.
    pub hist: Histogram<u64>,
    /// Threads that have handed in their part.
    pub deposits: usize,
}

/// State shared by all threads of one scenario run.
#[derive(Debug)]
pub struct Shared {
    /// Counters.
    pub counters: Counters,
    phase: AtomicU8,
    /// `CLOCK_MONOTONIC` at the start; timeline seconds count from here.
    pub start_ns: u64,
    /// Number of worker threads.
    pub threads: usize,
    /// Per-second latency histograms.
    pub slots: Mutex<Vec<Slot>>,
    /// The first few distinct error messages, for the report.
    pub errors: Mutex<Vec<String>>,
}

impl Shared {
    /// Shared state for `threads` workers, starting now.
    pub fn new(threads: usize) -> Self {
        Self {
            counters: Counters::default(),
            phase: AtomicU8::new(Phase::Setup as u8),
            start_ns: crate::sys::monotonic_ns(),
            threads,
            slots: Mutex::new(Vec::new()),
            errors: Mutex::new(Vec::new()),
        }
    }

    /// Current phase.
    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Acquire))
    }

    /// Moves to `phase`.
    pub fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Release);
    }

    /// Remembers an error message (the first 8 distinct kinds).
    pub fn note_error(&self, context: &str, e: &BenchError) {
        let msg = format!("{context}: {e}");
        let mut errors = self.errors.lock().expect("poisoned");
        let kind = |m: &str| m.chars().take(40).collect::<String>();
        if errors.len() < 8 && !errors.iter().any(|x| kind(x) == kind(&msg)) {
            errors.push(msg);
        }
    }

    /// Adds a thread's latencies of second `index` to its slot.
    pub fn deposit(&self, index: usize, hist: &Histogram<u64>) {
        let mut slots = self.slots.lock().expect("poisoned");
        while slots.len() <= index {
            slots.push(Slot {
                hist: histogram(),
                deposits: 0,
            });
        }
        let slot = &mut slots[index];
        slot.hist.add(hist).expect("same bounds");
        slot.deposits += 1;
    }

    /// Seconds since the start.
    pub fn elapsed_secs(&self) -> f64 {
        (crate::sys::monotonic_ns() - self.start_ns) as f64 / 1e9
    }
}

/// Per-thread latency recording and pending counts.
#[derive(Debug)]
pub struct ThreadStats {
    /// Every latency of the run.
    pub total: RefCell<Histogram<u64>>,
    /// Latencies since the last per-second deposit.
    pub interval: RefCell<Histogram<u64>>,
    /// A second histogram for scenarios that time two things (publish request latency).
    pub secondary: RefCell<Histogram<u64>>,
    /// Operations counted but not yet added to [`Counters::ops`].
    pub pending_ops: Cell<u64>,
}

impl Default for ThreadStats {
    fn default() -> Self {
        Self {
            total: RefCell::new(histogram()),
            interval: RefCell::new(histogram()),
            secondary: RefCell::new(histogram()),
            pending_ops: Cell::new(0),
        }
    }
}

impl ThreadStats {
    /// Records one latency in nanoseconds and counts one operation (published later by
    /// [`flush`](Self::flush)).
    pub fn record_ns(&self, ns: u64) {
        self.record_latency_ns(ns);
        self.pending_ops.set(self.pending_ops.get() + 1);
    }

    /// Records one latency without counting an operation.
    pub fn record_latency_ns(&self, ns: u64) {
        let us = (ns / 1000).clamp(1, MAX_LATENCY_US);
        self.total.borrow_mut().record(us).expect("clamped");
        self.interval.borrow_mut().record(us).expect("clamped");
    }

    /// Records a latency in the secondary histogram.
    pub fn record_secondary_ns(&self, ns: u64) {
        let us = (ns / 1000).clamp(1, MAX_LATENCY_US);
        self.secondary.borrow_mut().record(us).expect("clamped");
    }

    /// Adds the pending operations to the shared counter.
    pub fn flush(&self, counters: &Counters) {
        let n = self.pending_ops.replace(0);
        if n > 0 {
            counters.ops.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// Latency percentiles in milliseconds.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Percentiles {
    /// What was timed.
    pub what: String,
    /// Samples.
    pub count: u64,
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl Percentiles {
    /// Summary of `h` (microseconds).
    pub fn of(what: &str, h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            what: what.to_string(),
            count: h.len(),
            mean_ms: h.mean() / 1000.0,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_clamp_and_summarise() {
        let t = ThreadStats::default();
        for ns in [0, 500, 1_000_000, 2_000_000, u64::MAX] {
            t.record_ns(ns);
        }
        let p = Percentiles::of("x", &t.total.borrow());
        assert_eq!(p.count, 5);
        assert!(p.max_ms >= 59_000.0);
        let c = Counters::default();
        t.flush(&c);
        assert_eq!(c.ops.load(Ordering::Relaxed), 5);
        assert_eq!(t.pending_ops.get(), 0);
    }

    #[test]
    fn slots_merge_thread_deposits() {
        let s = Shared::new(2);
        let mut h = histogram();
        h.record(100).unwrap();
        s.deposit(3, &h);
        s.deposit(3, &h);
        let slots = s.slots.lock().unwrap();
        assert_eq!(slots.len(), 4);
        assert_eq!(slots[3].deposits, 2);
        assert_eq!(slots[3].hist.len(), 2);
        assert_eq!(s.phase(), Phase::Setup);
    }
}
