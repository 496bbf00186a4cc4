//! The command thread: carries the workers' operations to Redis in the order they were queued,
//! and keeps this node's place in the cluster through whatever Redis does.
//!
//! # Operations and their numbers
//!
//! Every operation taken from the link's queue (a join, leave, sign-in, sign-out, publish or
//! termination) gets the next number of this node. The scripts' guard applies an operation
//! only if its number is above the last one Redis applied for the node, so an operation whose
//! outcome was lost with a broken connection is simply sent again: Redis runs it if it had
//! not, and answers `ALREADY` if it had. Whatever is queued goes out as one pipeline (at most
//! [`MAX_BATCH`] commands): a burst costs one round trip.
//!
//! # Phases
//!
//! - **Up**: operations go to Redis as they come. Every heartbeat renews the lease, reaps the
//!   nodes whose lease expired (`super::scripts::HEARTBEAT`), and learns the live nodes.
//! - **Down**: the connection is lost. Operations are held (`super::outbox`), their bytes
//!   still counted against the link's bound; this node's own subscribers get its publishes
//!   at once, starting with the recent ones its inbox may not have delivered yet. The
//!   connection is tried again every second. When it is back, REGISTER says what Redis kept:
//!   - `continue`: everything; the held operations go out in order, and the guard drops the
//!     ones Redis had already run.
//!   - `silent` (Redis lost its data) or `loud` (this node was reaped): **Rebuild**.
//! - **Rebuild**: the workers' snapshots are gathered and asserted (`super::rebuild`); held
//!   operations wait. After a loud assertion the node is Up again.
//! - **Settle** (after a silent assertion): every node must put its share back before
//!   publishes can find their subscribers, so the node waits until every node that was alive
//!   before the loss has registered again, or [`Timing::settle`] has passed. Then SETTLE
//!   sends what changed meanwhile, the recent publishes are sent again (the receivers drop
//!   the ones they have) and the held operations go out.
//!
//! A heartbeat or an operation that finds the node unregistered (its lease expired while it
//! was stopped or cut off, and a survivor reaped it) leads to the same REGISTER, without a
//! reconnection.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use ringcast_protocol::Limits;

use super::decode::{HookStep, answer, fired, hook_steps, reaped_hooks};
use super::health::{Connection, Health};
use super::link::{AppTable, to_all};
use super::outbox::{Held, Recent, Ring};
use super::rebuild::{self, Cut, Followups, Mode, Totals};
use super::scripts::{ALREADY, NOT_REGISTERED};
use super::seen::Seen;
use super::wire::{AskKind, Command, Encoder, HookCtx, Pending};
use crate::ids::AppIdx;
use crate::mesh::Mesh;
use crate::state::msg::{OwnerMsg, Snapshot};
use crate::state::owner::COUNT_INTERVAL;
use crate::webhook::{DELAY, Webhooks};

/// Most commands sent in one pipeline.
pub const MAX_BATCH: usize = 512;
/// How often the lease is renewed, the connection counts refreshed and the dead reaped.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// How often a lost Redis is tried again, and at most how often that is logged.
const RETRY_EVERY: Duration = Duration::from_secs(1);
const LOG_EVERY: Duration = Duration::from_secs(5);
/// How often a settling node looks for the others.
const SETTLE_POLL: Duration = Duration::from_millis(100);

/// The command thread's clocks.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// How long the lease lasts without a heartbeat.
    pub lease: Duration,
    /// Longest wait for the other nodes to re-assert after Redis lost its data.
    pub settle: Duration,
}

/// What the command thread asks of the inbox thread.
#[derive(Debug)]
pub enum InboxCtl {
    /// Deliver what was read, then ask every worker for its snapshot.
    Fence,
}

/// Where the node stands with Redis.
enum Phase {
    Up,
    Down,
    Rebuild {
        mode: Mode,
        /// Per worker: the number of the last operation queued before its snapshot, and it.
        parts: Vec<Option<(u64, Snapshot)>>,
    },
    Settle {
        mode: Mode,
        until: Instant,
        /// The nodes alive before the loss, besides this one.
        known: Vec<String>,
        calls: Vec<redis::Cmd>,
        polled: Instant,
    },
}

