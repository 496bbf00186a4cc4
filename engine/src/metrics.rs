//! Prometheus metrics: `/metrics` on a listener of its own, off unless `metrics_addr` is set.
//!
//! The exporter is one plain thread with a blocking listener, outside the workers: a scrape
//! never runs on a worker's core between two fan-outs, and a slow scraper holds only this
//! thread. Nothing is counted here. The workers keep their own counters (`crate::stats`) as
//! plain integers on their own threads; a scrape sends each worker one
//! [`MeshMsg::Metrics`](crate::mesh::MeshMsg), waits for the answers (at most
//! [`WORKER_WAIT`]), adds them up and writes the text format ([`text`]). So the fan-out path
//! writes nothing shared for metrics, whether anyone scrapes or not, and a scrape costs each
//! worker one message and one pass over what it holds.
//!
//! Counters are per process and start at zero when it starts, as Prometheus expects (its
//! `rate()` handles the reset of a restart). Per-app series carry the app's id as `app`;
//! queue depths carry the worker as `worker`. Label values are the app ids of the
//! configuration, close codes, and the closed sets of `crate::stats::ops`: nothing a client
//! sends becomes a label. With scaling on, the Redis link's figures (`crate::cluster::health`)
//! are read from the atomics its two threads keep, and with webhooks configured, the senders'
//! counters of each app (`crate::stats::webhook_reports`).
//!
//! The listener serves one connection at a time, each with a 5-second read and write
//! deadline, and closes it after the answer: Prometheus scrapes every few seconds at most,
//! and the address is one the operator chose for it (a loopback or private one).

pub mod cluster;
pub mod render;
pub mod text;
pub mod webhooks;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use futures_channel::oneshot;
use ringcast_protocol::Limits;
use ringcast_protocol::http;

use crate::cluster::Cluster;
use crate::ids::ShardId;
use crate::mesh::{Mesh, MeshMsg};
use crate::stats::scrape::MetricsReport;
use crate::worker::Shared;

/// How long a scrape waits for every worker's answer before it is answered with 503.
pub const WORKER_WAIT: Duration = Duration::from_secs(2);
/// Read and write deadline of a scrape connection.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request head the listener reads.
const MAX_HEAD: usize = 8192;

/// Why metrics cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot listen for metrics on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the metrics thread: {0}")]
    Thread(std::io::Error),
}

/// Why one scrape failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScrapeError {
    #[error("worker {0} did not answer within 2 s")]
    WorkerSilent(u16),
}

/// What the exporter needs to know besides the workers' reports.
#[derive(Clone)]
pub struct Exporter {
    /// The workers.
    pub mesh: Mesh,
    /// The configured bounds of the mesh inboxes and of a connection's out-queue.
    pub limits: Limits,
    /// The I/O driver the workers run (`io_uring` or `epoll`).
    pub driver: &'static str,
    /// Seconds since the Unix epoch when the process started.
    pub started: u64,
    /// The cluster link, when this node is one of several.
    pub cluster: Option<Arc<Cluster>>,
    /// The webhook senders, when an app has webhooks.
    pub webhooks: Option<Arc<crate::webhook::Webhooks>>,
}

impl Exporter {
    /// The exporter of the server whose workers share `shared` and run `driver`.
    pub fn new(shared: &Shared, driver: &'static str) -> Exporter {
        Exporter {
            mesh: shared.mesh.clone(),
            limits: shared.config.limits.clone(),
            driver,
            started: crate::stats::unix_ms() / 1000,
            cluster: shared.cluster.clone(),
            webhooks: shared.webhooks.clone(),
        }
    }
}

/// Binds the metrics listener (at start-up, so that a wrong address stops the start), with
/// `SO_REUSEPORT`, so that a restart's new process binds the same address while this one
/// still serves (`crate::restart`).
pub fn bind(addr: SocketAddr) -> Result<TcpListener, MetricsError> {
    let bind = || -> std::io::Result<TcpListener> {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.bind(&addr.into())?;
        socket.listen(64)?;
        Ok(socket.into())
    };
    bind().map_err(|source| MetricsError::Bind { addr, source })
}

