//! The sender thread of one webhook: its queue in, HTTP requests out.
//!
//! One thread per webhook, each with its own `ureq` agent: a blocking HTTP/1.1 client with a
//! keep-alive connection pool and HTTPS through rustls, maintained and small, which needs no
//! async runtime beside the workers' monoio (hyper or reqwest would bring tokio for what one
//! blocking loop does). A thread per webhook keeps a receiver that hangs from delaying any
//! other webhook, and the workers never see either: they only `try_send` into the queue.
//!
//! The loop takes one event, or with batching on, every event that arrives within the batch
//! window up to its maximum (at once when that many are already waiting); encodes and signs
//! the body once; and posts it until a 2xx answer.
//! A failure (a non-2xx status, a timeout, a refused connection) is retried after
//! [`FIRST_BACKOFF`], doubling up to [`MAX_BACKOFF`], for [`RETRY_FOR`](super::RETRY_FOR) from
//! the first attempt; then the request is given up, counted and logged. Requests go one at a
//! time, so the receiver gets the webhook's events in the order they entered its queue (which
//! is the order they were decided for the events that one place decides: see "Webhooks" in
//! README.md), and a receiver that was down gets its backlog, in order, once it answers again.
//!
//! When to retry and when to give up is [`Retry`]'s decision, with the time passed in.
//!
//! On shutdown ([`super::Webhooks::shutdown`]) the thread keeps sending what is queued, with
//! its waits and timeouts cut to the shutdown deadline, and counts what is left then as dropped.
//! A request begun before the shutdown keeps the timeout it started with; when it is still
//! waiting for its receiver at the deadline, the shutdown does not wait for it and counts the
//! thread's events as dropped in its place ([`Held`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, select};

use super::config::{Batch, WebhookConfig};
use super::{Counters, Hook, RETRY_FOR, payload};

/// Wait before the first retry.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest wait between two attempts: a receiver that comes back is served within this.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Most bytes of a response body read (and discarded) so the connection can be reused.
const MAX_RESPONSE: u64 = 64 * 1024;

/// Least time left before the shutdown deadline for a retry to be worth waiting for.
const LAST_RETRY: Duration = Duration::from_millis(100);

/// What follows a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Wait this long, then try again.
    RetryAfter(Duration),
    /// Stop trying: the request is given up.
    GiveUp,
}

/// The retry schedule of one request: [`FIRST_BACKOFF`] after the first failure, doubling up
/// to [`MAX_BACKOFF`], for `horizon` ([`RETRY_FOR`](super::RETRY_FOR)) from the first attempt;
/// once shutdown began, only while the deadline leaves time for another attempt. Time is
/// passed in, so the schedule is the same whatever the clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retry {
    first: Instant,
    horizon: Duration,
    backoff: Duration,
}

impl Retry {
    /// The schedule of a request first attempted at `first`.
    pub fn new(first: Instant, horizon: Duration) -> Retry {
        Retry {
            first,
            horizon,
            backoff: FIRST_BACKOFF,
        }
    }

    /// An attempt failed at `now`; `deadline` is the shutdown deadline once shutdown began.
    /// The wait before the next attempt, or [`Next::GiveUp`] when that attempt would come
    /// after the horizon, or the deadline leaves no time for it.
    pub fn failed(&mut self, now: Instant, deadline: Option<Instant>) -> Next {
        let wait = self.backoff;
        let give_up = match deadline {
            Some(d) => now + wait.min(LAST_RETRY) >= d,
            None => now.saturating_duration_since(self.first) + wait > self.horizon,
        };
        if give_up {
            return Next::GiveUp;
        }
        self.backoff = (wait * 2).min(MAX_BACKOFF);
        Next::RetryAfter(wait)
    }
}

/// The events a sender took from its queue and has not settled yet (delivered or given up),
/// shared with the shutdown, which counts them as dropped when the sender is still inside a
/// request at the deadline. Whichever of the two settles them first counts them, once.
#[derive(Debug, Default)]
pub struct Held {
    /// Events of the request in flight.
    events: AtomicU64,
    /// Whether the queue's leftovers were counted (by the sender or by the shutdown).
    settled: AtomicBool,
}

impl Held {
    /// Takes the events of the request in flight, for whoever settles them: 0 when they
    /// were settled already.
    pub fn take(&self) -> u64 {
        self.events.swap(0, Ordering::AcqRel)
    }

