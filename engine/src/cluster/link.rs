//! The cluster link: the queue the workers hand their cluster work to, and the command thread
//! that carries it to Redis.
//!
//! Workers never touch Redis. They push [`Command`]s into one crossbeam queue counted in bytes
//! like a mesh inbox (`crate::mesh`), with the same rules at its bound: the HTTP API reserves
//! room for a request's publishes before it accepts it ([`Cluster::reserve`]) and answers 503
//! when there is none after a short wait; everything caused by client frames is queued even
//! past the bound, and while the queue is over it the workers read no more client frames
//! ([`Cluster::congested`]), so a slow Redis slows the clients down instead of growing memory.
//!
//! The command thread owns one Redis connection. It takes whatever is queued (up to
//! [`MAX_BATCH`] commands), turns each into one script call, sends them as one pipeline and
//! reads the replies in order: commands run in the order the workers queued them, and a burst
//! costs one round trip. Every [`HEARTBEAT_EVERY`] it renews the node's lease and refreshes
//! the connection counts. A reply that matters to a worker comes back through the node's
//! inbox stream, never from this thread (see `super::inbox`), except the answers to the
//! API's questions, which are sent straight to the waiting request.
//!
//! Both threads read the app table through one [`AppTable`], which a configuration reload
//! replaces ([`Cluster::set_apps`]) before it hands the new table to the workers: a command
//! about an app the reload added is queued after that, so the command thread, which takes the
//! table anew for every batch, always knows the app it names. Both threads record the state of
//! their connection and the round trips in [`Health`], which `/metrics` shows.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use ringcast_protocol::Limits;

use super::ClusterError;
use super::health::{Connection, Health, HealthReport};
use super::wire::{Command, Encoder, HookStep, Pending, Then, answer};
use crate::app::Apps;
use crate::ids::{AppIdx, ShardId};
use crate::mesh::{Mesh, MeshMsg};
use crate::state::msg::ShardMsg;
use crate::state::owner::COUNT_INTERVAL;
use crate::webhook::{DELAY, Webhooks};

/// Most commands sent in one pipeline.
pub const MAX_BATCH: usize = 512;
/// How often the lease is renewed and the connection counts refreshed.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// How long a node's lease lasts without a heartbeat.
pub const LEASE: Duration = Duration::from_secs(30);
/// How long a connection attempt to Redis may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for one reply from Redis before the connection counts as broken.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a lost Redis is tried again, and at most how often that is logged.
const RETRY_EVERY: Duration = Duration::from_secs(1);
const LOG_EVERY: Duration = Duration::from_secs(5);

/// The app table the cluster threads read; a reload replaces it.
#[derive(Debug)]
pub struct AppTable(RwLock<Arc<Apps>>);

impl AppTable {
    /// A table holding `apps`.
    pub fn new(apps: Arc<Apps>) -> AppTable {
        AppTable(RwLock::new(apps))
    }

    /// The current table.
    pub fn current(&self) -> Arc<Apps> {
        match self.0.read() {
            Ok(a) => a.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the table.
    pub fn set(&self, apps: Arc<Apps>) {
        match self.0.write() {
            Ok(mut a) => *a = apps,
            Err(poisoned) => *poisoned.into_inner() = apps,
        }
    }
}

/// The link's shared half: what workers and the API call.
pub struct Cluster {
    node: String,
    prefix: String,
    redis: String,
    tx: Sender<Command>,
    queued: Arc<AtomicUsize>,
    max_bytes: usize,
    table: Arc<AppTable>,
    health: Arc<Health>,
    thread: Mutex<Option<JoinHandle<()>>>,
    inbox_stop: Arc<AtomicBool>,
    inbox_thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.node)
            .field("prefix", &self.prefix)
            .field("redis", &self.redis)
            .finish()
    }
}

/// Opens a connection with the link's timeouts.
pub fn connect(client: &redis::Client) -> redis::RedisResult<redis::Connection> {
    let con = client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
    con.set_read_timeout(Some(REPLY_TIMEOUT))?;
    con.set_write_timeout(Some(REPLY_TIMEOUT))?;
    Ok(con)
}