/// The command thread's state.
pub struct CommandLoop {
    pub con: Option<redis::Connection>,
    pub enc: Encoder,
    /// The app table, replaced by a reload; the encoder takes it anew for every batch.
    pub table: Arc<AppTable>,
    /// Where the thread records its connection's state and round trips.
    pub health: Arc<Health>,
    pub mesh: Mesh,
    pub limits: Limits,
    pub timing: Timing,
    pub queued: Arc<AtomicUsize>,
    /// Whether Redis takes operations as they come (the API waits for them then).
    pub up: Arc<AtomicBool>,
    pub seen: Arc<Seen>,
    pub inbox: Sender<InboxCtl>,
    /// The data set this node is registered in (`{P}:epoch`).
    pub epoch: String,
    dialer: Dialer,
    op: u64,
    /// The highest operation number Redis answered.
    answered: u64,
    phase: Phase,
    held: VecDeque<Held>,
    recent: Ring,
    /// The nodes alive at the last heartbeat, besides this one.
    known: Vec<String>,
    /// A re-assertion that did not finish: the next registration starts it again.
    interrupted: Option<Mode>,
    next_beat: Instant,
    lost_since: Option<Instant>,
    tried_at: Option<Instant>,
    logged_at: Option<Instant>,
    /// The webhook senders, for the webhooks the scripts decided on this node's calls.
    webhooks: Option<Arc<Webhooks>>,
    /// Departures (and throttled counts) this node's scripts decided, waiting for their delay.
    pending: Vec<Pending>,
}

/// Opens a connection with the link's timeouts.
pub fn connect(client: &redis::Client) -> redis::RedisResult<redis::Connection> {
    let con = client.get_connection_with_timeout(super::link::CONNECT_TIMEOUT)?;
    con.set_read_timeout(Some(super::link::REPLY_TIMEOUT))?;
    con.set_write_timeout(Some(super::link::REPLY_TIMEOUT))?;
    Ok(con)
}

/// Sends `pipe` and reads its replies one by one, stopping at the first I/O error, with a
/// server error as an error of its own command. (redis-rs's own pipeline reading goes on after
/// a read that timed out, and waits the read timeout again for every reply left: a frozen
/// Redis would hold the thread for the timeout times the pipeline's length.)
pub fn query_pipe(
    con: &mut redis::Connection,
    pipe: &redis::Pipeline,
) -> redis::RedisResult<Vec<redis::RedisResult<redis::Value>>> {
    con.send_packed_command(&pipe.get_packed_pipeline())?;
    let mut out = Vec::with_capacity(pipe.len());
    for _ in 0..pipe.len() {
        out.push(match con.recv_response()? {
            redis::Value::ServerError(e) => Err(e.into()),
            v => Ok(v),
        });
    }
    Ok(out)
}

/// A fresh random id (node ids, epochs).
pub fn random_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Connection attempts on a thread of their own: a Redis that accepts connections but does not
/// answer (a frozen process) keeps an attempt waiting for [`super::link::REPLY_TIMEOUT`], and
/// the command thread goes on taking and holding the workers' operations meanwhile.
struct Dialer {
    tx: Sender<()>,
    rx: Receiver<redis::RedisResult<redis::Connection>>,
    busy: bool,
}

