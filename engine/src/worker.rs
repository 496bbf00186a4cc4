//! A worker: one pinned thread's sockets, timers and queues around its state core.
//!
//! A worker is the I/O shell of two state machines (`crate::state`): its [`Shard`], the rules
//! state of its connections, and its [`Owner`], the cluster-wide facts it owns. It feeds them
//! inputs (a client message, a mesh message, a connection that closes, the clock) and carries
//! out the effects they return: it writes frames, closes sockets, and moves messages to other
//! workers over the mesh. A message to this worker's own owner or shard goes through its
//! loopback queue and is handled after the effects of the current input, exactly as a message
//! from another worker would be: no input is ever handled in the middle of another.
//!
//! All of a worker's state lives in one [`Worker`] behind an `Rc<RefCell<_>>` on its own
//! thread; its tasks (the acceptor, one reader per connection, writers while a socket is full,
//! the sweeper and the mesh inbox) borrow it only between awaits, so a borrow never spans a
//! suspension point and never conflicts.
//!
//! Outbound bytes follow one rule: a frame is offered to the socket directly, and only what the
//! socket does not take right away is queued (bounded by `max_outbound_bytes`) for a writer task
//! that waits for writability. A broadcast to ten thousand idle-but-healthy subscribers is thus
//! ten thousand `sendmsg` calls on one shared buffer and no allocation per recipient.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use monoio::net::TcpStream;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use ringcast_protocol::pusher::error::PusherCode;
use ringcast_protocol::pusher::event::ServerEvent;
use ringcast_protocol::pusher::socket_id::SocketId;

use crate::app::Apps;
use crate::cluster::{Cluster, Command};
use crate::config::Config;
use crate::conn::{CloseClock, Conn, Offer, OutQueue};
use crate::ids::{AppIdx, ConnKey, ShardId};
use crate::mesh::{self, Mesh, MeshMsg};
use crate::owner::{OwnerRoute, route};
use crate::state::msg::{Answer, NodeInfo, OwnerMsg, Question, ShardMsg};
use crate::state::{Closing, Effect, Owner, Shard};
use crate::stats::Stats;
use crate::sys;
use crate::transport::Transport;
use crate::webhook::Webhooks;

/// Seconds a closing connection gets to take what it still has to take, close frame included;
/// another period follows while it keeps reading.
pub const CLOSE_GRACE_SECS: u32 = 5;

/// What every worker shares, read-only.
pub struct Shared {
    pub config: Config,
    pub apps: Arc<Apps>,
    pub mesh: Mesh,
    /// The cluster link, when this node is one of several (`crate::cluster`).
    pub cluster: Option<Arc<Cluster>>,
    /// The webhook senders, when an app has webhooks (`crate::webhook`).
    pub webhooks: Option<Arc<Webhooks>>,
    /// Workers whose connections have not all drained yet, on shutdown: a worker's owner
    /// takes the leaves of every worker's connections until this is 0.
    pub draining: Arc<std::sync::atomic::AtomicUsize>,
    /// TLS on the server's port, when a certificate is configured (`crate::tls`).
    pub tls: Option<Arc<crate::tls::Tls>>,
}

/// One worker's state.
pub struct Worker {
    /// This worker's index.
    pub id: ShardId,
    /// Configuration, apps and the mesh.
    pub shared: Arc<Shared>,
    /// The rules state of this worker's connections, with each connection's socket side.
    pub shard: Shard<Conn>,
    /// The cluster-wide facts this worker owns.
    pub owner: Owner,
    /// A read buffer shared by every connection of the worker.
    pub scratch: Vec<u8>,
    /// Whether the worker is shutting down: it accepts no connections and no publishes.
    pub shutting_down: bool,
    /// Whether it is closing its connections for shutdown.
    pub draining: bool,
    /// The listening socket, to stop accepting on shutdown.
    pub listener_fd: Option<RawFd>,
    /// This worker's counters (`crate::stats`), read only when someone asks.
    pub stats: Stats,
    epoch: Instant,
    rng: SmallRng,
    me: Weak<RefCell<Worker>>,
    ping_frame: Bytes,
    doomed: Vec<(ConnKey, Closing)>,
    /// Messages for this worker's own shard and owner, handled after the current input.
    loopback: VecDeque<MeshMsg>,
    /// Handshakes and abandoned queues since the sweep last handed freed memory back.
    churn_since_trim: u32,
    /// Bytes this worker still has to write for the publishes its HTTP API accepted and queued
    /// in its own inbox: each counts its frame once per local recipient. The API waits while it
    /// is over [`FANOUT_BACKLOG`].
    pub backlog: usize,
}

