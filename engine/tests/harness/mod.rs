//! A deterministic multi-worker simulation of the state core, in the spirit of quinn-proto's
//! `tests/util.rs`.
//!
//! # Why it exists
//!
//! The rules of presence, cache channels, users and owner facts are decided by messages that
//! cross workers: a join goes to the channel's owner, the owner's answer and its
//! `member_added` come back, a leave follows whenever the connection goes. Over real sockets a
//! test sees one interleaving of those messages, whichever the scheduler picked, and can only
//! wait and hope for the others. Here every worker of a server runs in one thread as a
//! [`Shard`] and an [`Owner`] with a simulated shell around them, every message between
//! workers waits in an explicit FIFO queue until the test delivers it, and time is an
//! `Instant` base plus durations the test advances: no sockets, no sleeps, no threads, and
//! every run is the same. A test can name one interleaving, or [`explore`] all of them.
//!
//! # What is modelled, and how faithfully
//!
//! Each simulated worker is what `crate::worker` is around its cores, minus the sockets:
//!
//! - one input at a time (a client message, a delivered mesh message, a close, a tick), after
//!   which [`Sim`] runs the worker's loop exactly as `Worker::run` does: first connections
//!   doomed by an overflowing queue, then the shard's effects, then the owner's, then the
//!   loopback queue, until all are empty;
//! - a message for the worker's own owner or shard goes into its loopback queue and is handled
//!   after the effects of the current input, never re-entrantly. The loopback is drained
//!   before the input returns, as the real shell drains it before it takes its next input, so
//!   it is not under the test's control: deferring it would model a shell that does not exist;
//! - a message for another worker goes into the queue `from -> to` of the mesh; those queues
//!   are FIFO (the real mesh is a channel per worker, FIFO for each sender) and are delivered
//!   only when the test says so ([`Sim::deliver`], [`Sim::deliver_nth`], [`Sim::deliver_all`]);
//! - `Effect::ToAll` goes into every other worker's queue, and publishes and frames for users
//!   are written to this worker's own subscribers at once, as `Worker::deliver_here` does;
//! - a connection is a [`SimConn`]: it records the frames it receives (decoded with the
//!   protocol crate's client-side decoder and parsed as JSON). One marked slow with
//!   [`Sim::make_slow`] is doomed by the next frame offered to it, as the real `offer` dooms a
//!   connection whose out-queue passed its bound: it is then closed with
//!   `Closing::slow_consumer()` (`shard.leave_all`, the close frame recorded), and the frame
//!   that overflowed is lost with the rest of its queue;
//! - a client close is [`Sim::close`] (the shell's `close_now`); a dropped TCP connection is
//!   [`Sim::drop_conn`] (`shard.remove`).
//!
//! # Checked all the time
//!
//! Every connection keeps the view of each presence channel that the protocol gives a client:
//! the member list of its `subscription_succeeded`, then each `member_added` and
//! `member_removed`. An event that does not fit the view (an added member already in it, a
//! removed one not in it, a member event on a channel it has no view of, a second
//! `subscription_succeeded`) is a violation, and every input or delivery that causes one
//! panics with the steps that led to it. Whenever no message is queued anywhere, [`Sim`] also
//! checks the facts against each other ([`Sim::quiet_violations`]): each owner's members and
//! subscription counts against the live subscriptions of every shard, each live presence
//! subscriber's view against the owner's members, each live subscriber's last
//! `subscription_count` against the live count, and each live watcher's last watchlist status
//! of every watched user against who is signed in.
//!
//! # Driving it
//!
//! A test builds a [`Sim`], feeds inputs as clients and as the HTTP API would, moves messages
//! when it wants them moved, and asserts on what each connection received and on the owners'
//! facts:
//!
//! ```text
//! let mut sim = Sim::new(2);                    // two workers, one app, default limits
//! let room = sim.channel_owned_by("presence-room-", 0);
//! let (o, j) = (sim.connect(0), sim.connect(1));
//! sim.subscribe_presence(o, &room, "o");        // answered at once: the owner is local
//! sim.subscribe_presence(j, &room, "j");        // the Join waits in queue 1 -> 0
//! sim.drop_conn(j);                             // gone before the owner answers
//! sim.deliver_all();                            // or deliver(1, 0), deliver(0, 1), ...
//! assert_eq!(sim.member_log(o, &room), ["+j", "-j"]);
//! assert_eq!(sim.members(&room), [("o".to_string(), 1)]);
//! ```
//!
//! `make_slow`, `close`, `signin`, `publish`, `terminate` and `advance` are the other inputs.
//! [`explore`] runs every interleaving of a few clients' actions with the deliveries they
//! cause; the property test of `state_harness.rs` runs random ones.