impl Dialer {
    fn start(client: redis::Client) -> Dialer {
        let (tx, requests) = crossbeam_channel::bounded::<()>(1);
        let (done, rx) = crossbeam_channel::bounded(1);
        let scripts = super::scripts::Scripts::default();
        let spawned = std::thread::Builder::new()
            .name("ringcast-dial".into())
            .spawn(move || {
                while requests.recv().is_ok() {
                    let con = connect(&client).and_then(|mut c| {
                        scripts.load(&mut c)?;
                        Ok(c)
                    });
                    if done.send(con).is_err() {
                        return;
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the thread that reconnects to Redis");
        }
        Dialer {
            tx,
            rx,
            busy: false,
        }
    }
}

impl CommandLoop {
    /// The thread of a node registered in `epoch` on `con`, holding at most `max_bytes` of
    /// recent operations.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: redis::Client,
        con: redis::Connection,
        enc: Encoder,
        table: Arc<AppTable>,
        health: Arc<Health>,
        mesh: Mesh,
        limits: Limits,
        timing: Timing,
        queued: Arc<AtomicUsize>,
        up: Arc<AtomicBool>,
        seen: Arc<Seen>,
        inbox: Sender<InboxCtl>,
        epoch: String,
        max_bytes: usize,
        webhooks: Option<Arc<Webhooks>>,
    ) -> CommandLoop {
        CommandLoop {
            dialer: Dialer::start(client),
            con: Some(con),
            enc,
            table,
            health,
            mesh,
            limits,
            timing,
            queued,
            up,
            seen,
            inbox,
            epoch,
            op: 0,
            answered: 0,
            phase: Phase::Up,
            held: VecDeque::new(),
            recent: Ring::new(max_bytes),
            known: Vec::new(),
            interrupted: None,
            next_beat: Instant::now() + HEARTBEAT_EVERY,
            lost_since: None,
            tried_at: None,
            logged_at: None,
            webhooks,
            pending: Vec::new(),
        }
    }

    /// Runs until the link is stopped.
    pub fn run(mut self, rx: Receiver<Command>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            let wait = self.next_wake().saturating_duration_since(Instant::now());
            let dialed = self.dialer.rx.clone();
            crossbeam_channel::select! {
                recv(rx) -> cmd => match cmd {
                    Ok(cmd) => {
                        batch.push(cmd);
                        while batch.len() < MAX_BATCH {
                            match rx.try_recv() {
                                Ok(cmd) => batch.push(cmd),
                                Err(_) => break,
                            }
                        }
                    }
                    Err(_) => return,
                },
                recv(dialed) -> con => {
                    if let Ok(con) = con {
                        self.dialed(con);
                    }
                }
                default(wait) => {}
            }
            // After the receive: a command about an app that a reload added was queued after
            // the reload set the table.
            self.enc.apps = self.table.current();
            let mut ready = Vec::with_capacity(batch.len());
            let mut stop = None;
            for cmd in batch.drain(..) {
                match cmd {
                    Command::Stop(ack) => stop = Some(ack),
                    other => self.accept(other, &mut ready),
                }
            }
            if !ready.is_empty() {
                self.execute(ready);
            }
            self.tick();
            self.fire_due(stop.is_some());
            self.up
                .store(matches!(self.phase, Phase::Up), Ordering::Relaxed);
            if let Some(ack) = stop {
                self.goodbye();
                let _ = ack.send(());
                return;
            }
        }
    }

    fn next_wake(&self) -> Instant {
        let wake = match &self.phase {
            Phase::Down => self
                .tried_at
                .map_or_else(Instant::now, |t| t + RETRY_EVERY)
                .min(self.next_beat),
            Phase::Settle { polled, .. } => (*polled + SETTLE_POLL).min(self.next_beat),
            _ => self.next_beat,
        };
        match self.pending.iter().map(|p| p.due).min() {
            Some(d) if matches!(self.phase, Phase::Up) => d.min(wake),
            _ => wake,
        }
    }

    fn release(&self, bytes: usize) {
        self.queued.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// Takes one command from the queue: numbers it, and runs it now (into `ready`) or holds
    /// it.
    fn accept(&mut self, cmd: Command, ready: &mut Vec<Held>) {
        let cost = cmd.cost();
        let op = if cmd.is_op() {
            self.op += 1;
            self.op
        } else {
            0
        };
        match cmd {
            Command::Snapshot(w, snap) => {
                self.release(cost);
                if let Phase::Rebuild { parts, .. } = &mut self.phase
                    && let Some(slot) = parts.get_mut(w.0 as usize)
                {
                    *slot = Some((self.op, snap));
                }
                self.finish_rebuild();
            }
            cmd if matches!(self.phase, Phase::Up) => ready.push(Held {
                op,
                cmd,
                local_done: false,
                cost,
            }),
            Command::Ask(..) => {
                // Redis does not have this node's view right now: the API answers 503.
                self.release(cost);
            }
            cmd => {
                let mut h = Held {
                    op,
                    cmd,
                    local_done: false,
                    cost,
                };
                self.hold(&mut h);
                self.held.push_back(h);
            }
        }
    }

    /// What holding an operation means at once: this node's workers get what it publishes,
    /// and an API request waiting for it is answered (it is accepted, within the bound).
    fn hold(&self, h: &mut Held) {
        if !h.local_done {
            let local = h.cmd.local_part();
            if !local.is_empty() {
                let mut seen = self.seen.lock();
                if let Some(from) = seen.admit_rest(&self.enc.node, h.op) {
                    for m in local.into_iter().skip(from) {
                        to_all(&self.mesh, m);
                    }
                }
            }
            h.local_done = true;
        }
        if let Command::Publish(_, done) = &mut h.cmd
            && let Some(d) = done.take()
        {
            let _ = d.send(());
        }
    }

    /// Sends `ops` as one pipeline and acts on the replies in order.
    fn execute(&mut self, ops: Vec<Held>) {
        let mut pipe = redis::pipe();
        let mut sent = Vec::with_capacity(ops.len());
        for h in ops {
            match self.enc.encode(&h.cmd, h.op, h.local_done) {
                Some(c) => {
                    pipe.add_command(c);
                    sent.push(h);
                }
                None => self.release(h.cost),
            }
        }
        if sent.is_empty() {
            return;
        }
        let Some(con) = self.con.as_mut() else {
            return self.go_down(sent);
        };
        let started = Instant::now();
        let replies = match query_pipe(con, &pipe) {
            Ok(r) => {
                self.health.round_trip(started.elapsed());
                r
            }
            Err(e) => {
                tracing::warn!(error = %e, "lost the connection to Redis");
                return self.go_down(sent);
            }
        };
        let mut unapplied = Vec::new();
        let mut unregistered = false;
        let mut noscript = false;
        for (reply, h) in replies.into_iter().zip(sent) {
            match reply {
                Ok(redis::Value::Int(NOT_REGISTERED)) => {
                    unregistered = true;
                    unapplied.push(h);
                }
                Ok(v) => self.done(h, &v),
                Err(e)
                    if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                {
                    // Redis lost its script cache (a restart, SCRIPT FLUSH): the script did not
                    // run, so it runs again once loaded.
                    noscript = true;
                    unapplied.push(h);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "a cluster script failed");
                    self.failed(h);
                }
            }
        }
        if unapplied.is_empty() {
            return;
        }
        if noscript
            && let Some(con) = self.con.as_mut()
            && let Err(e) = self.enc.scripts.load(con)
        {
            tracing::warn!(error = %e, "lost the connection to Redis");
            return self.go_down(unapplied);
        }
        if unregistered {
            self.rejoin(unapplied);
        } else {
            self.execute(unapplied);
        }
    }

    /// An operation Redis ran (or had run).
    fn done(&mut self, mut h: Held, reply: &redis::Value) {
        self.release(h.cost);
        self.answered = self.answered.max(h.op);
        if matches!(reply, redis::Value::Int(ALREADY)) {
            tracing::debug!(op = h.op, "Redis had already run this operation");
        }
        if let redis::Value::Array(_) = reply
            && let Some(ctx) = HookCtx::of(&h.cmd)
        {
            let steps = hook_steps(&ctx, reply);
            self.hook_steps(ctx, steps);
        }
        match h.cmd {
            Command::Publish(ref mut items, ref mut done) => {
                if let Some(d) = done.take() {
                    let _ = d.send(());
                }
                let here = matches!(reply, redis::Value::Int(1));
                self.recent
                    .push(h.op, Recent::Publish(std::mem::take(items), here));
            }
            Command::Owner(_, OwnerMsg::Cache { .. }) => {}
            Command::Owner(
                _,
                OwnerMsg::Leave {
                    app,
                    channel,
                    user: Some(user),
                },
            ) => self.recent.push(h.op, Recent::Departed(app, channel, user)),
            Command::Owner(_, OwnerMsg::Signout { app, user, .. }) => {
                self.recent.push(h.op, Recent::Offline(app, user));
            }
            Command::Ask(q, tx) => {
                let _ = tx.send(answer(AskKind::of(&q), reply, &self.limits));
            }
            _ => {}
        }
    }

    /// An operation Redis refused (out of memory, say): a join is refused on its worker, so
    /// that its subscriber hears of it; anything else is dropped (a publish's API request
    /// answers 503).
    fn failed(&mut self, h: Held) {
        self.release(h.cost);
        self.health.failed(1);
        if let Command::Owner(w, OwnerMsg::Join(j)) = h.cmd {
            let frame = ringcast_protocol::pusher::event::ServerEvent::SubscriptionError {
                channel: j.channel.as_str(),
                error_type: "ClusterUnavailable",
                error: "The cluster's Redis refused the subscription; subscribe again",
                status: 503,
            }
            .to_frame();
            let refusal = crate::state::msg::JoinAnswer {
                conn: j.conn,
                seq: j.seq,
                app: j.app,
                channel: j.channel,
                user: None,
                accepted: false,
                frames: vec![frame],
            };
            self.mesh.send(
                w,
                crate::mesh::MeshMsg::Shard(crate::state::msg::ShardMsg::JoinAnswer(refusal)),
            );
        }
    }

    /// This node's own subscribers are served from here on, and `unapplied` (oldest first)
    /// goes back in front of what is held.
    fn take_over(&mut self, unapplied: Vec<Held>) {
        {
            // Publishes Redis ran whose copy for this node its inbox may not have delivered.
            let mut seen = self.seen.lock();
            for (op, items) in self.recent.publishes() {
                if let Some(from) = seen.admit_rest(&self.enc.node, op) {
                    for i in items.iter().skip(from) {
                        to_all(
                            &self.mesh,
                            crate::state::msg::ShardMsg::Publish {
                                app: i.app,
                                channel: i.channel.clone(),
                                frame: i.frame.clone(),
                                except: i.except,
                            },
                        );
                    }
                }
            }
        }
        let mut front = VecDeque::with_capacity(unapplied.len() + self.held.len());
        for mut h in unapplied {
            if matches!(h.cmd, Command::Ask(..)) {
                self.release(h.cost);
                continue;
            }
            self.hold(&mut h);
            front.push_back(h);
        }
        front.append(&mut self.held);
        self.held = front;
        match &self.phase {
            Phase::Rebuild { mode, .. } | Phase::Settle { mode, .. } => {
                self.interrupted = Some(*mode);
            }
            _ => {}
        }
    }

    /// The connection is lost: `unapplied` may or may not have run.
    fn go_down(&mut self, unapplied: Vec<Held>) {
        self.up.store(false, Ordering::Relaxed);
        self.health.lost(Connection::Commands);
        self.con = None;
        self.take_over(unapplied);
        self.phase = Phase::Down;
        self.lost_since.get_or_insert_with(Instant::now);
    }

    /// Redis does not know this node (reaped, or its data lost): `unapplied` did not run.
    fn rejoin(&mut self, unapplied: Vec<Held>) {
        tracing::warn!("this node is no longer registered in the cluster; registering again");
        self.take_over(unapplied);
        self.phase = Phase::Down;
        if let Err(e) = self.register() {
            tracing::warn!(error = %e, "lost the connection to Redis");
            self.con = None;
            self.lost_since.get_or_insert_with(Instant::now);
        }
    }

    /// REGISTER, and what follows from its answer.
    fn register(&mut self) -> redis::RedisResult<()> {
        let floor = [self.recent.oldest(), self.held.front().map(|h| h.op)]
            .into_iter()
            .flatten()
            .min()
            .map_or(self.op, |o| o.saturating_sub(1));
        let Some(con) = self.con.as_mut() else {
            return Ok(());
        };
        let (mode, epoch): (String, String) = self
            .enc
            .register(
                &self.epoch,
                &random_id(),
                floor,
                self.timing.lease.as_millis() as u64,
                self.interrupted.is_some(),
                self.answered,
            )
            .query(con)?;
        let changed = epoch != self.epoch;
        self.epoch = epoch;
        self.next_beat = Instant::now() + HEARTBEAT_EVERY;
        let mode = match mode.as_str() {
            "continue" => None,
            "silent" => Some(Mode::Silent),
            _ if self.interrupted == Some(Mode::Silent) => Some(Mode::Silent),
            _ => Some(Mode::Loud),
        };
        match mode {
            None => {
                self.phase = Phase::Up;
                let held: Vec<Held> = self.held.drain(..).collect();
                self.execute(held);
            }
            Some(mode) => {
                tracing::warn!(
                    data_lost = changed,
                    "re-asserting this node's subscriptions, members and sign-ins in Redis"
                );
                self.interrupted = Some(mode);
                self.phase = Phase::Rebuild {
                    mode,
                    parts: (0..self.mesh.len()).map(|_| None).collect(),
                };
                let _ = self.inbox.send(InboxCtl::Fence);
            }
        }
        Ok(())
    }

    /// Once every worker's snapshot is in: asserts them and moves on.
    fn finish_rebuild(&mut self) {
        let complete = matches!(&self.phase, Phase::Rebuild { parts, .. } if parts.iter().all(Option::is_some));
        if !complete {
            return;
        }
        let Phase::Rebuild { mode, parts } = std::mem::replace(&mut self.phase, Phase::Down) else {
            return;
        };
        let mut cuts = Vec::with_capacity(parts.len());
        let mut snaps = Vec::with_capacity(parts.len());
        for (before, snap) in parts.into_iter().flatten() {
            cuts.push(Cut {
                before,
                pending: snap.pending.iter().copied().collect(),
            });
            snaps.push(snap);
        }
        let totals = Totals::of(&snaps);
        let mut follow = Followups::default();
        let (kept, freed) = rebuild::sort_held(std::mem::take(&mut self.held), &cuts, &mut follow);
        self.release(freed);
        self.held = kept;
        if mode == Mode::Silent {
            // Leaves and sign-outs Redis ran just before it lost them: checked again too.
            for (_, r) in self.recent.take_departures() {
                match r {
                    Recent::Departed(app, ch, user) => {
                        follow.changed.push((app, ch.clone()));
                        follow.departed.push((app, ch, user));
                    }
                    Recent::Offline(app, user) => follow.offline.push((app, user)),
                    Recent::Publish(..) => {}
                }
            }
        }
        let mut pipe = redis::pipe();
        for c in rebuild::assert_calls(&self.enc, mode, &totals, self.answered) {
            pipe.add_command(c);
        }
        // Asserted: the other nodes may send this node what they held.
        pipe.cmd("SREM")
            .arg(format!("{}:rebuilding", self.enc.prefix))
            .arg(&self.enc.node);
        // Back in Rebuild while it runs, so that a failure knows what was interrupted.
        self.phase = Phase::Rebuild {
            mode,
            parts: Vec::new(),
        };
        if !self.run_checked(pipe) {
            return;
        }
        let calls = rebuild::settle_calls(&self.enc, mode, &totals, &follow);
        match mode {
            Mode::Loud => {
                let mut pipe = redis::pipe();
                for c in calls {
                    pipe.add_command(c);
                }
                if self.run_checked(pipe) {
                    self.resume(Vec::new());
                }
            }
            Mode::Silent => {
                self.phase = Phase::Settle {
                    mode,
                    until: Instant::now() + self.timing.settle,
                    known: self.known.clone(),
                    calls,
                    polled: Instant::now(),
                };
                self.settle();
            }
        }
    }

    /// Runs a pipeline of lifecycle calls; on a failure, goes down or registers again.
    fn run_checked(&mut self, pipe: redis::Pipeline) -> bool {
        if pipe.cmd_iter().next().is_none() {
            return true;
        }
        let Some(con) = self.con.as_mut() else {
            self.go_down(Vec::new());
            return false;
        };
        let replies = match query_pipe(con, &pipe) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "lost the connection to Redis");
                self.go_down(Vec::new());
                return false;
            }
        };
        if replies
            .iter()
            .any(|r| matches!(r, Ok(redis::Value::Int(NOT_REGISTERED))))
        {
            self.rejoin(Vec::new());
            return false;
        }
        if let Some(Err(e)) = replies.iter().find(|r| r.is_err()) {
            // A script error (Redis out of memory, say): the node tries again from the start.
            tracing::warn!(error = %e, "re-asserting this node in Redis failed");
            self.con = None;
            self.go_down(Vec::new());
            return false;
        }
        true
    }

    /// While settling: once the nodes alive before are back (or the wait is over), SETTLE and
    /// on.
    fn settle(&mut self) {
        let Phase::Settle {
            until,
            known,
            polled,
            ..
        } = &mut self.phase
        else {
            return;
        };
        *polled = Instant::now();
        let deadline = *until;
        let want = known.clone();
        let Some(con) = self.con.as_mut() else {
            return self.go_down(Vec::new());
        };
        let (nodes, rebuilding): (Vec<String>, Vec<String>) = match redis::pipe()
            .cmd("SMEMBERS")
            .arg(format!("{}:nodes", self.enc.prefix))
            .cmd("SMEMBERS")
            .arg(format!("{}:rebuilding", self.enc.prefix))
            .query(con)
        {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "lost the connection to Redis");
                return self.go_down(Vec::new());
            }
        };
        // Back: registered again, and done asserting its share.
        let back = want
            .iter()
            .all(|n| nodes.contains(n) && !rebuilding.contains(n));
        if !back && Instant::now() < deadline {
            return;
        }
        if !back {
            let missing: Vec<&String> = want
                .iter()
                .filter(|n| !nodes.contains(n) || rebuilding.contains(n))
                .collect();
            tracing::info!(
                ?missing,
                "nodes did not register again in time; going on without them"
            );
        }
        let Phase::Settle { calls, .. } = std::mem::replace(&mut self.phase, Phase::Down) else {
            return;
        };
        self.phase = Phase::Settle {
            mode: Mode::Silent,
            until: deadline,
            known: want,
            calls: Vec::new(),
            polled: Instant::now(),
        };
        let mut pipe = redis::pipe();
        for c in calls {
            pipe.add_command(c);
        }
        if !self.run_checked(pipe) {
            return;
        }
        // The recent publishes go again: the receivers drop those they already have.
        let replay = self
            .recent
            .take()
            .into_iter()
            .filter_map(|(op, r)| match r {
                Recent::Publish(items, _) => Some(Held {
                    op,
                    cmd: Command::Publish(items, None),
                    local_done: true,
                    cost: 0,
                }),
                _ => None,
            })
            .collect();
        self.resume(replay);
    }

    /// Up again: `first`, then what was held, in order. Then the node's highest applied
    /// operation is at least the highest Redis ever answered it, as it is when nothing was lost
    /// (REGISTER takes a lower one for data Redis lost).
    fn resume(&mut self, first: Vec<Held>) {
        tracing::info!("this node's share of the cluster is back in Redis");
        self.phase = Phase::Up;
        self.interrupted = None;
        let mut ops = first;
        ops.extend(self.held.drain(..));
        self.execute(ops);
        if matches!(self.phase, Phase::Up) {
            let mut raise = self.enc.call(super::scripts::ScriptId::Assert);
            raise.arg("silent").arg("h").arg(self.answered);
            let mut pipe = redis::pipe();
            pipe.add_command(raise);
            self.run_checked(pipe);
        }
    }

    /// The heartbeat, the reconnection and the settling, when due.
    fn tick(&mut self) {
        let now = Instant::now();
        match self.phase {
            Phase::Down if self.tried_at.is_none_or(|t| t.elapsed() >= RETRY_EVERY) => {
                self.reconnect()
            }
            Phase::Settle { polled, .. } if polled.elapsed() >= SETTLE_POLL => self.settle(),
            _ => {}
        }
        if now >= self.next_beat && !matches!(self.phase, Phase::Down) {
            self.next_beat = now + HEARTBEAT_EVERY;
            self.heartbeat();
            self.seen.lock().forget_idle(&self.enc.node);
        }
        // What Redis ran before it went away stays until it was sent again.
        if matches!(self.phase, Phase::Up) {
            let delivered = self.seen.lock().last(&self.enc.node);
            self.recent.trim(delivered);
        }
    }

    /// Asks the dialer for a connection, unless it is still trying.
    fn reconnect(&mut self) {
        self.lost_since.get_or_insert_with(Instant::now);
        self.tried_at = Some(Instant::now());
        if !self.dialer.busy && self.dialer.tx.try_send(()).is_ok() {
            self.dialer.busy = true;
        }
    }

    /// What the dialer got.
    fn dialed(&mut self, con: redis::RedisResult<redis::Connection>) {
        self.dialer.busy = false;
        if !matches!(self.phase, Phase::Down) {
            return;
        }
        let since = *self.lost_since.get_or_insert_with(Instant::now);
        match con {
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
                if let Err(e) = self.register() {
                    tracing::warn!(error = %e, "lost the connection to Redis");
                    self.con = None;
                    self.phase = Phase::Down;
                    self.lost_since = Some(since);
                }
            }
            Err(e) => {
                if self.logged_at.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
                    self.logged_at = Some(Instant::now());
                    tracing::warn!(
                        error = %e,
                        down_for_secs = since.elapsed().as_secs(),
                        held_bytes = self.queued.load(Ordering::Relaxed),
                        "Redis unreachable; this node serves its own clients and holds what the others must get"
                    );
                }
            }
        }
    }

    /// Renews the lease, reaps the dead, refreshes the other nodes' connection counts.
    fn heartbeat(&mut self) {
        let cmd = self.enc.heartbeat(self.timing.lease.as_millis() as u64);
        let Some(con) = self.con.as_mut() else {
            return;
        };
        let started = Instant::now();
        let reply: redis::Value = match cmd.query(con) {
            Ok(v) => {
                self.health.heartbeat(started.elapsed());
                v
            }
            Err(e) => {
                tracing::warn!(error = %e, "lost the connection to Redis");
                return self.go_down(Vec::new());
            }
        };
        if reply == redis::Value::Array(vec![redis::Value::Int(0)]) {
            // Not registered: reaped while this node was stopped or cut off, or the data lost.
            return self.rejoin(Vec::new());
        }
        let Some(beat) = Beat::parse(reply) else {
            tracing::warn!("a heartbeat's reply was not understood");
            return;
        };
        for (ctx, step) in reaped_hooks(&beat.hooks, &self.enc.apps, &self.limits) {
            self.hook_steps(ctx, vec![step]);
        }
        let apps = &self.enc.apps;
        for (i, n) in beat.others.into_iter().enumerate() {
            if i < apps.len() {
                apps.get(AppIdx(i as u32)).set_others(n);
            }
        }
        for n in &beat.reaped {
            tracing::warn!(node = %n, "reaped a node whose lease expired: its members, subscriptions and sign-ins are removed");
        }

        if matches!(self.phase, Phase::Up) {
            self.known = beat
                .nodes
                .into_iter()
                .filter(|n| *n != self.enc.node)
                .collect();
        }
    }

    /// Sends the webhooks of a script's reply, and keeps its departures for their delay.
    fn hook_steps(&mut self, ctx: HookCtx, steps: Vec<HookStep>) {
        for step in steps {
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

    fn emit(&self, app: AppIdx, hook: crate::webhook::Hook) {
        if let Some(w) = &self.webhooks {
            w.emit(app, hook);
        }
    }

    /// Fires the departures whose delay has passed (every one when the node stops: nobody can
    /// come back to it) with one HOOKFIRE. They wait while Redis is away or being rebuilt: the
    /// entries they check are in Redis, and a join meanwhile may still cancel them.
    fn fire_due(&mut self, all: bool) {
        if self.pending.is_empty() || !matches!(self.phase, Phase::Up) {
            return;
        }
        let now = Instant::now();
        let (due, rest): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| all || p.due <= now);
        self.pending = rest;
        if due.is_empty() {
            return;
        }
        let cmd = self.enc.fire(&due);
        let Some(con) = self.con.as_mut() else {
            self.pending.extend(due);
            return;
        };
        let started = Instant::now();
        match cmd.query::<redis::Value>(con) {
            Ok(reply) => {
                self.health.round_trip(started.elapsed());
                for (app, hook) in fired(due, &reply) {
                    self.emit(app, hook);
                }
            }
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                // Redis lost its script cache: loaded again, the fire is tried again next time.
                if let Some(con) = self.con.as_mut()
                    && let Err(e) = self.enc.scripts.load(con)
                {
                    tracing::warn!(error = %e, "lost the connection to Redis");
                    self.pending.extend(due);
                    return self.go_down(Vec::new());
                }
                self.pending.extend(due);
            }
            Err(e) if matches!(e.kind(), redis::ErrorKind::Server(_)) => {
                tracing::warn!(error = %e, "firing delayed webhooks failed; they are dropped");
            }
            Err(e) => {
                tracing::warn!(error = %e, "lost the connection to Redis");
                self.pending.extend(due);
                self.go_down(Vec::new());
            }
        }
    }

    /// Leaves the cluster: this node's lease, counts and inbox go.
    fn goodbye(&mut self) {
        if !matches!(self.phase, Phase::Up) {
            return;
        }
        if let Some(con) = self.con.as_mut()
            && let Err(e) = self.enc.goodbye().exec(con)
        {
            tracing::warn!(error = %e, "could not leave the cluster cleanly");
        }
    }
}

