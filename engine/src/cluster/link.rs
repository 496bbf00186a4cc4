//! The cluster link: the queue the workers hand their cluster work to, in front of the command
//! thread (`super::command`) that carries it to Redis.
//!
//! Workers never touch Redis. They push [`Command`]s into one crossbeam queue counted in bytes
//! like a mesh inbox (`crate::mesh`), with the same rules at its bound
//! ([`crate::config::Scaling::buffer_bytes`]): the HTTP API reserves room for a request's
//! publishes before it accepts it ([`Cluster::reserve`]) and answers 503 when there is none
//! after a short wait; everything caused by client frames is queued even past the bound, and
//! while the queue is over it the workers read no more client frames ([`Cluster::congested`]),
//! so a slow Redis slows the clients down instead of growing memory. The bytes stay counted
//! until Redis has run the command, so what the command thread holds while Redis is
//! unreachable is inside the same bound.
//!
//! Both cluster threads read the app table through one [`AppTable`], which a configuration
//! reload replaces ([`Cluster::set_apps`]) before it hands the new table to the workers: a
//! command about an app the reload added is queued after that, so the command thread, which
//! takes the table anew for every batch, always knows the app it names. Both threads record
//! the state of their connection and the round trips in [`Health`], which `/metrics` shows.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use ringcast_protocol::Limits;

use super::ClusterError;
use super::command::{CommandLoop, InboxCtl, Timing, connect, random_id};
use super::health::{Connection, Health, HealthReport};
use super::seen::Seen;
use super::wire::{Command, Encoder};
use crate::app::Apps;
use crate::ids::ShardId;
use crate::mesh::{Mesh, MeshMsg};
use crate::state::msg::ShardMsg;

/// How long a connection attempt to Redis may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for one reply from Redis before the connection counts as broken (then what
/// Redis did not answer is held, and this node serves its own subscribers itself).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest wait, after Redis lost its data, for the other nodes to re-assert theirs before
/// this node sends what it held.
pub const SETTLE_WAIT: Duration = Duration::from_secs(5);

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
    lease: Duration,
    tx: Sender<Command>,
    queued: Arc<AtomicUsize>,
    up: Arc<AtomicBool>,
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

impl Cluster {
    /// Joins the cluster of `scaling`: connects, loads the scripts, registers the node, and
    /// starts the command and inbox threads, which deliver to the workers of `mesh`.
    pub fn start(
        scaling: &crate::config::Scaling,
        apps: Arc<Apps>,
        mesh: Mesh,
        limits: &Limits,
        webhooks: Option<Arc<crate::webhook::Webhooks>>,
    ) -> Result<Arc<Cluster>, ClusterError> {
        // Several providers may be compiled in; the first one installed is used. A second
        // call finds it installed, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let node = random_id();
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
        let lease = scaling.lease();
        // The node registers before it serves anyone; it has nothing to re-assert yet.
        let registered_at = Instant::now();
        let ((_, epoch),): ((String, String),) = redis::pipe()
            .add_command(enc.register("", &random_id(), 0, lease.as_millis() as u64, false, 0))
            .cmd("SREM")
            .arg(format!("{}:rebuilding", scaling.prefix))
            .arg(&node)
            .ignore()
            .query(&mut con)
            .map_err(unreachable)?;
        let table = Arc::new(AppTable::new(apps));
        let health = Arc::new(Health::default());
        // The registration is the first heartbeat: it takes the lease.
        health.heartbeat(registered_at.elapsed());
        health.up(Connection::Commands);
        let seen = Arc::new(Seen::default());
        let (ctl_tx, ctl_rx) = crossbeam_channel::unbounded::<InboxCtl>();
        let inbox_con = connect(&client).map_err(unreachable)?;
        health.up(Connection::Inbox);
        let inbox_stop = Arc::new(AtomicBool::new(false));
        let inbox = super::inbox::InboxLoop::new(
            client.clone(),
            inbox_con,
            super::inbox::Where {
                prefix: &scaling.prefix,
                node: &node,
                epoch: &epoch,
            },
            super::inbox::Shared {
                table: table.clone(),
                health: health.clone(),
                stop: inbox_stop.clone(),
                seen: seen.clone(),
                ctl: ctl_rx,
            },
            mesh.clone(),
            limits,
        );
        let inbox_thread = std::thread::Builder::new()
            .name("ringcast-inbox".into())
            .spawn(move || inbox.run())
            .map_err(|e| ClusterError::Thread(e.to_string()))?;
        let (tx, rx) = crossbeam_channel::unbounded();
        let queued = Arc::new(AtomicUsize::new(0));
        let up = Arc::new(AtomicBool::new(true));
        let cmd_loop = CommandLoop::new(
            client,
            con,
            enc,
            table.clone(),
            health.clone(),
            mesh,
            limits.clone(),
            Timing {
                lease,
                settle: SETTLE_WAIT,
            },
            queued.clone(),
            up.clone(),
            seen,
            ctl_tx,
            epoch,
            scaling.buffer_bytes,
            webhooks,
        );
        let thread = std::thread::Builder::new()
            .name("ringcast-link".into())
            .spawn(move || cmd_loop.run(rx))
            .map_err(|e| ClusterError::Thread(e.to_string()))?;
        Ok(Arc::new(Cluster {
            node,
            prefix: scaling.prefix.clone(),
            redis: target,
            lease,
            tx,
            queued,
            up,
            max_bytes: scaling.buffer_bytes,
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

    /// Bytes queued for the command thread and held for Redis.
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// The queue's bound (`buffer_bytes`).
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

    /// How long this node's lease lasts without a heartbeat.
    pub fn lease(&self) -> Duration {
        self.lease
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

    /// Whether Redis takes operations as they come: otherwise they are held, and a publish
    /// is answered without waiting for Redis.
    pub fn up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
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