impl Cluster {
    /// Joins the cluster of `scaling`: connects, loads the scripts, takes the lease, and
    /// starts the command and inbox threads, which deliver to the workers of `mesh`.
    pub fn start(
        scaling: &crate::config::Scaling,
        apps: Arc<Apps>,
        mesh: Mesh,
        limits: &Limits,
        webhooks: Option<Arc<Webhooks>>,
    ) -> Result<Arc<Cluster>, ClusterError> {
        // Several providers may be compiled in; the first one installed is used. A second
        // call finds it installed, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let node = format!("{:016x}", rand::random::<u64>());
        let target = scaling.redis.display();
        let unreachable = |e: redis::RedisError| ClusterError::Unreachable {
            redis: target.clone(),
            reason: e.to_string(),
        };
        let client = redis::Client::open(scaling.redis.connection_info()).map_err(unreachable)?;
        let mut con = connect(&client).map_err(unreachable)?;
        let enc = Encoder {
            apps: apps.clone(),
            prefix: scaling.prefix.clone(),
            node: node.clone(),
            scripts: Default::default(),
            max_members: limits.max_presence_members,
        };
        enc.scripts.load(&mut con).map_err(unreachable)?;
        let table = Arc::new(AppTable::new(apps));
        let health = Arc::new(Health::default());
        let mut cmd_loop = CommandLoop {
            client: client.clone(),
            con: Some(con),
            enc,
            table: table.clone(),
            health: health.clone(),
            mesh: mesh.clone(),
            limits: limits.clone(),
            lost_since: None,
            tried_at: None,
            logged_at: None,
            webhooks,
            pending: Vec::new(),
        };
        // The first heartbeat registers the node before it serves anyone.
        cmd_loop.heartbeat().map_err(unreachable)?;
        health.up(Connection::Commands);
        let inbox_con = super::inbox::connect(&client).map_err(unreachable)?;
        health.up(Connection::Inbox);
        let inbox_stop = Arc::new(AtomicBool::new(false));
        let inbox = super::inbox::InboxLoop::new(
            client,
            inbox_con,
            format!("{}:inbox:{node}", scaling.prefix),
            super::inbox::Shared {
                table: table.clone(),
                health: health.clone(),
                stop: inbox_stop.clone(),
            },
            mesh,
            limits,
        );
        let inbox_thread = std::thread::Builder::new()
            .name("ringcast-inbox".into())
            .spawn(move || inbox.run())
            .map_err(|e| ClusterError::Thread(e.to_string()))?;
        let (tx, rx) = crossbeam_channel::unbounded();
        let queued = Arc::new(AtomicUsize::new(0));
        let q = queued.clone();
        let thread = std::thread::Builder::new()
            .name("ringcast-link".into())
            .spawn(move || cmd_loop.run(rx, q))
            .map_err(|e| ClusterError::Thread(e.to_string()))?;
        Ok(Arc::new(Cluster {
            node,
            prefix: scaling.prefix.clone(),
            redis: target,
            tx,
            queued,
            max_bytes: limits.max_mesh_bytes,
            table,
            health,
            thread: Mutex::new(Some(thread)),
            inbox_stop,
            inbox_thread: Mutex::new(Some(inbox_thread)),
        }))
    }

    /// Gives both cluster threads a reloaded app table. Call it before the workers get the
    /// table, so that no command names an app the command thread does not know.
    pub fn set_apps(&self, apps: Arc<Apps>) {
        self.table.set(apps);
    }

    /// The state of the Redis connections and the round trips so far.
    pub fn health(&self) -> HealthReport {
        self.health.report()
    }

    /// Bytes waiting in the queue to the command thread.
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// The queue's bound (`max_mesh_bytes`).
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// This node's id in the cluster.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The Redis joined, without its password.
    pub fn redis(&self) -> &str {
        &self.redis
    }

    /// The prefix of the cluster's keys.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Queues a command. Never refused: the senders of commands that must arrive slow their
    /// clients down instead (see [`Cluster::congested`]).
    pub fn send(&self, cmd: Command) {
        self.queued.fetch_add(cmd.cost(), Ordering::AcqRel);
        self.push(cmd);
    }

    /// Queues a command in room reserved before with [`Cluster::reserve`].
    pub fn send_reserved(&self, cmd: Command) {
        self.push(cmd);
    }

    fn push(&self, cmd: Command) {
        // The command thread lives until `stop`; after that nothing waits for the command.
        let _ = self.tx.send(cmd);
    }