    /// Whether this call is the first to claim the queue's leftovers.
    pub fn settle(&self) -> bool {
        !self.settled.swap(true, Ordering::AcqRel)
    }
}

/// An event in a webhook's queue.
#[derive(Debug)]
pub struct Queued {
    pub hook: Hook,
    /// When it was decided, in Unix milliseconds.
    pub at_ms: u64,
}

/// One webhook's sender.
pub struct Sender {
    url: String,
    key: String,
    secret: String,
    headers: Vec<(String, String)>,
    batch: Batch,
    timeout: Duration,
    agent: ureq::Agent,
    rx: Receiver<Queued>,
    stop: Receiver<()>,
    deadline: Arc<Mutex<Option<Instant>>>,
    counters: Arc<Counters>,
    held: Arc<Held>,
    /// How long a failed request is retried: [`RETRY_FOR`].
    retry_for: Duration,
}

impl Sender {
    /// The sender of webhook `w` of the app with `key` and `secret`.
    pub fn new(
        w: &WebhookConfig,
        key: &str,
        secret: &str,
        rx: Receiver<Queued>,
        stop: Receiver<()>,
        deadline: Arc<Mutex<Option<Instant>>>,
        counters: Arc<Counters>,
    ) -> Sender {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent("ringcast-webhooks")
            .max_idle_connections_per_host(2)
            .build()
            .new_agent();
        Sender {
            url: w.url.clone(),
            key: key.to_string(),
            secret: secret.to_string(),
            headers: w
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            batch: w.batch.clone(),
            timeout: Duration::from_millis(w.timeout_ms),
            agent,
            rx,
            stop,
            deadline,
            counters,
            held: Arc::default(),
            retry_for: RETRY_FOR,
        }
    }

    /// The events this sender holds outside its queue, for the shutdown.
    pub fn held(&self) -> Arc<Held> {
        self.held.clone()
    }

    /// The shutdown deadline, once shutdown began.
    fn deadline(&self) -> Option<Instant> {
        self.deadline.lock().ok().and_then(|d| *d)
    }

    /// Sends until shutdown, then until the queue is empty or the deadline passed.
    pub fn run(self) {
        while let Some(first) = self.next() {
            let mut batch = vec![first];
            if self.batch.enabled {
                // The window is slept through in tenths, not waited on event by event: a
                // worker's `try_send` to a queue nobody blocks on wakes no thread, so a batch
                // costs at most ten wake-ups instead of one per event, and goes as soon as a
                // tenth finds it full.
                let window = Duration::from_millis(self.batch.window_ms);
                let mut until = Instant::now() + window;
                if let Some(d) = self.deadline() {
                    until = until.min(d);
                }
                let slice = (window / 10).max(Duration::from_millis(1));
                while self.rx.len() + 1 < self.batch.max_events {
                    let left = until.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    self.wait(slice.min(left));
                }
                while batch.len() < self.batch.max_events {
                    match self.rx.try_recv() {
                        Ok(q) => batch.push(q),
                        Err(_) => break,
                    }
                }
            }
            self.deliver(batch);
        }
        if !self.held.settle() {
            // The shutdown stopped waiting for this thread and counted its events.
            return;
        }
        self.counters
            .unsent_at_shutdown(&self.url, self.rx.len() as u64);
    }

    /// The next event: waits for one until shutdown; after it, takes what is queued while the
    /// deadline has not passed.
    fn next(&self) -> Option<Queued> {
        if let Some(d) = self.deadline() {
            return if Instant::now() < d {
                self.rx.try_recv().ok()
            } else {
                None
            };
        }
        select! {
            recv(self.rx) -> q => q.ok(),
            recv(self.stop) -> _ => match self.deadline() {
                // Shutdown began: the deadline was set before the stop channel closed.
                Some(_) => self.next(),
                // The senders were dropped without a shutdown (start-up failed): stop now.
                None => None,
            }
        }
    }

