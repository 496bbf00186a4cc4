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
//! time, so the receiver gets an app's events in the order they were decided, and a receiver
//! that was down gets its backlog, in order, once it answers again.
//!
//! On shutdown ([`super::Webhooks::shutdown`]) the thread keeps sending what is queued, with
//! its waits and timeouts cut to the shutdown deadline, and counts what is left then as dropped.

use std::sync::atomic::Ordering;
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
        }
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
        let left = self.rx.len() as u64;
        if left > 0 {
            self.counters.dropped.fetch_add(left, Ordering::Relaxed);
            tracing::warn!(
                url = %self.url,
                events = left,
                "webhook events not sent before the shutdown deadline"
            );
        }
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
        let first = Instant::now();
        let mut backoff = FIRST_BACKOFF;
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
                    self.counters.delivered.fetch_add(n, Ordering::Relaxed);
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
            let give_up = match self.deadline() {
                Some(d) => Instant::now() + backoff.min(Duration::from_millis(100)) >= d,
                None => first.elapsed() + backoff > RETRY_FOR,
            };
            if give_up {
                self.counters.dropped.fetch_add(n, Ordering::Relaxed);
                tracing::warn!(
                    url = %self.url,
                    %reason,
                    attempts,
                    events = n,
                    "webhook request given up"
                );
                return;
            }
            self.wait(backoff);
            backoff = (backoff * 2).min(MAX_BACKOFF);
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
