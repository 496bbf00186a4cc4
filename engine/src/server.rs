//! Start-up and shutdown: one pinned thread per worker, each with its own runtime.
//!
//! Worker 0 binds first so that a port of 0 ("any free port") resolves to one port that every
//! other worker then binds too, with `SO_REUSEPORT` so the kernel spreads new connections over
//! the workers' listeners. The main thread then only waits for signals (`crate::restart`):
//! SIGTERM or SIGINT is relayed to every worker through the mesh as a drain; SIGUSR2 starts
//! a new process and drains this one once the new one serves.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use monoio::net::{ListenerOpts, TcpListener};
use monoio::{FusionDriver, FusionRuntime, RuntimeBuilder};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR2};
use signal_hook::iterator::Signals;

use crate::app::Apps;
use crate::config::Config;
use crate::ids::ShardId;
use crate::mesh::{Inbox, Mesh, MeshMsg};
use crate::session::accept_loop;
use crate::worker::{Shared, Worker};

/// What a worker reports once its listener is bound.
type Ready = Result<(SocketAddr, &'static str), String>;

/// Runs the server until a signal stops it.
pub fn run(config: Config) -> anyhow::Result<()> {
    install_panic_abort();
    let workers = config.workers;
    let (mesh, inboxes) = Mesh::new(workers, config.limits.max_mesh_bytes);
    let apps = Arc::new(Apps::new(&config.apps));
    let webhooks =
        crate::webhook::Webhooks::start(&apps).context("starting the webhook senders")?;
    let host = config.host.clone();
    let mut port = config.port;
    // A certificate that does not load stops the start, before any listener or Redis.
    let tls = match config.operations.tls() {
        Some(files) => Some(Arc::new(crate::tls::Tls::new(&files)?)),
        None => None,
    };
    let scheme = if tls.is_some() { "TLS, " } else { "" };
    // A node joins its cluster before it serves anyone; an unreachable Redis stops start-up.
    let cluster = match &config.scaling {
        Some(s) => Some(crate::cluster::Cluster::start(
            s,
            apps.clone(),
            mesh.clone(),
            &config.limits,
            webhooks.clone(),
        )?),
        None => None,
    };
    let shared = Arc::new(Shared {
        config,
        apps,
        mesh: mesh.clone(),
        cluster: cluster.clone(),
        webhooks: webhooks.clone(),
        draining: Arc::new(std::sync::atomic::AtomicUsize::new(workers)),
        tls,
    });
    let metrics = match shared.config.operations.metrics_addr {
        Some(addr) => Some(crate::metrics::bind(addr)?),
        None => None,
    };
    let signals =
        Signals::new([SIGTERM, SIGINT, SIGUSR2, SIGHUP]).context("installing signal handlers")?;
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let mut handles = Vec::with_capacity(workers);
    let mut driver = "";
    for (i, inbox) in inboxes.into_iter().enumerate() {
        let (tx, rx) = mpsc::channel::<Ready>();
        let shared = shared.clone();
        let core = (!cores.is_empty()).then(|| cores[i % cores.len()]);
        let addr = format!("{host}:{port}");
        let handle = std::thread::Builder::new()
            .name(format!("ringcast-w{i}"))
            .spawn(move || worker_main(shared, inbox, core, addr, tx))
            .context("spawning a worker thread")?;
        handles.push(handle);
        let (bound, drv) = rx
            .recv()
            .map_err(|_| anyhow!("worker {i} stopped while starting"))?
            .map_err(|e| anyhow!(e))?;
        port = bound.port();
        driver = drv;
    }
    tracing::info!(workers, driver, "ringcast started");
    if let Some(c) = &cluster {
        println!(
            "ringcast node {} joined the cluster on {} (key prefix {:?})",
            c.node(),
            c.redis(),
            c.prefix()
        );
    }
    let metrics = match metrics {
        Some(listener) => {
            let addr = listener
                .local_addr()
                .context("reading the metrics address")?;
            let exporter = crate::metrics::Exporter::new(&shared, driver);
            let handle = crate::metrics::spawn(listener, exporter)?;
            println!("metrics at http://{addr}/metrics");
            Some(handle)
        }
        None => None,
    };
    println!("ringcast listening on {host}:{port} ({scheme}{workers} workers, {driver})");
    let shared_cfg = &shared.config;
    if shared_cfg.dashboard {
        let shown = if host == "0.0.0.0" || host == "::" {
            "localhost"
        } else {
            &host
        };
        let prefix = &shared_cfg.path_prefix;
        let web = if shared.tls.is_some() {
            "https"
        } else {
            "http"
        };
        println!("dashboard at {web}://{shown}:{port}{prefix}/dashboard/");
    }
    if shared_cfg.generated {
        println!(
            "No app configured; generated one for this run. Put these lines in your Laravel .env:\n\n{}",
            shared_cfg.laravel_env_block()
        );
    }
    crate::restart::announce_ready();
    let mut signals = signals;
    let mut current = shared.clone();
    let step = crate::restart::wait(&mut current, &mut signals);
    let stopping_since = Instant::now();
    if let Some(m) = metrics {
        m.stop();
    }
    {
        let (ack_tx, ack_rx) = mpsc::channel();
        for i in 0..mesh.len() {
            mesh.send(ShardId(i as u16), MeshMsg::Quiesce(ack_tx.clone()));
        }
        for _ in 0..mesh.len() {
            if ack_rx.recv_timeout(Duration::from_secs(2)).is_err() {
                break;
            }
        }
        for i in 0..mesh.len() {
            mesh.send(ShardId(i as u16), MeshMsg::Drain);
        }
    }
    let deadline = Instant::now() + shared.config.shutdown_timeout + Duration::from_secs(2);
    let mut all_done = join_workers(handles, deadline);
    // What the drained connections left (their leaves) reaches Redis before the node leaves.
    if let Some(c) = &cluster {
        all_done &= c.stop(Duration::from_secs(2));
    }
    // The webhooks of the drain (its leaves, and the delayed ones the owners flushed) are sent
    // until the shutdown timeout, counted from the signal; a second at least.
    if let Some(w) = &webhooks {
        let deadline = (stopping_since + shared.config.shutdown_timeout)
            .max(Instant::now() + Duration::from_secs(1));
        w.shutdown(deadline);
    }
    if let crate::restart::Step::HandOver(next) = step {
        crate::restart::supervise(&current, next, &mut signals, all_done);
    }
    Ok(())
}

/// Joins the worker threads until `deadline`; says whether every one of them ended.
fn join_workers(handles: Vec<std::thread::JoinHandle<()>>, deadline: Instant) -> bool {
    for h in handles {
        while !h.is_finished() {
            if Instant::now() > deadline {
                tracing::warn!("workers did not finish before the shutdown deadline");
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = h.join();
    }
    true
}

/// A panicking worker must take the whole process down, loudly, so that systemd or supervisor
/// restarts it: a server with one dead worker would keep accepting connections on that
/// worker's listener and never serve them.
fn install_panic_abort() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        eprintln!("ringcast: a worker panicked; aborting so the supervisor restarts the server");
        std::process::abort();
    }));
}