    /// Posts one request's events until it is answered 2xx or given up.
    fn deliver(&self, batch: Vec<Queued>) {
        let n = batch.len() as u64;
        let events: Vec<serde_json::Value> = batch.iter().map(|q| q.hook.to_json()).collect();
        let body = payload::body(batch[0].at_ms, &events);
        let signature = payload::signature(&self.secret, &body);
        self.held.events.store(n, Ordering::Release);
        let mut retry = Retry::new(Instant::now(), self.retry_for);
        let mut attempts = 0u32;
        loop {
            let mut timeout = self.timeout;
            if let Some(d) = self.deadline() {
                timeout = timeout.min(d.saturating_duration_since(Instant::now()));
            }
            let outcome = if timeout.is_zero() {
                Err("the shutdown deadline passed".to_string())
            } else {
                self.post(&body, &signature, timeout)
            };
            attempts += 1;
            let reason = match outcome {
                Ok(()) => {
                    self.counters.requests.fetch_add(1, Ordering::Relaxed);
                    self.counters
                        .delivered
                        .fetch_add(self.held.take(), Ordering::Relaxed);
                    if attempts > 1 {
                        tracing::info!(url = %self.url, attempts, "webhook delivered after retries");
                    }
                    return;
                }
                Err(reason) => reason,
            };
            self.counters.failures.fetch_add(1, Ordering::Relaxed);
            if attempts == 1 {
                tracing::warn!(url = %self.url, %reason, "webhook request failed; retrying with backoff");
            } else {
                tracing::debug!(url = %self.url, %reason, attempts, "webhook request failed again");
            }
            match retry.failed(Instant::now(), self.deadline()) {
                Next::RetryAfter(wait) => self.wait(wait),
                Next::GiveUp => {
                    let n = self.held.take();
                    if n > 0 {
                        self.counters.dropped.fetch_add(n, Ordering::Relaxed);
                        tracing::warn!(
                            url = %self.url,
                            %reason,
                            attempts,
                            events = n,
                            "webhook request given up"
                        );
                    }
                    return;
                }
            }
        }
    }

    /// Waits `d`, or until the shutdown deadline when shutdown began meanwhile.
    fn wait(&self, d: Duration) {
        if let Some(deadline) = self.deadline() {
            std::thread::sleep(d.min(deadline.saturating_duration_since(Instant::now())));
            return;
        }
        select! {
            recv(self.stop) -> _ => {}
            default(d) => {}
        }
    }