    /// Reserves `bytes` in the queue unless that would pass the bound.
    pub fn reserve(&self, bytes: usize) -> bool {
        let before = self.queued.fetch_add(bytes, Ordering::AcqRel);
        if before + bytes > self.max_bytes && before > 0 {
            self.queued.fetch_sub(bytes, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Gives back a reservation that will not be used.
    pub fn unreserve(&self, bytes: usize) {
        self.queued.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// Whether the queue is over its bound.
    pub fn congested(&self) -> bool {
        self.queued.load(Ordering::Relaxed) > self.max_bytes
    }

    /// Runs what is queued, leaves the cluster (lease, counts and inbox removed) and stops the
    /// command and inbox threads, waiting at most `wait` (plus the inbox thread's one blocking
    /// read). Says whether both threads have ended: their Redis connections are then closed.
    pub fn stop(&self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        let (ack_tx, ack_rx) = std::sync::mpsc::channel();
        self.push(Command::Stop(ack_tx));
        self.inbox_stop.store(true, Ordering::Release);
        let commands = ack_rx.recv_timeout(wait).is_ok()
            && self
                .thread
                .lock()
                .ok()
                .and_then(|mut t| t.take())
                .is_some_and(|t| t.join().is_ok());
        let inbox_deadline = deadline.max(Instant::now()) + super::inbox::BLOCK;
        let inbox = self
            .inbox_thread
            .lock()
            .ok()
            .and_then(|mut t| t.take())
            .is_some_and(|t| {
                while !t.is_finished() {
                    if Instant::now() > inbox_deadline {
                        return false;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                t.join().is_ok()
            });
        commands && inbox
    }
}

/// The command thread's state.
struct CommandLoop {
    client: redis::Client,
    con: Option<redis::Connection>,
    enc: Encoder,
    table: Arc<AppTable>,
    health: Arc<Health>,
    mesh: Mesh,
    limits: Limits,
    lost_since: Option<Instant>,
    tried_at: Option<Instant>,
    logged_at: Option<Instant>,
    /// The webhook senders, for the webhooks the scripts decided on this node's calls.
    webhooks: Option<Arc<Webhooks>>,
    /// Departures this node's scripts decided, waiting for their delay (`crate::webhook`).
    pending: Vec<Pending>,
}

impl CommandLoop {
    fn run(mut self, rx: Receiver<Command>, queued: Arc<AtomicUsize>) {
        let mut next_beat = Instant::now() + HEARTBEAT_EVERY;
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            let wake = self
                .pending
                .iter()
                .map(|p| p.due)
                .min()
                .map_or(next_beat, |d| d.min(next_beat));
            match rx.recv_timeout(wake.saturating_duration_since(Instant::now())) {
                Ok(cmd) => {
                    batch.push(cmd);
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(cmd) => batch.push(cmd),
                            Err(_) => break,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            // After the receive: a command about an app that a reload added was queued after
            // the reload set the table.
            self.enc.apps = self.table.current();
            let mut cost = 0;
            let mut stop = None;
            let mut calls = Vec::with_capacity(batch.len());
            for cmd in batch.drain(..) {
                cost += cmd.cost();
                match cmd {
                    Command::Stop(ack) => stop = Some(ack),
                    other => calls.extend(self.enc.encode(other)),
                }
            }
            if !calls.is_empty() {
                self.execute(calls);
            }
            queued.fetch_sub(cost, Ordering::AcqRel);
            if Instant::now() >= next_beat {
                next_beat = Instant::now() + HEARTBEAT_EVERY;
                if let Err(e) = self.heartbeat() {
                    self.lost(&e);
                }
            }
            self.fire_due(stop.is_some());
            if let Some(ack) = stop {
                if let Some(con) = self.con.as_mut()
                    && let Err(e) = self.enc.goodbye().exec(con)
                {
                    tracing::warn!(error = %e, "could not leave the cluster cleanly");
                }
                let _ = ack.send(());
                return;
            }
        }
    }

    /// The connection, reconnecting (at most every [`RETRY_EVERY`]) when it was lost.
    fn connection(&mut self) -> Option<&mut redis::Connection> {
        if self.con.is_none() {
            let since = *self.lost_since.get_or_insert_with(Instant::now);
            if self.tried_at.is_none_or(|t| t.elapsed() >= RETRY_EVERY) {
                self.tried_at = Some(Instant::now());
                match connect(&self.client).and_then(|mut c| {
                    self.enc.scripts.load(&mut c)?;
                    Ok(c)
                }) {
                    Ok(c) => {
                        tracing::info!(
                            down_for_secs = since.elapsed().as_secs(),
                            "reconnected to Redis"
                        );
                        self.health.up(Connection::Commands);
                        self.con = Some(c);
                        self.lost_since = None;
                        self.tried_at = None;
                        self.logged_at = None;
                    }
                    Err(e) => {
                        if self.logged_at.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
                            self.logged_at = Some(Instant::now());
                            tracing::warn!(
                                error = %e,
                                down_for_secs = since.elapsed().as_secs(),
                                "Redis unreachable; cluster commands are dropped until it is back"
                            );
                        }
                    }
                }
            }
        }
        self.con.as_mut()
    }

    fn lost(&mut self, e: &redis::RedisError) {
        if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
            self.health.lost(Connection::Commands);
            if self.con.take().is_some() {
                tracing::warn!(error = %e, "lost the connection to Redis");
            }
        } else {
            tracing::warn!(error = %e, "a cluster script failed");
        }
    }

    /// Sends the calls as one pipeline and acts on the replies in order.
    fn execute(&mut self, calls: Vec<(redis::Cmd, Then)>) {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        let mut thens = Vec::with_capacity(calls.len());
        for (cmd, then) in calls {
            pipe.add_command(cmd);
            thens.push(then);
        }
        let Some(con) = self.connection() else {
            return self.fail(thens);
        };
        let sent = Instant::now();
        let replies: Vec<redis::RedisResult<redis::Value>> = match pipe.query(con) {
            Ok(r) => {
                self.health.round_trip(sent.elapsed());
                r
            }
            Err(e) => {
                self.lost(&e);
                return self.fail(thens);
            }
        };
        let mut retry = Vec::new();
        for ((reply, then), cmd) in replies.into_iter().zip(thens).zip(pipe.cmd_iter()) {
            match reply {
                Ok(v) => self.done(then, &v),
                Err(e)
                    if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                {
                    // Redis lost its script cache (a restart, SCRIPT FLUSH): the script did not
                    // run, so it runs again once loaded.
                    retry.push((cmd.clone(), then));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "a cluster script failed");
                    self.fail(vec![then]);
                }
            }
        }
        if !retry.is_empty() {
            let loaded = self
                .con
                .as_mut()
                .map(|c| self.enc.scripts.load(c))
                .transpose();
            match loaded {
                Ok(Some(())) => self.execute(retry),
                Ok(None) => self.fail(retry.into_iter().map(|(_, t)| t).collect()),
                Err(e) => {
                    self.lost(&e);
                    self.fail(retry.into_iter().map(|(_, t)| t).collect());
                }
            }
        }
    }

    fn done(&mut self, then: Then, reply: &redis::Value) {
        match then {
            Then::Answer(kind, tx) => {
                let _ = tx.send(answer(kind, reply, &self.limits));
            }
            Then::Join(_, _, ctx) | Then::Leave(ctx) => {
                for step in super::wire::hook_steps(&ctx, reply) {
                    match step {
                        HookStep::Send(hook) => self.emit(ctx.app, hook),
                        HookStep::Later(kind, token) => self.pending.push(Pending {
                            due: Instant::now() + if kind == b'd' { COUNT_INTERVAL } else { DELAY },
                            kind,
                            ctx: ctx.clone(),
                            token,
                        }),
                    }
                }
            }
            Then::Fired(due) => {
                for (app, hook) in super::wire::fired(due, reply) {
                    self.emit(app, hook);
                }
            }
            Then::Nothing => {}
        }
    }

    fn emit(&self, app: crate::ids::AppIdx, hook: crate::webhook::Hook) {
        if let Some(w) = &self.webhooks {
            w.emit(app, hook);
        }
    }

    /// Fires the departures whose delay has passed (every one when the node stops: nobody can
    /// come back to it) with one HOOKFIRE.
    fn fire_due(&mut self, all: bool) {
        let now = Instant::now();
        let (due, rest): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| all || p.due <= now);
        self.pending = rest;
        if due.is_empty() {
            return;
        }
        let cmd = self.enc.fire(&due);
        self.execute(vec![(cmd, Then::Fired(due))]);
    }

    /// Calls that did not run: a join is refused on its worker (its subscriber may try again),
    /// a question is dropped (the API answers 503), the rest is lost.
    fn fail(&mut self, thens: Vec<Then>) {
        self.health.failed(thens.len());
        for then in thens {
            if let Then::Join(worker, refusal, _) = then {
                self.mesh
                    .send(worker, MeshMsg::Shard(ShardMsg::JoinAnswer(refusal)));
            }
        }
    }

    /// Renews the lease and refreshes every app's count of the other nodes' connections.
    fn heartbeat(&mut self) -> redis::RedisResult<()> {
        let cmd = self.enc.heartbeat(LEASE.as_millis() as u64);
        let Some(con) = self.connection() else {
            return Ok(());
        };
        let sent = Instant::now();
        let others: Vec<u64> = cmd.query(con)?;
        self.health.heartbeat(sent.elapsed());
        let apps = &self.enc.apps;
        for (i, n) in others.into_iter().enumerate() {
            if i < apps.len() {
                apps.get(AppIdx(i as u32)).set_others(n);
            }
        }
        Ok(())
    }
}

/// Sends `msg` to every worker of `mesh`.
pub fn to_all(mesh: &Mesh, msg: ShardMsg) {
    let n = mesh.len();
    for i in 0..n {
        let m = if i + 1 == n {
            // The last worker takes the message itself: one clone fewer.
            return mesh.send(ShardId(i as u16), MeshMsg::Shard(msg));
        } else {
            msg.clone()
        };
        mesh.send(ShardId(i as u16), MeshMsg::Shard(m));
    }
}