/// A HEARTBEAT reply of a registered node.
struct Beat {
    others: Vec<u64>,
    nodes: Vec<String>,
    reaped: Vec<String>,
    /// The webhooks the reaping decided ([`super::decode::reaped_hooks`]).
    hooks: redis::Value,
}

impl Beat {
    fn parse(v: redis::Value) -> Option<Beat> {
        let redis::Value::Array(mut parts) = v else {
            return None;
        };
        if parts.len() != 5 || !matches!(parts[0], redis::Value::Int(1)) {
            return None;
        }
        let hooks = parts.pop()?;
        let reaped = strings(parts.pop()?);
        let nodes = strings(parts.pop()?);
        let others = match parts.pop()? {
            redis::Value::Array(v) => v
                .into_iter()
                .map(|x| match x {
                    redis::Value::Int(i) => i.max(0) as u64,
                    _ => 0,
                })
                .collect(),
            _ => Vec::new(),
        };
        Some(Beat {
            others,
            nodes,
            reaped,
            hooks,
        })
    }
}

fn strings(v: redis::Value) -> Vec<String> {
    match v {
        redis::Value::Array(v) => v
            .into_iter()
            .filter_map(|x| match x {
                redis::Value::BulkString(b) => String::from_utf8(b).ok(),
                redis::Value::SimpleString(s) => Some(s),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}