/// The fan-out backlog (bytes still to write) past which a worker's HTTP API waits before
/// accepting a publish, and answers 503 after `crate::api::MESH_WAIT`: about a tenth of a
/// second of writing on one core, so a publisher faster than its subscribers is held to their
/// pace instead of queueing seconds of deliveries ahead of them.
pub const FANOUT_BACKLOG: usize = 1 << 20;

/// Churn after which the sweep hands freed memory back to the kernel: a thousand handshakes,
/// or one abandoned outbound queue (a slow consumer's can hold thousands of entries).
const TRIM_AFTER_CHURN: u32 = 1000;

/// Size of the per-worker read buffer.
const SCRATCH: usize = 64 * 1024;

impl Worker {
    /// A new worker with no connections, behind the `Rc<RefCell<_>>` its tasks share.
    pub fn new(id: ShardId, shared: Arc<Shared>) -> Rc<RefCell<Worker>> {
        let epoch = Instant::now();
        let limits = shared.config.limits.clone();
        let max_members = limits.max_presence_members;
        let mut shard = Shard::new(id, shared.apps.clone(), limits, epoch);
        if shared.cluster.is_some() {
            shard.confirm_through_owner();
        }
        let stats = Stats::new(shared.apps.len());
        Rc::new_cyclic(|me| {
            RefCell::new(Worker {
                id,
                shard,
                owner: Owner::new(shared.apps.clone(), max_members),
                shared,
                scratch: vec![0; SCRATCH],
                shutting_down: false,
                draining: false,
                listener_fd: None,
                stats,
                epoch,
                rng: SmallRng::from_entropy(),
                me: me.clone(),
                ping_frame: ServerEvent::Ping.to_frame(),
                doomed: Vec::new(),
                loopback: VecDeque::new(),
                churn_since_trim: 0,
                backlog: 0,
            })
        })
    }

    /// Seconds since the worker started: the clock of liveness checks.
    pub fn now(&self) -> u32 {
        self.epoch.elapsed().as_secs() as u32
    }