/// The running exporter.
#[derive(Debug)]
pub struct MetricsHandle {
    fd: std::os::fd::RawFd,
    stopped: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl MetricsHandle {
    /// Stops answering scrapes: the listener stops listening (its waiting connections go to a
    /// restart's new process), and returns once the thread has ended and closed it.
    pub fn stop(self) {
        self.stopped.store(true, Ordering::Release);
        crate::sys::shutdown(self.fd, true, false);
        let _ = self.thread.join();
    }
}

/// Serves `/metrics` on `listener` from a thread of its own, until [`MetricsHandle::stop`].
pub fn spawn(listener: TcpListener, exporter: Exporter) -> Result<MetricsHandle, MetricsError> {
    let stopped = Arc::new(AtomicBool::new(false));
    let fd = listener.as_raw_fd();
    let flag = stopped.clone();
    let thread = std::thread::Builder::new()
        .name("ringcast-metrics".into())
        .spawn(move || {
            for stream in listener.incoming() {
                if flag.load(Ordering::Acquire) {
                    return;
                }
                match stream {
                    Ok(s) => serve(s, &exporter),
                    Err(e) => {
                        tracing::warn!(error = %e, "metrics accept failed");
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
        })
        .map_err(MetricsError::Thread)?;
    Ok(MetricsHandle {
        fd,
        stopped,
        thread,
    })
}

impl Exporter {
    /// One scrape: every worker's report, added up, as the text format.
    pub fn scrape(&self) -> Result<String, ScrapeError> {
        let reports = self.gather()?;
        let process = render::Process::read();
        let queued: Vec<u64> = (0..self.mesh.len())
            .map(|i| self.mesh.queued(ShardId(i as u16)) as u64)
            .collect();
        let cluster = self.cluster.as_ref().map(|c| render::ClusterInput {
            node: c.node().to_string(),
            health: c.health(),
            queued_bytes: c.queued_bytes() as u64,
            limit_bytes: c.max_bytes() as u64,
        });
        Ok(render::render(&render::Input {
            reports: &reports,
            mesh_queued: &queued,
            limits: &self.limits,
            driver: self.driver,
            started: self.started,
            process,
            cluster,
            webhooks: self.webhooks.as_deref().map(crate::stats::webhook_reports),
        }))
    }

    fn gather(&self) -> Result<Vec<MetricsReport>, ScrapeError> {
        let receivers: Vec<_> = (0..self.mesh.len())
            .map(|i| {
                let (tx, rx) = oneshot::channel();
                self.mesh.send(ShardId(i as u16), MeshMsg::Metrics(tx));
                rx
            })
            .collect();
        let deadline = Instant::now() + WORKER_WAIT;
        receivers
            .into_iter()
            .enumerate()
            .map(|(i, rx)| match wait(rx, deadline) {
                Some(Ok(report)) => Ok(*report),
                _ => Err(ScrapeError::WorkerSilent(i as u16)),
            })
            .collect()
    }
}

/// Answers one scrape connection.
fn serve(mut stream: TcpStream, exporter: &Exporter) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let limits = Limits {
        max_request_head: MAX_HEAD,
        ..Limits::default()
    };
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let req = loop {
        match http::parse_request(&buf, &limits) {
            Ok(Some(req)) => break req,
            Ok(None) => {}
            Err(e) => {
                let _ = stream.write_all(&e.response());
                return;
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head_only = req.method == "HEAD";
    let response = match (req.method.as_str(), req.path.as_str()) {
        ("GET" | "HEAD", "/metrics") => match exporter.scrape() {
            Ok(body) => http::response(200, text::CONTENT_TYPE, &[], body.as_bytes(), false),
            Err(e) => http::json_error(503, &e.to_string(), false),
        },
        ("GET" | "HEAD", "/") => http::response(
            200,
            "text/plain; charset=utf-8",
            &[],
            b"ringcast metrics: GET /metrics\n",
            false,
        ),
        ("GET" | "HEAD", _) => http::json_error(404, "Not found: metrics are at /metrics", false),
        _ => http::json_error_with_headers(
            405,
            "Method not allowed",
            &[("Allow", "GET, HEAD")],
            false,
        ),
    };
    let response = if head_only {
        let end = response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(response.len(), |i| i + 4);
        response[..end].to_vec()
    } else {
        response
    };
    let _ = stream.write_all(&response);
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

/// Wakes the thread that waits in [`wait`].
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Waits on this thread for `rx` until `deadline`; `None` when it is not ready by then.
fn wait<T>(rx: oneshot::Receiver<T>, deadline: Instant) -> Option<Result<T, oneshot::Canceled>> {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut rx = pin!(rx);
    loop {
        if let Poll::Ready(v) = std::future::Future::poll(rx.as_mut(), &mut cx) {
            return Some(v);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        std::thread::park_timeout(left);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_returns_an_answer_sent_from_another_thread_or_gives_up_at_the_deadline() {
        let (tx, rx) = oneshot::channel();
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            let _ = tx.send(7u32);
        });
        let got = wait(rx, Instant::now() + Duration::from_secs(5));
        assert_eq!(got, Some(Ok(7)));
        sender.join().unwrap();
        let (_tx, rx) = oneshot::channel::<u32>();
        let started = Instant::now();
        assert_eq!(wait(rx, started + Duration::from_millis(50)), None);
        assert!(started.elapsed() >= Duration::from_millis(50));
    }
}