fn worker_main(
    shared: Arc<Shared>,
    inbox: Inbox,
    core: Option<core_affinity::CoreId>,
    addr: String,
    ready: mpsc::Sender<Ready>,
) {
    if let Some(core) = core {
        core_affinity::set_for_current(core);
    }
    let rt = RuntimeBuilder::<FusionDriver>::new()
        .enable_timer()
        .with_entries(4096)
        .build();
    let mut rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(format!("cannot start the I/O runtime: {e}")));
            return;
        }
    };
    let driver = match &rt {
        FusionRuntime::Uring(_) => "io_uring",
        FusionRuntime::Legacy(_) => "epoll",
    };
    rt.block_on(async move {
        let opts = ListenerOpts::new()
            .reuse_port(true)
            .reuse_addr(true)
            .backlog(4096);
        let listener = match TcpListener::bind_with_config(&addr, &opts) {
            Ok(l) => l,
            Err(e) => {
                let _ = ready.send(Err(format!("cannot listen on {addr}: {e}")));
                return;
            }
        };
        let local = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => {
                let _ = ready.send(Err(format!("cannot listen on {addr}: {e}")));
                return;
            }
        };
        let id = inbox.id();
        let worker = Worker::new(id, shared.clone());
        worker.borrow_mut().listener_fd = Some(listener.as_raw_fd());
        tracing::debug!(worker = id.0, driver, "worker ready");
        let _ = ready.send(Ok((local, driver)));
        monoio::spawn(accept_loop(worker.clone(), listener));
        monoio::spawn(sweep_loop(worker.clone()));
        if shared.config.dashboard {
            monoio::spawn(crate::dashboard::publisher::run(worker.clone()));
        }
        #[cfg(feature = "fault-injection")]
        if id.0 as usize + 1 == shared.mesh.len()
            && let Some(ms) = std::env::var("RINGCAST_FAULT_PANIC_AFTER_MS")
                .ok()
                .and_then(|v| v.parse().ok())
        {
            monoio::spawn(async move {
                monoio::time::sleep(Duration::from_millis(ms)).await;
                panic!("fault injection: worker {} panics", id.0);
            });
        }
        // Test-only: the last worker stops serving for a while (its thread blocks), as a
        // worker that cannot keep up with its inbox would.
        #[cfg(feature = "fault-injection")]
        if id.0 as usize + 1 == shared.mesh.len()
            && let Some((at, ms)) = std::env::var("RINGCAST_FAULT_STALL_AT_MS")
                .ok()
                .and_then(|v| v.parse().ok())
                .zip(
                    std::env::var("RINGCAST_FAULT_STALL_MS")
                        .ok()
                        .and_then(|v| v.parse().ok()),
                )
        {
            monoio::spawn(async move {
                monoio::time::sleep(Duration::from_millis(at)).await;
                std::thread::sleep(Duration::from_millis(ms));
            });
        }
        inbox_loop(worker, inbox, shared.config.shutdown_timeout).await;
    });
}