    /// A fresh socket id.
    pub fn new_socket_id(&mut self) -> SocketId {
        let rng = &mut self.rng;
        SocketId::generate(&mut || rng.r#gen::<u64>())
    }

    /// Adds an upgraded connection (of `app`, or of the echo endpoint) and returns its key.
    pub fn insert(
        &mut self,
        stream: Rc<TcpStream>,
        io: Transport,
        app: Option<AppIdx>,
        socket_id: SocketId,
    ) -> ConnKey {
        self.churn_since_trim = self.churn_since_trim.saturating_add(1);
        let now = self.now();
        if let Some(app) = app {
            self.stats.opened(app);
        }
        let conn = Conn {
            stream,
            io,
            out: OutQueue::default(),
            last_seen: now,
            pinged_at: None,
            closing: None,
            writer_active: false,
        };
        self.shard.connect(app, socket_id, conn)
    }

    /// The connection behind `key`, unless it has left.
    pub fn get(&self, key: ConnKey) -> Option<&Conn> {
        self.shard.io(key)
    }

    /// Whether a peer worker's inbox is over its bound: readers then wait before they take
    /// more client frames (see `crate::mesh`).
    pub fn congested(&self) -> bool {
        (self.shared.mesh.len() > 1 && self.shared.mesh.congested(self.id))
            || self.shared.cluster.as_ref().is_some_and(|c| c.congested())
    }

    /// Records that a frame arrived from `key` (any frame counts as activity).
    pub fn touch(&mut self, key: ConnKey) {
        let now = self.now();
        if let Some(c) = self.shard.io_mut(key) {
            c.last_seen = now;
            c.pinged_at = None;
        }
    }

    /// Starts a writer for `key` when TLS records wait for room in its socket (an answer
    /// rustls queued while reading, such as an alert or a key update).
    pub fn flush_tls(&mut self, key: ConnKey) {
        let me = self.me.clone();
        if let Some(c) = self.shard.io_mut(key)
            && c.io.wants_write()
        {
            ensure_writer(&me, key, c);
        }
    }

    // ---- inputs ---------------------------------------------------------------------------

    /// Sends `frame` to one connection.
    pub fn send(&mut self, key: ConnKey, frame: Bytes) {
        self.offer_to(key, &frame);
        self.run();
    }

    /// Acts on one text message of a Pusher connection.
    pub fn on_text(&mut self, key: ConnKey, text: Vec<u8>) {
        if let Some((Some(app), _)) = self.shard.identity(key) {
            self.stats.received(app);
        }
        if self.debug_messages() {
            self.log_received(key, &text);
        }
        self.shard.handle_text(key, text, Instant::now());
        self.run();
    }

    /// Acts on a message from another worker.
    pub fn on_mesh(&mut self, msg: MeshMsg) {
        self.handle_mesh(msg);
        self.run();
    }

    /// Acts on a batch taken from the inbox, in order, keeping the mesh told how many bytes
    /// of fan-out the other workers' publishes in it still need ([`Mesh::set_work`]), so that
    /// an API on another worker holds back while this one is behind.
    pub fn on_batch(&mut self, batch: &mut Vec<MeshMsg>) {
        let mut left: usize = batch.iter().map(|m| self.fanout_weight(m)).sum();
        self.shared.mesh.set_work(self.id, left);
        for msg in batch.drain(..) {
            let weight = self.fanout_weight(&msg);
            self.on_mesh(msg);
            if weight > 0 {
                left = left.saturating_sub(weight);
                self.shared.mesh.set_work(self.id, left);
            }
        }
        self.shared.mesh.set_work(self.id, 0);
    }

    /// The bytes a message from another worker makes this one write: a publish's frame once
    /// per local subscriber.
    fn fanout_weight(&self, msg: &MeshMsg) -> usize {
        match msg {
            MeshMsg::Shard(m) => self.publish_weight(m),
            _ => 0,
        }
    }

    fn publish_weight(&self, msg: &ShardMsg) -> usize {
        match msg {
            ShardMsg::Publish {
                app,
                channel,
                frame,
                ..
            } => {
                let recipients = self.shard.local_subscribers(*app, channel.as_str()).max(1);
                mesh::MESSAGE_COST + frame.len() * recipients
            }
            ShardMsg::ToUser { frame, .. } => mesh::MESSAGE_COST + frame.len(),
            _ => 0,
        }
    }

    /// Whether a worker is too far behind on its fan-outs for the API to accept another
    /// publish: this one, with its own accepted publishes, or another, with the batch it is
    /// working through.
    pub fn behind(&self) -> bool {
        self.backlog >= FANOUT_BACKLOG
            || self
                .others()
                .any(|i| self.shared.mesh.work(i) >= FANOUT_BACKLOG)
    }

    /// Starts closing a connection: it leaves its channels at once, gets its close frame (after
    /// what is already queued, unless `drop_queue`), and its socket is shut once that is written,
    /// or reset once the peer took nothing for [`CLOSE_GRACE_SECS`].
    pub fn close(&mut self, key: ConnKey, how: Closing) {
        self.close_now(key, how);
        self.run();
    }

    /// Final removal of a connection whose reader has finished.
    pub fn remove(&mut self, key: ConnKey) {
        let app = self.shard.identity(key).and_then(|(app, _)| app);
        if let Some(conn) = self.shard.remove(key)
            && let Some(app) = app
        {
            self.shared.apps.get(app).disconnect();
            self.stats.removed(app, conn.is_closing());
        }
        self.run();
    }

    /// Asks the owner worker `to` a question; the answer arrives on the receiver.
    pub fn ask(&mut self, to: ShardId, q: Question) -> futures_channel::oneshot::Receiver<Answer> {
        let (tx, rx) = futures_channel::oneshot::channel();
        match &self.shared.cluster {
            Some(c) => c.send(Command::Ask(q, tx)),
            None => self.post(to, MeshMsg::Ask(q, tx)),
        }
        self.run();
        rx
    }

    /// Carries out effects that a caller took from the shard itself (the API's publishes, whose
    /// mesh room, or room in the cluster link, was reserved beforehand): messages for other
    /// workers go into that room. In a cluster the request's publishes and cache events go to
    /// Redis as one step, and every worker (this one too) gets them back through the node's
    /// inbox, in the order Redis ran them; the receiver is told once Redis has.
    pub fn apply_reserved(
        &mut self,
        effects: Vec<Effect>,
    ) -> Option<futures_channel::oneshot::Receiver<()>> {
        let mut done = None;
        if let Some(c) = &self.shared.cluster {
            if let Some((cmd, rx)) = crate::cluster::request(&effects) {
                c.send_reserved(cmd);
                done = Some(rx);
            }
            for e in effects {
                match e {
                    Effect::ToAll(ShardMsg::Publish { .. })
                    | Effect::ToOwner(OwnerMsg::Cache { .. }) => {}
                    other => self.apply(other),
                }
            }
            self.run();
            return done;
        }
        for e in effects {
            match e {
                Effect::ToAll(msg) => {
                    for i in self.others() {
                        self.shared
                            .mesh
                            .send_reserved(i, MeshMsg::Shard(msg.clone()));
                    }
                    self.defer_here(msg);
                }
                Effect::ToOwner(msg) => match self.owner_of(&msg) {
                    OwnerRoute::Cluster => {}
                    OwnerRoute::Worker(to) if to == self.id => {
                        self.loopback.push_back(MeshMsg::Owner(msg))
                    }
                    OwnerRoute::Worker(to) => {
                        self.shared.mesh.send_reserved(to, MeshMsg::Owner(msg))
                    }
                },
                other => self.apply(other),
            }
        }
        self.run();
        done
    }

    /// Sends a message to every worker's shard, this one's included.
    pub fn broadcast(&mut self, msg: ShardMsg) {
        self.apply(Effect::ToAll(msg));
        self.run();
    }

    /// The workers other than this one.
    pub fn others(&self) -> impl Iterator<Item = ShardId> + use<> {
        let me = self.id;
        (0..self.shared.mesh.len() as u16)
            .map(ShardId)
            .filter(move |i| *i != me)
    }

    /// Where an owner message goes: a worker, or the cluster link.
    pub fn owner_of(&self, msg: &OwnerMsg) -> OwnerRoute {
        route(
            msg.address(),
            self.shared.mesh.len(),
            self.shared.cluster.is_some(),
        )
    }

    // ---- carrying out effects ---------------------------------------------------------------

    /// Carries out effects until the cores and the loopback queue have nothing more.
    fn run(&mut self) {
        loop {
            if let Some((key, how)) = self.doomed.pop() {
                self.close_now(key, how);
            } else if let Some(e) = self.shard.poll_effect() {
                self.apply(e);
            } else if let Some(e) = self.owner.poll_effect() {
                self.apply(e);
            } else if let Some(m) = self.loopback.pop_front() {
                self.handle_mesh(m);
            } else {
                return;
            }
        }
    }

    fn apply(&mut self, effect: Effect) {
        match effect {
            Effect::Send { conn, frame } => {
                self.stats
                    .sent(self.shard.identity(conn).and_then(|(app, _)| app));
                if self.debug_messages() {
                    self.log_sent(&[conn], &frame);
                }
                self.offer_to(conn, &frame)
            }
            Effect::Close { conn, how } => self.close_now(conn, how),
            Effect::ToOwner(msg) => match self.owner_of(&msg) {
                OwnerRoute::Worker(to) => self.post(to, MeshMsg::Owner(msg)),
                OwnerRoute::Cluster => {
                    if let Some(c) = &self.shared.cluster {
                        c.send(Command::Owner(self.id, msg));
                    }
                }
            },
            Effect::ToShard(to, msg) => self.post(to, MeshMsg::Shard(msg)),
            Effect::Hook(app, hook) => {
                if let Some(w) = &self.shared.webhooks {
                    w.emit(app, hook);
                }
            }
            Effect::ToAll(msg) => {
                if let Some(c) = &self.shared.cluster
                    && !c.forward(&msg)
                {
                    return;
                }
                for i in self.others() {
                    self.shared.mesh.send(i, MeshMsg::Shard(msg.clone()));
                }
                self.deliver_here(msg);
            }
        }
    }

    /// A message for worker `to`: over the mesh, or into the loopback queue for this one.
    fn post(&mut self, to: ShardId, msg: MeshMsg) {
        if to == self.id {
            self.loopback.push_back(msg);
        } else {
            self.shared.mesh.send(to, msg);
        }
    }

    /// This worker's part of a publish its HTTP API accepted: queued in its own inbox, behind
    /// what other workers queued there before, and counted in the fan-out backlog, so that the
    /// request is answered before the fan-out runs.
    fn defer_here(&mut self, msg: ShardMsg) {
        let weight = self.publish_weight(&msg);
        if weight == 0 {
            self.deliver_here(msg);
            return;
        }
        self.backlog += weight;
        self.shared
            .mesh
            .send(self.id, MeshMsg::Local { msg, weight });
    }

    /// This worker's part of a message for every worker: publishes and frames for users are
    /// written at once (they change no rules state), anything else waits its turn.
    fn deliver_here(&mut self, msg: ShardMsg) {
        match msg {
            ShardMsg::Publish { .. } | ShardMsg::ToUser { .. } => self.handle_shard(msg),
            other => self.loopback.push_back(MeshMsg::Shard(other)),
        }
    }

    fn handle_mesh(&mut self, msg: MeshMsg) {
        match msg {
            MeshMsg::Shard(m) => self.handle_shard(m),
            MeshMsg::Local { msg, weight } => {
                self.backlog -= weight;
                self.handle_shard(msg);
            }
            MeshMsg::Owner(m) => self.owner.handle(m, Instant::now()),
            MeshMsg::Ask(Question::Nodes { app }, reply) => {
                // A lone node: this process only, with no lease.
                let _ = reply.send(Answer::Nodes(vec![NodeInfo {
                    id: String::new(),
                    connections: self.shared.apps.get(app).local_connections(),
                    lease_ms_left: None,
                }]));
            }
            MeshMsg::Ask(q, reply) => {
                let _ = reply.send(self.owner.answer(&q, Instant::now()));
            }
            MeshMsg::Quiesce(ack) => {
                self.quiesce();
                let _ = ack.send(());
            }
            MeshMsg::Drain => self.begin_drain(),
            MeshMsg::Snapshot => {
                if let Some(c) = &self.shared.cluster {
                    c.send(Command::Snapshot(self.id, self.shard.snapshot()));
                }
            }
            MeshMsg::Stats(req, reply) => {
                let _ = reply.send(self.stats_report(&req));
            }
            MeshMsg::Metrics(reply) => {
                let _ = reply.send(Box::new(self.metrics_report()));
            }
            MeshMsg::Reload(r) => self.reload(r.shared.clone(), &r.changes),
        }
    }

    fn handle_shard(&mut self, msg: ShardMsg) {
        let max = self.shared.config.limits.max_outbound_bytes;
        let (fanout, logged) = match &msg {
            ShardMsg::Publish { app, frame, .. } | ShardMsg::ToUser { app, frame, .. } => {
                (Some(*app), self.debug_messages().then(|| frame.clone()))
            }
            _ => (None, None),
        };
        // `--debug` only: the recipients, to log after the fan-out.
        let mut recipients = logged.as_ref().map(|_| Vec::new());
        let Worker {
            shard,
            doomed,
            me,
            stats,
            ..
        } = self;
        let mut delivered = 0;
        shard.handle_shard_msg(msg, |key, c, frame| {
            delivered += 1;
            if let Some(r) = recipients.as_mut() {
                r.push(key);
            }
            offer(me, doomed, max, key, c, frame)
        });
        if let Some(app) = fanout {
            stats.delivered(app, delivered);
        }
        if let (Some(keys), Some(frame)) = (recipients, logged) {
            self.log_sent(&keys, &frame);
        }
    }

    /// Delivers `frame` to this worker's subscribers of `channel`, except `except`.
    pub fn deliver_local(
        &mut self,
        app: AppIdx,
        channel: &str,
        frame: &Bytes,
        except: Option<SocketId>,
    ) {
        let max = self.shared.config.limits.max_outbound_bytes;
        let Worker {
            shard, doomed, me, ..
        } = self;
        shard.for_each_subscriber(app, channel, except, |key, c| {
            offer(me, doomed, max, key, c, frame)
        });
        self.run();
    }

    fn offer_to(&mut self, key: ConnKey, frame: &Bytes) {
        let max = self.shared.config.limits.max_outbound_bytes;
        if let Some(c) = self.shard.io_mut(key) {
            offer(&self.me, &mut self.doomed, max, key, c, frame);
        }
    }

    fn close_now(&mut self, key: ConnKey, how: Closing) {
        let now = self.now();
        match self.shard.io_mut(key) {
            // Marked at once, so that nothing is queued for it while it leaves its channels;
            // the clock starts for real once its close frame is offered below.
            Some(c) if !c.is_closing() => {
                c.closing = Some(CloseClock {
                    since: now,
                    pending: u32::MAX,
                })
            }
            _ => return,
        }
        if let Some((Some(app), _)) = self.shard.identity(key) {
            self.stats.closed(app, how.code);
        }
        if self.debug_messages() {
            self.log_closing(key, how.code, how.reason);
        }
        self.shard.leave_all(key);
        let frames = how.frames();
        if how.drop_queue {
            self.churn_since_trim = TRIM_AFTER_CHURN;
        }
        let me = self.me.clone();
        let Some(c) = self.shard.io_mut(key) else {
            return;
        };
        if how.drop_queue {
            c.out.drop_unstarted();
        }
        let mut failed = false;
        for f in frames {
            failed |= c.out.offer(&c.io, &f) == Offer::Failed;
        }
        c.closing = Some(CloseClock {
            since: now,
            pending: c.pending_bytes(),
        });
        if failed {
            sys::shutdown(c.io.fd, true, true);
        } else if c.out.is_empty() && !c.io.wants_write() {
            c.io.shutdown_write();
        } else {
            ensure_writer(&me, key, c);
        }
    }

    // ---- the clock ----------------------------------------------------------------------

    /// The periodic step: the owner's clock (throttled counts, cache expiry), then liveness:
    /// pings silent connections, closes those that did not answer with 4201, and shuts or
    /// resets the sockets of closing connections whose grace period ran out.
    pub fn sweep(&mut self) {
        self.owner.tick(Instant::now());
        if self.churn_since_trim >= TRIM_AFTER_CHURN {
            self.churn_since_trim = 0;
            sys::release_free_memory();
        }
        let now = self.now();
        let mut ping = Vec::new();
        let mut dead = Vec::new();
        let apps = self.shared.apps.clone();
        for (key, app, c) in self.shard.iter_mut() {
            if let Some(clock) = c.closing {
                if now.saturating_sub(clock.since) >= CLOSE_GRACE_SECS {
                    let pending = c.pending_bytes();
                    if pending == 0 {
                        // Everything was delivered; only the peer's close reply is missing.
                        sys::shutdown(c.io.fd, true, true);
                    } else if pending < clock.pending {
                        // The peer still reads: another grace period for the rest.
                        c.closing = Some(CloseClock {
                            since: now,
                            pending,
                        });
                    } else {
                        // The peer took nothing for a whole grace period. A clean close would
                        // keep the unsent rest in kernel memory and retry it for a minute or
                        // more; a reset frees it now.
                        sys::abort(c.io.fd);
                    }
                }
                continue;
            }
            let Some(app) = app else { continue };
            let cfg = &apps.get(app).cfg;
            match c.pinged_at {
                Some(at) if now.saturating_sub(at) >= cfg.pong_timeout => dead.push(key),
                Some(_) => {}
                None if now.saturating_sub(c.last_seen) >= cfg.ping_interval => {
                    c.pinged_at = Some(now);
                    ping.push(key);
                }
                None => {}
            }
        }
        let frame = self.ping_frame.clone();
        for key in ping {
            self.offer_to(key, &frame);
        }
        for key in dead {
            self.close_now(key, Closing::pusher(PusherCode::PongNotReceived, true));
        }
        self.run();
    }

    /// Stops accepting connections (and, in the API, publishes).
    pub fn quiesce(&mut self) {
        if self.shutting_down {
            return;
        }
        self.shutting_down = true;
        if let Some(fd) = self.listener_fd {
            sys::shutdown(fd, true, false);
        }
    }

    /// Closes every connection with 4200 after what is already queued for it, so that
    /// pusher-js reconnects at once (to another instance, or to this one once it is back).
    pub fn begin_drain(&mut self) {
        self.quiesce();
        if self.draining {
            return;
        }
        self.draining = true;
        let keys: Vec<ConnKey> = self.shard.iter_mut().map(|(key, _, _)| key).collect();
        for key in keys {
            self.close_now(key, Closing::pusher(PusherCode::Reconnect, false));
        }
    }

    /// The worker's last step before its thread ends: the delayed webhooks its owner still
    /// holds are sent now, since nobody can come back to this process.
    pub fn finish(&mut self) {
        self.owner.flush_delayed();
        self.run();
    }

    /// Number of open WebSocket connections on this worker.
    pub fn len(&self) -> usize {
        self.shard.len()
    }

    /// Whether this worker has no open WebSocket connection.
    pub fn is_empty(&self) -> bool {
        self.shard.is_empty()
    }
}

/// Offers `frame` to `c`, starting a writer when the socket is full and dooming the connection
/// when its queue passes `max` bytes or its socket failed.
fn offer(
    me: &Weak<RefCell<Worker>>,
    doomed: &mut Vec<(ConnKey, Closing)>,
    max: usize,
    key: ConnKey,
    c: &mut Conn,
    frame: &Bytes,
) {
    if c.is_closing() {
        return;
    }
    match c.out.offer(&c.io, frame) {
        Offer::Sent => {}
        Offer::Queued => {
            if c.out.bytes() > max {
                doomed.push((key, Closing::slow_consumer()));
            } else {
                ensure_writer(me, key, c);
            }
        }
        Offer::Failed => {
            sys::shutdown(c.io.fd, true, true);
        }
    }
}

/// Starts a writer task for `c` unless one is running.
fn ensure_writer(me: &Weak<RefCell<Worker>>, key: ConnKey, c: &mut Conn) {
    if c.writer_active {
        return;
    }
    let Some(worker) = me.upgrade() else { return };
    c.writer_active = true;
    monoio::spawn(writer(worker, key, c.stream.clone()));
}

/// Waits for the socket to become writable and flushes the queue, until it is empty. A closing
/// connection's socket is shut for writing once its close frame is out.
async fn writer(worker: Rc<RefCell<Worker>>, key: ConnKey, stream: Rc<TcpStream>) {
    loop {
        let ready = stream.writable(false).await;
        let mut w = worker.borrow_mut();
        let Some(c) = w.shard.io_mut(key) else { return };
        if ready.is_err() {
            c.writer_active = false;
            sys::shutdown(c.io.fd, true, true);
            return;
        }
        match c.out.flush(&c.io) {
            Ok(true) => {
                c.writer_active = false;
                if c.is_closing() {
                    c.io.shutdown_write();
                }
                return;
            }
            Ok(false) => {}
            Err(_) => {
                c.writer_active = false;
                sys::shutdown(c.io.fd, true, true);
                return;
            }
        }
    }
}