#![allow(dead_code)]

mod check;
mod conn;
mod explore;
mod shell;

pub use conn::{SimConn, data_of};
pub use explore::{Action, Actor, explore, explore_with, two_tabs_of_u};

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use conn::frame_text;
use ringcast::app::Apps;
use ringcast::config::AppConfig;
use ringcast::ids::{AppIdx, ConnKey};
use ringcast::owner::channel_owner;
use ringcast::state::msg::{Answer, Channel, ChannelInfo, OwnerMsg, Question, ShardMsg, UserId};
use ringcast::state::{Closing, Effect, Owner, Shard};
use ringcast::webhook::Hook;
use ringcast_protocol::Limits;
use ringcast_protocol::api::body::{Info, TriggerEvent};
use ringcast_protocol::pusher::auth::{channel_auth, signin_auth};
use ringcast_protocol::pusher::channel::ChannelName;
use ringcast_protocol::pusher::socket_id::SocketId;
use ringcast_protocol::ws::close::CloseCode;
use serde_json::{Value, json};

/// The app every test uses unless it builds its own.
pub const APP_ID: &str = "1";
pub const APP_KEY: &str = "harness-key";
pub const APP_SECRET: &str = "harness-secret";

/// The default app's settings.
pub fn app_config() -> AppConfig {
    AppConfig {
        id: APP_ID.into(),
        key: APP_KEY.into(),
        secret: APP_SECRET.into(),
        ..AppConfig::default()
    }
}

/// A handle on one simulated connection, valid for the whole run (also after it is gone).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Conn(pub usize);

/// A message on its way to a worker.
#[derive(Debug)]
pub enum Msg {
    Owner(OwnerMsg),
    Shard(ShardMsg),
}

impl Msg {
    /// A one-line description for step logs.
    fn describe(&self) -> String {
        match self {
            Msg::Owner(OwnerMsg::Join(j)) => format!(
                "Join {} {:?} from w{} conn {}",
                j.channel.as_str(),
                j.member.as_ref().map(|m| &*m.0),
                j.from.0,
                j.conn.slot
            ),
            Msg::Owner(OwnerMsg::Leave { channel, user, .. }) => {
                format!("Leave {} {:?}", channel.as_str(), user.as_deref())
            }
            Msg::Owner(OwnerMsg::Cache { channel, .. }) => format!("Cache {}", channel.as_str()),
            Msg::Owner(OwnerMsg::Signin { user, .. }) => format!("Signin {user}"),
            Msg::Owner(OwnerMsg::Signout { user, .. }) => format!("Signout {user}"),
            Msg::Shard(ShardMsg::Publish { channel, frame, .. }) => {
                format!("Publish {} {}", channel.as_str(), frame_text(frame))
            }
            Msg::Shard(ShardMsg::ToUser { user, frame, .. }) => {
                format!("ToUser {user} {}", frame_text(frame))
            }
            Msg::Shard(ShardMsg::ToConn { conn, .. }) => format!("ToConn {}", conn.slot),
            Msg::Shard(ShardMsg::JoinAnswer(a)) => format!(
                "JoinAnswer {} {:?} accepted={} conn {}",
                a.channel.as_str(),
                a.user.as_deref(),
                a.accepted,
                a.conn.slot
            ),
            Msg::Shard(ShardMsg::Terminate { user, .. }) => format!("Terminate {user}"),
        }
    }
}