/// Runs the liveness sweep once a second.
async fn sweep_loop(worker: std::rc::Rc<std::cell::RefCell<Worker>>) {
    loop {
        monoio::time::sleep(Duration::from_secs(1)).await;
        worker.borrow_mut().sweep();
    }
}

/// Handles mesh messages; on shutdown, waits for the connections to drain (or the deadline).
async fn inbox_loop(
    worker: std::rc::Rc<std::cell::RefCell<Worker>>,
    inbox: Inbox,
    drain: Duration,
) {
    let mut batch = Vec::new();
    loop {
        inbox.recv_batch(&mut batch).await;
        // Test-only: this worker's own publishes wait this long before their fan-out starts,
        // while its tasks keep running, as behind a long fan-out.
        #[cfg(feature = "fault-injection")]
        if batch.iter().any(|m| matches!(m, MeshMsg::Local { .. }))
            && let Some(ms) = std::env::var("RINGCAST_FAULT_SLOW_FANOUT_MS")
                .ok()
                .and_then(|v| v.parse().ok())
        {
            monoio::time::sleep(Duration::from_millis(ms)).await;
        }
        let mut w = worker.borrow_mut();
        w.on_batch(&mut batch);
        if w.draining {
            break;
        }
    }
    let deadline = Instant::now() + drain;
    while !worker.borrow().is_empty() && Instant::now() < deadline {
        // Publishes accepted before the shutdown keep arriving while connections drain.
        let _ =
            monoio::time::timeout(Duration::from_millis(20), inbox.recv_batch(&mut batch)).await;
        worker.borrow_mut().on_batch(&mut batch);
    }
    // The leaves of the other workers' last connections reach this worker's owner too: it
    // keeps taking them until every worker has drained, and a moment for the last in flight.
    let shared = worker.borrow().shared.clone();
    shared.draining.fetch_sub(1, Ordering::AcqRel);
    while shared.draining.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
        let _ =
            monoio::time::timeout(Duration::from_millis(20), inbox.recv_batch(&mut batch)).await;
        let mut w = worker.borrow_mut();
        for msg in batch.drain(..) {
            w.on_mesh(msg);
        }
    }
    let settle = Instant::now() + Duration::from_millis(50);
    while Instant::now() < settle {
        let _ =
            monoio::time::timeout(Duration::from_millis(20), inbox.recv_batch(&mut batch)).await;
        let mut w = worker.borrow_mut();
        for msg in batch.drain(..) {
            w.on_mesh(msg);
        }
    }
    worker.borrow_mut().finish();
}