    /// One attempt: `Ok` for a 2xx answer.
    fn post(&self, body: &str, signature: &str, timeout: Duration) -> Result<(), String> {
        let mut req = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("X-Pusher-Key", &self.key)
            .header("X-Pusher-Signature", signature);
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        // Each step has the timeout, not the request as a whole: with an overall timeout ureq
        // resolves the host on a thread spawned for every request, pooled connection or not,
        // which was most of a request's cost. Name lookups take what the system resolver takes.
        let t = Some(timeout);
        let mut resp = req
            .config()
            .timeout_connect(t)
            .timeout_send_request(t)
            .timeout_send_body(t)
            .timeout_recv_response(t)
            .timeout_recv_body(t)
            .build()
            .send(body.as_bytes())
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        // Read what the receiver answered, so that the connection goes back to the pool.
        let _ = resp
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE)
            .read_to_vec();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("answered {status}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use ringcast_protocol::Limits;
    use ringcast_protocol::pusher::channel::ChannelName;

    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const SEC: Duration = Duration::from_secs(1);

    /// Fails every attempt of one request, each `took` long and made as soon as its wait is
    /// over, and returns when each failed attempt began and the waits between them, until
    /// the schedule gives up.
    fn fail_until_given_up(took: Duration) -> (Vec<Duration>, Vec<Duration>) {
        let t0 = Instant::now();
        let mut retry = Retry::new(t0, RETRY_FOR);
        let (mut starts, mut waits) = (Vec::new(), Vec::new());
        let mut at = t0;
        loop {
            starts.push(at - t0);
            at += took;
            match retry.failed(at, None) {
                Next::RetryAfter(w) => {
                    waits.push(w);
                    at += w;
                }
                Next::GiveUp => return (starts, waits),
            }
        }
    }

    #[test]
    fn the_waits_double_from_half_a_second_up_to_thirty() {
        let (_, waits) = fail_until_given_up(Duration::ZERO);
        let want: Vec<Duration> = [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]
            .iter()
            .map(|ms: &u32| *ms * MS)
            .collect();
        assert_eq!(waits[..8], want[..]);
        assert!(waits.iter().all(|w| *w <= MAX_BACKOFF), "{waits:?}");
        assert!(waits[6..].iter().all(|w| *w == MAX_BACKOFF), "{waits:?}");
    }

    #[test]
    fn a_request_is_given_up_when_its_next_attempt_would_pass_five_minutes() {
        // Attempts at 0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s, then every 30 s up to 271.5 s:
        // one more would come at 301.5 s.
        let (starts, _) = fail_until_given_up(Duration::ZERO);
        assert_eq!(starts.len(), 15, "{starts:?}");
        assert_eq!(*starts.last().unwrap(), 271_500 * MS);
        // The time a failing attempt takes counts too: with 4 s timeouts, fewer attempts.
        let (slow, waits) = fail_until_given_up(4 * SEC);
        assert!(slow.len() < 15, "{slow:?}");
        for (start, wait) in slow.iter().skip(1).zip(&waits) {
            assert!(
                *start <= RETRY_FOR,
                "an attempt at {start:?} after a {wait:?} wait"
            );
        }
        let last = *slow.last().unwrap();
        assert!(
            last + 4 * SEC + MAX_BACKOFF > RETRY_FOR,
            "given up early at {last:?}"
        );
        // The boundary, exactly: the next attempt may start at 300 s, not after.
        let t0 = Instant::now();
        let mut at_limit = Retry::new(t0, RETRY_FOR);
        at_limit.backoff = MAX_BACKOFF;
        let mut past = at_limit;
        assert_eq!(
            at_limit.failed(t0 + 270 * SEC, None),
            Next::RetryAfter(MAX_BACKOFF)
        );
        assert_eq!(past.failed(t0 + 270 * SEC + MS, None), Next::GiveUp);
    }

    #[test]
    fn after_shutdown_began_only_a_deadline_with_time_left_is_waited_for() {
        let t0 = Instant::now();
        let mut r = Retry::new(t0, RETRY_FOR);
        assert_eq!(r.failed(t0, Some(t0 + 100 * MS)), Next::GiveUp);
        let mut r = Retry::new(t0, RETRY_FOR);
        assert_eq!(
            r.failed(t0, Some(t0 + 101 * MS)),
            Next::RetryAfter(FIRST_BACKOFF),
            "the wait itself is cut to the deadline by the sender"
        );
        let mut r = Retry::new(t0, RETRY_FOR);
        assert_eq!(r.failed(t0 + SEC, Some(t0 + SEC)), Next::GiveUp);
    }

    /// A sender of one webhook to `url` with a retry horizon of `retry_for`, its counters, and
    /// the stop channel's sending half, which keeps it running while held.
    fn sender(
        url: &str,
        retry_for: Duration,
    ) -> (Sender, Arc<Counters>, crossbeam_channel::Sender<()>) {
        let w = WebhookConfig {
            url: url.into(),
            event_types: vec!["channel_occupied".into()],
            ..WebhookConfig::default()
        };
        let (_, rx) = crossbeam_channel::bounded(1);
        let (running, stop) = crossbeam_channel::bounded(0);
        let counters = Arc::new(Counters::default());
        let mut s = Sender::new(
            &w,
            "k",
            "s",
            rx,
            stop,
            Arc::new(Mutex::new(None)),
            counters.clone(),
        );
        s.retry_for = retry_for;
        (s, counters, running)
    }

    #[test]
    fn the_sender_retries_and_gives_up_on_that_schedule() {
        // A port nothing listens on: every attempt is refused at once.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/hook");
        let channel = Arc::new(ChannelName::parse("c", &Limits::default()).unwrap());
        let queued = || Queued {
            hook: Hook::ChannelOccupied {
                channel: channel.clone(),
            },
            at_ms: 1,
        };
        // A horizon of 1.2 s: the first failure is retried after 0.5 s; the second, at 0.5 s
        // or later, would wait 1 s more, past the horizon.
        let (s, counters, _running) = sender(&url, 1200 * MS);
        let t = Instant::now();
        s.deliver(vec![queued(), queued()]);
        assert!(
            t.elapsed() >= FIRST_BACKOFF,
            "the first wait: {:?}",
            t.elapsed()
        );
        let c = &*counters;
        assert_eq!(
            (
                c.failures.load(Ordering::Relaxed),
                c.dropped.load(Ordering::Relaxed),
                c.delivered.load(Ordering::Relaxed)
            ),
            (2, 2, 0),
            "two attempts, then both events given up"
        );
        // No horizon at all: given up after the first attempt.
        let (s, counters, _running) = sender(&url, Duration::ZERO);
        s.deliver(vec![queued()]);
        assert_eq!(counters.failures.load(Ordering::Relaxed), 1);
        assert_eq!(counters.dropped.load(Ordering::Relaxed), 1);
    }
}