/// A simulated connection's place in the run.
#[derive(Debug)]
struct ConnRef {
    worker: usize,
    key: ConnKey,
    app: AppIdx,
    socket_id: SocketId,
    /// What it had when its socket was removed.
    gone: Option<SimConn>,
}

/// One worker: its two cores and what its shell keeps between inputs.
struct Worker {
    shard: Shard<SimConn>,
    owner: Owner,
    loopback: VecDeque<Msg>,
    doomed: Vec<(ConnKey, Closing)>,
}

/// N workers of one server, their mesh and a clock, all under the test's control.
pub struct Sim {
    apps: Arc<Apps>,
    limits: Limits,
    workers: Vec<Worker>,
    /// `mesh[from][to]`: messages from one worker to another, in order.
    mesh: Vec<Vec<VecDeque<Msg>>>,
    epoch: Instant,
    elapsed: Duration,
    conns: Vec<ConnRef>,
    /// Every input and delivery so far, for failure messages.
    pub log: Vec<String>,
    /// Whether to check the facts against each other whenever nothing is queued.
    pub check_when_quiet: bool,
    /// Every webhook event the cores decided, with the simulated time and its app.
    pub hooks: Vec<(Duration, AppIdx, Hook)>,
}

impl Sim {
    /// `workers` workers serving the default app with default limits.
    pub fn new(workers: usize) -> Sim {
        Sim::with(workers, vec![app_config()], Limits::default())
    }

