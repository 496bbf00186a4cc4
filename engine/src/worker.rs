//! A worker: one pinned thread's connections, channels and fan-out.
//!
//! All of a worker's state lives in one [`Worker`] behind an `Rc<RefCell<_>>` on its own thread;
//! its tasks (the acceptor, one reader per connection, writers while a socket is full, the
//! sweeper and the mesh inbox) borrow it only between awaits, so a borrow never spans a
//! suspension point and never conflicts.
//!
//! Outbound bytes follow one rule: a frame is offered to the socket directly, and only what the
//! socket does not take right away is queued (bounded by `max_outbound_bytes`) for a writer task
//! that waits for writability. A broadcast to ten thousand idle-but-healthy subscribers is thus
//! ten thousand `sendmsg` calls on one shared buffer and no allocation per recipient.

use std::cell::RefCell;
use std::collections::HashMap;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use monoio::net::TcpStream;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use ringcast_protocol::pusher::event::ServerEvent;
use ringcast_protocol::pusher::socket_id::SocketId;
use ringcast_protocol::ws::frame::Opcode;
use slab::Slab;

use crate::app::Apps;
use crate::config::Config;
use crate::conn::{CloseClock, Conn, ConnKind, Offer, OutQueue, Sub};
use crate::ids::{AppIdx, ConnKey, ShardId};
use crate::mesh::{Mesh, MeshMsg};
use crate::owner::{ChannelOp, Owned, UserOp, user_owner};
use crate::registry::Registry;
use crate::sys;

/// RFC 6455's "no status code was present": as a [`Closing`] code it means "send an empty close
/// frame".
pub const NO_STATUS: u16 = 1005;

/// Seconds a closing connection gets to take what it still has to take, close frame included;
/// another period follows while it keeps reading.
pub const CLOSE_GRACE_SECS: u32 = 5;

/// What every worker shares, read-only.
pub struct Shared {
    pub config: Config,
    pub apps: Apps,
    pub mesh: Mesh,
}

/// How a connection is to be closed.
#[derive(Clone, Copy, Debug)]
pub struct Closing {
    /// The close code.
    pub code: u16,
    /// The close reason.
    pub reason: &'static str,
    /// Send a `pusher:error` with the same code first (pusher-js reads it during connection
    /// set-up; Reverb clients expect it).
    pub pusher_error: bool,
    /// Drop queued frames that have not started (only for a consumer that is too slow: its
    /// queue is what must be freed).
    pub drop_queue: bool,
}

/// One worker's state.
pub struct Worker {
    /// This worker's index.
    pub id: ShardId,
    /// Configuration, apps and the mesh.
    pub shared: Arc<Shared>,
    /// Open WebSocket connections.
    pub conns: Slab<Conn>,
    /// Channel subscriptions of those connections.
    pub registry: Registry,
    /// A read buffer shared by every connection of the worker.
    pub scratch: Vec<u8>,
    /// Whether the worker is shutting down: it accepts no connections and no publishes.
    pub shutting_down: bool,
    /// Whether it is closing its connections for shutdown.
    pub draining: bool,
    /// The listening socket, to stop accepting on shutdown.
    pub listener_fd: Option<RawFd>,
    generation: u32,
    epoch: Instant,
    rng: SmallRng,
    me: Weak<RefCell<Worker>>,
    ping_frame: Bytes,
    doomed: Vec<(ConnKey, Closing)>,
    /// Facts this worker owns for the whole server.
    pub owned: Owned,
    /// Local connections signed in as each user.
    pub signed_in: HashMap<(AppIdx, Arc<str>), Vec<ConnKey>>,
    /// Handshakes and abandoned queues since the sweep last handed freed memory back.
    churn_since_trim: u32,
}

/// Churn after which the sweep hands freed memory back to the kernel: a thousand handshakes,
/// or one abandoned outbound queue (a slow consumer's can hold thousands of entries).
const TRIM_AFTER_CHURN: u32 = 1000;

/// Size of the per-worker read buffer.
const SCRATCH: usize = 64 * 1024;

impl Worker {
    /// A new worker with no connections, behind the `Rc<RefCell<_>>` its tasks share.
    pub fn new(id: ShardId, shared: Arc<Shared>) -> Rc<RefCell<Worker>> {
        let apps = shared.apps.len();
        Rc::new_cyclic(|me| {
            RefCell::new(Worker {
                id,
                shared,
                conns: Slab::new(),
                registry: Registry::new(apps),
                scratch: vec![0; SCRATCH],
                shutting_down: false,
                draining: false,
                listener_fd: None,
                generation: 0,
                epoch: Instant::now(),
                rng: SmallRng::from_entropy(),
                me: me.clone(),
                ping_frame: ServerEvent::Ping.to_frame(),
                doomed: Vec::new(),
                owned: Owned::new(apps),
                signed_in: HashMap::new(),
                churn_since_trim: 0,
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

    /// Adds an upgraded connection and returns its key.
    pub fn insert(
        &mut self,
        stream: Rc<TcpStream>,
        kind: ConnKind,
        socket_id: SocketId,
    ) -> ConnKey {
        self.generation = self.generation.wrapping_add(1);
        self.churn_since_trim = self.churn_since_trim.saturating_add(1);
        let generation = self.generation;
        let now = self.now();
        let fd = stream.as_raw_fd();
        let slot = self.conns.insert(Conn {
            generation,
            stream,
            fd,
            kind,
            socket_id,
            out: OutQueue::default(),
            subs: Vec::new(),
            last_seen: now,
            pinged_at: None,
            closing: None,
            writer_active: false,
            client_events: (0, 0),
            user: None,
        });
        ConnKey {
            slot: slot as u32,
            generation,
        }
    }

    /// The connection behind `key`, unless it has left.
    pub fn get(&self, key: ConnKey) -> Option<&Conn> {
        self.conns
            .get(key.slot as usize)
            .filter(|c| c.generation == key.generation)
    }

    /// The connection behind `key`, mutably, unless it has left.
    pub fn get_mut(&mut self, key: ConnKey) -> Option<&mut Conn> {
        self.conns
            .get_mut(key.slot as usize)
            .filter(|c| c.generation == key.generation)
    }

    /// Records that a frame arrived from `key` (any frame counts as activity).
    pub fn touch(&mut self, key: ConnKey) {
        let now = self.now();
        if let Some(c) = self.get_mut(key) {
            c.last_seen = now;
            c.pinged_at = None;
        }
    }

    /// Sends `frame` to one connection.
    pub fn send(&mut self, key: ConnKey, frame: Bytes) {
        let max = self.shared.config.limits.max_outbound_bytes;
        if let Some(c) = self.conns.get_mut(key.slot as usize)
            && c.generation == key.generation
        {
            offer(&self.me, &mut self.doomed, max, key, c, &frame);
        }
        self.close_doomed();
    }

    /// Sends a server event to one connection.
    pub fn send_event(&mut self, key: ConnKey, event: &ServerEvent<'_>) {
        self.send(key, event.to_frame());
    }

    /// Delivers `frame` to this worker's subscribers of `channel`, except `except`.
    pub fn deliver_local(
        &mut self,
        app: AppIdx,
        channel: &str,
        frame: &Bytes,
        except: Option<SocketId>,
    ) {
        let Some(ci) = self.registry.find(app, channel) else {
            return;
        };
        let max = self.shared.config.limits.max_outbound_bytes;
        for &key in &self.registry.get(ci).subs {
            let Some(c) = self.conns.get_mut(key.slot as usize) else {
                continue;
            };
            if c.generation != key.generation || except == Some(c.socket_id) {
                continue;
            }
            offer(&self.me, &mut self.doomed, max, key, c, frame);
        }
        self.close_doomed();
    }

    /// Publishes an encoded channel frame on every worker: the others through the mesh first,
    /// then this one.
    pub fn publish(&mut self, app: AppIdx, channel: &str, frame: Bytes, except: Option<SocketId>) {
        if self.shared.mesh.len() > 1 {
            let name: Arc<str> = Arc::from(channel);
            self.shared
                .mesh
                .publish_to_others(self.id, app, &name, &frame, except);
        }
        self.deliver_local(app, channel, &frame, except);
    }

    /// Acts on messages from other workers.
    pub fn on_mesh(&mut self, msg: MeshMsg) {
        match msg {
            MeshMsg::Publish {
                app,
                channel,
                frame,
                except,
            } => self.deliver_local(app, &channel, &frame, except),
            MeshMsg::ToUser { app, user, frame } => {
                let keys = self
                    .signed_in
                    .get(&(app, user))
                    .cloned()
                    .unwrap_or_default();
                for key in keys {
                    self.send(key, frame.clone());
                }
            }
            MeshMsg::ToConn { conn, frames } => {
                for f in frames {
                    self.send(conn, f);
                }
            }
            MeshMsg::Channel(op) => self.on_channel_op(op),
            MeshMsg::JoinAnswer(answer) => self.on_join_answer(answer),
            MeshMsg::User(op) => self.on_user_op(op),
            MeshMsg::Terminate { app, user } => self.terminate_user(app, &user),
            MeshMsg::Ask(q, reply) => {
                let _ = reply.send(self.answer(&q));
            }
            MeshMsg::Quiesce(ack) => {
                self.quiesce();
                let _ = ack.send(());
            }
            MeshMsg::Drain => self.begin_drain(),
        }
    }

    /// Subscribes `key` to `channel`; `false` if it already was.
    pub fn subscribe(&mut self, key: ConnKey, app: AppIdx, channel: &str) -> bool {
        if let Some(ci) = self.registry.find(app, channel)
            && self
                .get(key)
                .is_some_and(|c| c.subs.iter().any(|s| s.chan == ci))
        {
            return false;
        }
        let (chan, pos) = self.registry.add(app, channel, key);
        if let Some(c) = self.get_mut(key) {
            c.subs.push(Sub { chan, pos });
        }
        true
    }

    /// Unsubscribes `key` from `channel`; `false` if it was not subscribed.
    pub fn unsubscribe(&mut self, key: ConnKey, app: AppIdx, channel: &str) -> bool {
        let Some(ci) = self.registry.find(app, channel) else {
            return false;
        };
        let Some(c) = self.get_mut(key) else {
            return false;
        };
        let Some(i) = c.subs.iter().position(|s| s.chan == ci) else {
            return false;
        };
        let sub = c.subs.swap_remove(i);
        self.leave(key, sub);
        true
    }

    /// Removes one subscription and tells the channel's owner.
    fn leave(&mut self, key: ConnKey, sub: Sub) {
        let ch = self.registry.get(sub.chan);
        let (app, channel) = (ch.app, ch.name.clone());
        let user = self.get_mut(key).and_then(|c| {
            let u = c.user.as_mut()?;
            let i = u.presence.iter().position(|(ch, _)| *ch == channel)?;
            Some(u.presence.swap_remove(i).1)
        });
        self.remove_sub(sub);
        let owner = self.owner_of(app, &channel);
        self.to_worker(
            owner,
            MeshMsg::Channel(ChannelOp::Leave { app, channel, user }),
        );
    }

    /// Removes one registry entry and fixes the position of the subscriber moved into its place.
    fn remove_sub(&mut self, sub: Sub) {
        if let Some(moved) = self.registry.remove(sub.chan, sub.pos)
            && let Some(m) = self.get_mut(moved)
            && let Some(s) = m.subs.iter_mut().find(|s| s.chan == sub.chan)
        {
            s.pos = sub.pos;
        }
    }

    /// Removes every subscription of `key` and signs it out: what a connection that leaves must
    /// undo, with each owner told.
    fn leave_everything(&mut self, key: ConnKey) {
        let (subs, user) = match self.get_mut(key) {
            Some(c) => (std::mem::take(&mut c.subs), c.user.take()),
            None => return,
        };
        if let Some(c) = self.get_mut(key) {
            // Presence records are still needed by `leave`; pending joins are undone when their
            // answers find the connection gone.
            c.user = user.map(|mut u| {
                u.pending.clear();
                u
            });
        }
        for sub in subs {
            self.leave(key, sub);
        }
        self.sign_out(key);
    }

    /// Forgets the sign-in of `key`, telling the user owner.
    pub fn sign_out(&mut self, key: ConnKey) {
        let Some(c) = self.get_mut(key) else { return };
        let Some(u) = c.user.as_mut() else { return };
        let Some((user, _)) = u.signed_in.take() else {
            return;
        };
        let watchlist = std::mem::take(&mut u.watchlist);
        let ConnKind::App(app) = c.kind else { return };
        let index_key = (app, user.clone());
        if let Some(keys) = self.signed_in.get_mut(&index_key) {
            keys.retain(|k| *k != key);
            if keys.is_empty() {
                self.signed_in.remove(&index_key);
            }
        }
        let owner = user_owner(app, self.shared.mesh.len());
        self.to_worker(
            owner,
            MeshMsg::User(UserOp::Signout {
                app,
                user,
                watchlist,
            }),
        );
    }

    /// Starts closing a connection: it leaves its channels at once, gets its close frame (after
    /// what is already queued, unless `drop_queue`), and its socket is shut once that is written,
    /// or reset once the peer took nothing for [`CLOSE_GRACE_SECS`].
    pub fn close(&mut self, key: ConnKey, how: Closing) {
        let now = self.now();
        match self.get_mut(key) {
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
        self.leave_everything(key);
        let mut frames = Vec::with_capacity(2);
        if how.pusher_error {
            frames.push(
                ServerEvent::Error {
                    code: Some(how.code),
                    message: how.reason,
                }
                .to_frame(),
            );
        }
        frames.push(if how.code == NO_STATUS {
            // Answering a close frame that carried no code: the reply carries none either.
            ringcast_protocol::ws::encode::frame(Opcode::Close, &[])
        } else {
            ringcast_protocol::ws::encode::close(how.code, how.reason)
        });
        let Some(c) = self
            .conns
            .get_mut(key.slot as usize)
            .filter(|c| c.generation == key.generation)
        else {
            return;
        };
        if how.drop_queue {
            c.out.drop_unstarted();
            self.churn_since_trim = TRIM_AFTER_CHURN;
        }
        let mut failed = false;
        for f in frames {
            failed |= c.out.offer(c.fd, &f) == Offer::Failed;
        }
        c.closing = Some(CloseClock {
            since: now,
            pending: c.pending_bytes(),
        });
        if failed {
            sys::shutdown(c.fd, true, true);
        } else if c.out.is_empty() {
            sys::shutdown(c.fd, false, true);
        } else {
            ensure_writer(&self.me, key, c);
        }
    }

    fn close_doomed(&mut self) {
        while let Some((key, how)) = self.doomed.pop() {
            self.close(key, how);
        }
    }

    /// Final removal of a connection whose reader has finished.
    pub fn remove(&mut self, key: ConnKey) {
        self.leave_everything(key);
        if self.get(key).is_none() {
            return;
        }
        let c = self.conns.remove(key.slot as usize);
        if let ConnKind::App(app) = c.kind {
            self.shared.apps.get(app).disconnect();
        }
    }

    /// The periodic liveness check: pings silent connections, closes those that did not
    /// answer with 4201, and shuts or resets the sockets of closing connections whose grace
    /// period ran out.
    pub fn sweep(&mut self) {
        self.flush_counts();
        if self.churn_since_trim >= TRIM_AFTER_CHURN {
            self.churn_since_trim = 0;
            sys::release_free_memory();
        }
        let now = self.now();
        let mut ping = Vec::new();
        let mut dead = Vec::new();
        for (slot, c) in self.conns.iter_mut() {
            let key = ConnKey {
                slot: slot as u32,
                generation: c.generation,
            };
            if let Some(clock) = c.closing {
                if now.saturating_sub(clock.since) >= CLOSE_GRACE_SECS {
                    let pending = c.pending_bytes();
                    if pending == 0 {
                        // Everything was delivered; only the peer's close reply is missing.
                        sys::shutdown(c.fd, true, true);
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
                        sys::abort(c.fd);
                    }
                }
                continue;
            }
            let ConnKind::App(app) = c.kind else { continue };
            let cfg = &self.shared.apps.get(app).cfg;
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
        for key in ping {
            let f = self.ping_frame.clone();
            self.send(key, f);
        }
        for key in dead {
            self.close(
                key,
                Closing {
                    code: 4201,
                    reason: "Pong reply not received in time",
                    pusher_error: true,
                    drop_queue: false,
                },
            );
        }
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
        let keys: Vec<ConnKey> = self
            .conns
            .iter()
            .map(|(slot, c)| ConnKey {
                slot: slot as u32,
                generation: c.generation,
            })
            .collect();
        for key in keys {
            self.close(
                key,
                Closing {
                    code: 4200,
                    reason: "Server shutting down",
                    pusher_error: false,
                    drop_queue: false,
                },
            );
        }
    }

    /// Number of open WebSocket connections on this worker.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Whether this worker has no open WebSocket connection.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
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
    match c.out.offer(c.fd, frame) {
        Offer::Sent => {}
        Offer::Queued => {
            if c.out.bytes() > max {
                doomed.push((
                    key,
                    Closing {
                        code: 4100,
                        reason: "Over capacity: the connection reads too slowly",
                        pusher_error: false,
                        drop_queue: true,
                    },
                ));
            } else {
                ensure_writer(me, key, c);
            }
        }
        Offer::Failed => {
            sys::shutdown(c.fd, true, true);
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
        let Some(c) = w.get_mut(key) else { return };
        if ready.is_err() {
            c.writer_active = false;
            sys::shutdown(c.fd, true, true);
            return;
        }
        match c.out.flush(c.fd) {
            Ok(true) => {
                c.writer_active = false;
                if c.is_closing() {
                    sys::shutdown(c.fd, false, true);
                }
                return;
            }
            Ok(false) => {}
            Err(_) => {
                c.writer_active = false;
                sys::shutdown(c.fd, true, true);
                return;
            }
        }
    }
}