    /// `workers` workers serving `apps` with `limits`.
    pub fn with(workers: usize, apps: Vec<AppConfig>, limits: Limits) -> Sim {
        let apps = Arc::new(Apps::new(&apps));
        let epoch = Instant::now();
        let workers = (0..workers)
            .map(|i| Worker {
                shard: Shard::new(
                    ringcast::ids::ShardId(i as u16),
                    apps.clone(),
                    limits.clone(),
                    epoch,
                ),
                owner: Owner::new(apps.clone(), limits.max_presence_members),
                loopback: VecDeque::new(),
                doomed: Vec::new(),
            })
            .collect::<Vec<_>>();
        let n = workers.len();
        Sim {
            apps,
            limits,
            mesh: (0..n)
                .map(|_| (0..n).map(|_| VecDeque::new()).collect())
                .collect(),
            workers,
            epoch,
            elapsed: Duration::ZERO,
            conns: Vec::new(),
            log: Vec::new(),
            check_when_quiet: true,
            hooks: Vec::new(),
        }
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// The simulated time.
    pub fn now(&self) -> Instant {
        self.epoch + self.elapsed
    }

    /// The worker that owns channel `name` of the default app.
    pub fn owner_of(&self, name: &str) -> usize {
        channel_owner(AppIdx(0), name, self.workers.len()).0 as usize
    }

    /// The first name `{prefix}{i}` whose channel is owned by `worker`.
    pub fn channel_owned_by(&self, prefix: &str, worker: usize) -> String {
        (0..)
            .map(|i| format!("{prefix}{i}"))
            .find(|n| self.owner_of(n) == worker)
            .expect("some name hashes to every worker")
    }

    /// A validated channel name.
    pub fn channel(&self, name: &str) -> Channel {
        Arc::new(ChannelName::parse(name, &self.limits).expect("a valid channel name"))
    }

    // ---- connections and client messages -----------------------------------------------------

    /// A new connection of the default app on `worker`.
    pub fn connect(&mut self, worker: usize) -> Conn {
        self.connect_to(worker, AppIdx(0))
    }

    /// A new connection of `app` on `worker`.
    pub fn connect_to(&mut self, worker: usize, app: AppIdx) -> Conn {
        let n = self.conns.len();
        let socket_id = SocketId::new(worker as u64 + 1, n as u64 + 1);
        let key = self.workers[worker]
            .shard
            .connect(Some(app), socket_id, SimConn::new());
        self.conns.push(ConnRef {
            worker,
            key,
            app,
            socket_id,
            gone: None,
        });
        self.log
            .push(format!("connect c{n} on w{worker} (slot {})", key.slot));
        Conn(n)
    }

    /// All connections made so far.
    pub fn conns(&self) -> Vec<Conn> {
        (0..self.conns.len()).map(Conn).collect()
    }

    /// The worker a connection is on.
    pub fn worker_of(&self, c: Conn) -> usize {
        self.conns[c.0].worker
    }

    /// A connection's socket id, as the client knows it.
    pub fn socket_id(&self, c: Conn) -> String {
        self.conns[c.0].socket_id.to_string()
    }

    /// What a connection received (also once it is gone).
    pub fn conn(&self, c: Conn) -> &SimConn {
        let r = &self.conns[c.0];
        r.gone
            .as_ref()
            .or_else(|| self.workers[r.worker].shard.io(r.key))
            .expect("a connection is either in its shard or gone")
    }

    fn conn_mut(&mut self, c: Conn) -> &mut SimConn {
        let r = &mut self.conns[c.0];
        match r.gone.as_mut() {
            Some(g) => g,
            None => self.workers[r.worker]
                .shard
                .io_mut(r.key)
                .expect("a connection is either in its shard or gone"),
        }
    }

    /// Whether a connection is neither closing nor gone.
    pub fn is_live(&self, c: Conn) -> bool {
        self.conns[c.0].gone.is_none() && self.conn(c).closing.is_none()
    }

    /// The events a connection received, by name.
    pub fn events_named(&self, c: Conn, name: &str) -> Vec<Value> {
        self.conn(c)
            .events
            .iter()
            .filter(|e| e["event"] == name)
            .cloned()
            .collect()
    }

    /// The member events a connection received on `channel`: `+id` and `-id`, in order.
    pub fn member_log(&self, c: Conn, channel: &str) -> Vec<String> {
        self.conn(c)
            .events
            .iter()
            .filter(|e| e["channel"] == channel)
            .filter_map(|e| {
                let sign = match e["event"].as_str()? {
                    "pusher_internal:member_added" => "+",
                    "pusher_internal:member_removed" => "-",
                    _ => return None,
                };
                Some(format!("{sign}{}", data_of(e)["user_id"].as_str()?))
            })
            .collect()
    }

    /// The channels a connection is subscribed to, by the shard's records, sorted.
    pub fn subscriptions(&self, c: Conn) -> Vec<String> {
        let r = &self.conns[c.0];
        let mut subs: Vec<String> = self.workers[r.worker]
            .shard
            .subscriptions(r.key)
            .iter()
            .map(|ch| ch.as_str().to_string())
            .collect();
        subs.sort();
        subs
    }

    /// The presence user a connection is a member of `channel` as, by the shard's records.
    pub fn presence_user(&self, c: Conn, channel: &str) -> Option<String> {
        let r = &self.conns[c.0];
        self.workers[r.worker]
            .shard
            .presence_user(r.key, channel)
            .map(|u| u.to_string())
    }

    /// Joins of a connection that wait for their owner.
    pub fn pending_joins(&self, c: Conn) -> usize {
        let r = &self.conns[c.0];
        self.workers[r.worker].shard.pending_joins(r.key)
    }

    /// Sends a Pusher client message on a connection.
    pub fn send_json(&mut self, c: Conn, msg: &Value) {
        let r = &self.conns[c.0];
        let (w, key) = (r.worker, r.key);
        self.log.push(format!("c{} sends {msg}", c.0));
        let now = self.now();
        self.workers[w]
            .shard
            .handle_text(key, msg.to_string().into_bytes(), now);
        self.run(w);
    }

    /// Subscribes to a public, cache or private channel (signed as an auth endpoint would).
    pub fn subscribe(&mut self, c: Conn, channel: &str) {
        let mut data = json!({ "channel": channel });
        if channel.starts_with("private-") || channel.starts_with("private-cache-") {
            let auth = channel_auth(APP_KEY, APP_SECRET, &self.socket_id(c), channel, None);
            data["auth"] = auth.into();
        }
        self.send_json(c, &json!({"event": "pusher:subscribe", "data": data}));
    }

    /// Joins a presence channel as `user`, with `channel_data` signed as an auth endpoint would.
    pub fn subscribe_presence(&mut self, c: Conn, channel: &str, user: &str) {
        let channel_data = json!({"user_id": user, "user_info": {"name": user}}).to_string();
        let auth = channel_auth(
            APP_KEY,
            APP_SECRET,
            &self.socket_id(c),
            channel,
            Some(&channel_data),
        );
        self.send_json(
            c,
            &json!({"event": "pusher:subscribe", "data": {
                "channel": channel, "auth": auth, "channel_data": channel_data,
            }}),
        );
    }

    /// Unsubscribes; the client forgets what it knew of the channel.
    pub fn unsubscribe(&mut self, c: Conn, channel: &str) {
        let conn = self.conn_mut(c);
        conn.views.remove(channel);
        conn.counts.remove(channel);
        self.send_json(
            c,
            &json!({"event": "pusher:unsubscribe", "data": {"channel": channel}}),
        );
    }

    /// Signs in as `user` watching `watchlist`.
    pub fn signin(&mut self, c: Conn, user: &str, watchlist: &[&str]) {
        let user_data =
            json!({"id": user, "user_info": {"name": user}, "watchlist": watchlist}).to_string();
        let auth = signin_auth(APP_KEY, APP_SECRET, &self.socket_id(c), &user_data);
        self.send_json(
            c,
            &json!({"event": "pusher:signin", "data": {"auth": auth, "user_data": user_data}}),
        );
    }

    /// The client sends a close frame with 1000: the shell starts closing the connection.
    pub fn close(&mut self, c: Conn) {
        self.close_with(
            c,
            Closing {
                reason: "",
                ..Closing::websocket(CloseCode::NORMAL)
            },
        );
    }

    /// The shell starts closing a connection, as `Worker::close` does.
    pub fn close_with(&mut self, c: Conn, how: Closing) {
        let r = &self.conns[c.0];
        let (w, key) = (r.worker, r.key);
        self.log.push(format!("close c{} with {}", c.0, how.code));
        self.close_now(w, key, how);
        self.run(w);
    }

    /// From now on the connection reads nothing: the next frame offered to it overflows its
    /// queue.
    pub fn make_slow(&mut self, c: Conn) {
        self.log.push(format!("c{} becomes slow", c.0));
        self.conn_mut(c).slow = true;
    }

    /// The connection's socket is gone (its reader ended): the shard removes it.
    pub fn drop_conn(&mut self, c: Conn) {
        let r = &self.conns[c.0];
        let (w, key) = (r.worker, r.key);
        if r.gone.is_some() {
            return;
        }
        self.log.push(format!("drop c{}", c.0));
        let io = self.workers[w]
            .shard
            .remove(key)
            .expect("a connection not yet gone is in its shard");
        self.conns[c.0].gone = Some(io);
        self.run(w);
    }

    // ---- the HTTP API's inputs -----------------------------------------------------------

    /// An API publish of `event` with `data` to `channel`, received by `worker`.
    pub fn publish(&mut self, worker: usize, channel: &str, event: &str, data: &str) {
        let ev = TriggerEvent {
            name: event.into(),
            data: data.into(),
            channels: vec![ChannelName::parse(channel, &self.limits).expect("a valid channel")],
            socket_id: None,
            info: Info::default(),
        };
        self.log
            .push(format!("publish {event} {data} on {channel} at w{worker}"));
        self.workers[worker].shard.trigger(AppIdx(0), &ev);
        self.run(worker);
    }

    /// The API's `terminate_connections` for `user`, received by `worker`.
    pub fn terminate(&mut self, worker: usize, user: &str) {
        self.log.push(format!("terminate {user} at w{worker}"));
        let msg = ShardMsg::Terminate {
            app: AppIdx(0),
            user: UserId::from(user),
        };
        self.apply(worker, Effect::ToAll(msg));
        self.run(worker);
    }

    /// Advances the clock and runs every worker's periodic step (the owner's tick).
    pub fn advance(&mut self, d: Duration) {
        self.elapsed += d;
        self.log
            .push(format!("advance {d:?} to {:?}", self.elapsed));
        let now = self.now();
        for w in 0..self.workers.len() {
            self.workers[w].owner.tick(now);
            self.run(w);
        }
    }

    /// The webhook events decided so far, as `name channel [user_id]` lines (a client event as
    /// `client_event channel event data socket_id [user_id]`, a count with its number).
    pub fn hook_log(&self) -> Vec<String> {
        self.hooks
            .iter()
            .map(|(_, _, h)| {
                let j = h.to_json();
                let mut line = format!(
                    "{} {}",
                    j["name"].as_str().unwrap_or(""),
                    j["channel"].as_str().unwrap_or("")
                );
                for f in [
                    "event",
                    "data",
                    "socket_id",
                    "user_id",
                    "subscription_count",
                ] {
                    if let Some(v) = j.get(f) {
                        match v.as_str() {
                            Some(s) => line.push_str(&format!(" {s}")),
                            None => line.push_str(&format!(" {v}")),
                        }
                    }
                }
                line
            })
            .collect()
    }

    /// Simulated times of the webhook events, from the start.
    pub fn hook_times(&self) -> Vec<Duration> {
        self.hooks.iter().map(|(t, _, _)| *t).collect()
    }

    /// The periodic step of a worker that stops: its owner sends every delayed webhook.
    pub fn finish(&mut self, worker: usize) {
        self.log.push(format!("w{worker} finishes"));
        self.workers[worker].owner.flush_delayed();
        self.run(worker);
    }

    /// An owner's answer to a question about the default app's channel `name`.
    pub fn channel_info(&self, name: &str) -> ChannelInfo {
        let channel = self.channel(name);
        let owner = self.owner_of(name);
        match self.workers[owner].owner.answer(
            &Question::Channel {
                app: AppIdx(0),
                channel,
            },
            self.now(),
        ) {
            Answer::Channel(info) => info,
            other => panic!("a channel question got {other:?}"),
        }
    }

    /// The presence members of the default app's channel `name`, with their socket counts.
    pub fn members(&self, name: &str) -> Vec<(String, u32)> {
        let channel = self.channel(name);
        self.workers[self.owner_of(name)]
            .owner
            .members(AppIdx(0), &channel)
            .into_iter()
            .map(|(u, n)| (u.to_string(), n))
            .collect()
    }

    // ---- the mesh ---------------------------------------------------------------------------

    /// The queues that hold messages: `(from, to, length)`, in a fixed order.
    pub fn queued(&self) -> Vec<(usize, usize, usize)> {
        let mut q = Vec::new();
        for (from, row) in self.mesh.iter().enumerate() {
            for (to, queue) in row.iter().enumerate() {
                if !queue.is_empty() {
                    q.push((from, to, queue.len()));
                }
            }
        }
        q
    }

    /// Whether no message is on its way anywhere.
    pub fn is_quiet(&self) -> bool {
        self.mesh.iter().flatten().all(VecDeque::is_empty)
    }

    /// Messages waiting from `from` to `to`.
    pub fn queue_len(&self, from: usize, to: usize) -> usize {
        self.mesh[from][to].len()
    }

    /// Delivers the oldest message from `from` to `to`; `false` when there is none.
    pub fn deliver(&mut self, from: usize, to: usize) -> bool {
        let Some(msg) = self.mesh[from][to].pop_front() else {
            return false;
        };
        self.log
            .push(format!("deliver w{from}->w{to}: {}", msg.describe()));
        self.handle_msg(to, msg);
        self.run(to);
        true
    }

    /// Delivers the oldest message of the `k`-th non-empty queue (modulo their number);
    /// `false` when nothing is queued.
    pub fn deliver_nth(&mut self, k: usize) -> bool {
        let q = self.queued();
        if q.is_empty() {
            return false;
        }
        let (from, to, _) = q[k % q.len()];
        self.deliver(from, to)
    }

    /// Delivers everything, one message of each non-empty queue in turn, until nothing is
    /// queued.
    pub fn deliver_all(&mut self) {
        while self.deliver_nth(0) {}
    }

    /// Delivers everything from `from` to `to` only.
    pub fn deliver_queue(&mut self, from: usize, to: usize) {
        while self.deliver(from, to) {}
    }
}
