//! The inbox thread: this node's ordered log, read from Redis and handed to the workers.
//!
//! Everything that reaches this node through the cluster is an entry of one stream,
//! `{prefix}:inbox:{node}`: other nodes' publishes, member events, `subscription_count`
//! events, frames for a signed-in user, terminations, and this node's own join answers and
//! watchlist splits. The thread reads it with a blocking `XREAD` on a connection of its own,
//! decodes each entry ([`Decoder`]) and pushes the result into the workers' mesh inboxes, in
//! stream order. One sender, FIFO queues: every worker sees the entries in the order the
//! scripts wrote them, which is what makes a join answer and the member events around it
//! arrive in the order the script decided them.
//!
//! A publish of an API request or a client event carries its origin, number and place in its
//! request, and is delivered only if it is new here (`super::seen`), so one that reaches the
//! node twice is delivered once, and every event of a batch or of a multi-channel trigger is
//! delivered.
//!
//! While any worker's mesh inbox is over its bound the thread stops reading; the stream holds
//! the excess in Redis (capped by `MAXLEN ~ 100000`), not this process. Entries already read are
//! trimmed from the stream about once a second. At the same pace the thread reads the data
//! set's epoch (`{P}:epoch`): a Redis that lost its data (a restart without persistence, a
//! flush) starts new streams, which are read from their beginning.
//!
//! The thread runs until the link stops (`Cluster::stop`), which it sees within one blocking
//! read: a process that goes on after it served (the supervisor of a restart) keeps no Redis
//! connection open.
//!
//! When the command thread re-asserts the node's share of the facts, it asks this thread for a
//! fence ([`InboxCtl::Fence`]): between two reads, with everything read so far handed to the
//! workers, the thread asks every worker for its snapshot. No answer to a join read before can
//! then reach a worker after its snapshot was taken.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use ringcast_protocol::Limits;

use super::command::{InboxCtl, connect};
use super::decode::{Decoder, Delivery, Fields};
use super::health::{Connection, Health};
use super::link::{AppTable, to_all};
use super::seen::Seen;
use crate::ids::ShardId;
use crate::mesh::{Mesh, MeshMsg};

/// Most entries read per `XREAD`.
const COUNT: usize = 1000;
/// How long one `XREAD` blocks when the stream has nothing new.
pub const BLOCK: Duration = Duration::from_millis(1000);
/// How often read entries are trimmed from the stream and the epoch is read.
const TRIM_EVERY: Duration = Duration::from_secs(1);

/// Whose stream the thread reads.
pub struct Where<'a> {
    /// The key prefix.
    pub prefix: &'a str,
    /// This node's id.
    pub node: &'a str,
    /// The data set the node registered in.
    pub epoch: &'a str,
}

/// What the inbox thread shares with the link.
pub struct Shared {
    /// The app table, replaced by a reload.
    pub table: Arc<AppTable>,
    /// Where the thread records its connection's state.
    pub health: Arc<Health>,
    /// Set when the link stops.
    pub stop: Arc<AtomicBool>,
    /// The publishes delivered here, with the command thread.
    pub seen: Arc<Seen>,
    /// The command thread's requests.
    pub ctl: Receiver<InboxCtl>,
}

/// The inbox thread's state.
pub struct InboxLoop {
    client: redis::Client,
    con: Option<redis::Connection>,
    shared: Shared,
    key: String,
    epoch_key: String,
    /// The data set the stream belongs to, as last read.
    epoch: Option<String>,
    /// The id of the last entry read (`0` before the first).
    last: String,
    dec: Decoder,
    mesh: Mesh,
    max_mesh: usize,
    trimmed_at: Instant,
    logged_at: Option<Instant>,
}

type Entry = (String, Vec<(Vec<u8>, Vec<u8>)>);

impl InboxLoop {
    /// The thread of the stream of `at`, delivering to the workers of `mesh`.
    pub fn new(
        client: redis::Client,
        con: redis::Connection,
        at: Where<'_>,
        shared: Shared,
        mesh: Mesh,
        limits: &Limits,
    ) -> InboxLoop {
        InboxLoop {
            client,
            con: Some(con),
            key: format!("{}:inbox:{}", at.prefix, at.node),
            epoch_key: format!("{}:epoch", at.prefix),
            epoch: Some(at.epoch.to_string()),
            last: "0".into(),
            dec: Decoder {
                apps: shared.table.current(),
                limits: limits.clone(),
            },
            shared,
            max_mesh: limits.max_mesh_bytes,
            mesh,
            trimmed_at: Instant::now(),
            logged_at: None,
        }
    }

    fn stopped(&self) -> bool {
        self.shared.stop.load(Ordering::Acquire)
    }

    /// Reads and delivers until the link stops.
    pub fn run(mut self) {
        while !self.stopped() {
            self.answer_ctl();
            while (0..self.mesh.len()).any(|i| self.mesh.queued(ShardId(i as u16)) > self.max_mesh)
            {
                if self.stopped() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            let entries = match self.read() {
                Ok(e) => {
                    self.shared.health.up(Connection::Inbox);
                    e
                }
                Err(e) => {
                    self.con = None;
                    self.shared.health.lost(Connection::Inbox);
                    if self
                        .logged_at
                        .is_none_or(|t| t.elapsed() >= Duration::from_secs(5))
                    {
                        self.logged_at = Some(Instant::now());
                        tracing::warn!(error = %e, "cannot read this node's cluster inbox");
                    }
                    self.answer_ctl();
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
            };
            // After the read: an entry about an app that a reload added was written after
            // the reload set the table (or it is another node's, as racy as its reload).
            self.dec.apps = self.shared.table.current();
            self.deliver(entries);
            if self.trimmed_at.elapsed() >= TRIM_EVERY {
                self.trimmed_at = Instant::now();
                self.trim_and_check();
            }
        }
    }

    /// Acts on the command thread's requests (everything read is already with the workers).
    fn answer_ctl(&mut self) {
        while let Ok(InboxCtl::Fence) = self.shared.ctl.try_recv() {
            for i in 0..self.mesh.len() {
                self.mesh.send(ShardId(i as u16), MeshMsg::Snapshot);
            }
        }
    }

    fn deliver(&mut self, entries: Vec<Entry>) {
        if entries.is_empty() {
            return;
        }
        let mut seen = self.shared.seen.lock();
        for (id, fields) in entries {
            for d in self.dec.decode(&Fields(&fields)) {
                match d {
                    Delivery::All(msg) => to_all(&self.mesh, msg),
                    Delivery::Op {
                        origin,
                        op,
                        item,
                        end,
                        msg,
                    } => {
                        if seen.admit(&origin, op, item, end) {
                            to_all(&self.mesh, msg);
                        }
                    }
                    Delivery::One(w, msg) if (w.0 as usize) < self.mesh.len() => {
                        self.mesh.send(w, MeshMsg::Shard(msg))
                    }
                    Delivery::One(..) => {}
                }
            }
            self.last = id;
        }
    }

    /// Trims what was read, and starts the stream over when the data set changed.
    fn trim_and_check(&mut self) {
        let Some(con) = self.con.as_mut() else {
            return;
        };
        if self.last != "0" {
            let trimmed: redis::RedisResult<()> = redis::cmd("XTRIM")
                .arg(&self.key)
                .arg("MINID")
                .arg(&self.last)
                .exec(con);
            if let Err(e) = trimmed {
                tracing::debug!(error = %e, "could not trim the inbox");
            }
        }
        let epoch: redis::RedisResult<Option<String>> =
            redis::cmd("GET").arg(&self.epoch_key).query(con);
        if let Ok(now) = epoch {
            self.epoch_now(now);
        }
    }

    /// The epoch as just read: another data set means another stream, read from its start.
    fn epoch_now(&mut self, now: Option<String>) {
        match (&self.epoch, &now) {
            (Some(a), Some(b)) if a == b => {}
            (None, Some(_)) => self.epoch = now,
            (_, None) => {
                if self.epoch.is_some() {
                    self.last = "0".into();
                }
                self.epoch = None;
            }
            (Some(_), Some(_)) => {
                self.last = "0".into();
                self.epoch = now;
            }
        }
    }

    fn read(&mut self) -> redis::RedisResult<Vec<Entry>> {
        if self.con.is_none() {
            let mut con = connect(&self.client)?;
            let now: Option<String> = redis::cmd("GET").arg(&self.epoch_key).query(&mut con)?;
            self.con = Some(con);
            self.epoch_now(now);
            self.logged_at = None;
        }
        let Some(con) = self.con.as_mut() else {
            return Ok(Vec::new());
        };
        let reply: redis::Value = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(COUNT)
            .arg("BLOCK")
            .arg(BLOCK.as_millis() as u64)
            .arg("STREAMS")
            .arg(&self.key)
            .arg(&self.last)
            .query(con)?;
        Ok(entries(reply))
    }
}

/// The entries of an `XREAD` reply for one stream (RESP2 and RESP3 shapes).
fn entries(reply: redis::Value) -> Vec<Entry> {
    use redis::Value;
    let streams = match reply {
        Value::Array(v) => v.into_iter().filter_map(|s| match s {
            Value::Array(mut kv) if kv.len() == 2 => kv.pop(),
            _ => None,
        }),
        Value::Map(m) => {
            return m.into_iter().flat_map(|(_, v)| entries_of(v)).collect();
        }
        _ => return Vec::new(),
    };
    streams.flat_map(entries_of).collect()
}

fn entries_of(v: redis::Value) -> Vec<Entry> {
    use redis::Value;
    let Value::Array(list) = v else {
        return Vec::new();
    };
    list.into_iter()
        .filter_map(|e| {
            let Value::Array(mut pair) = e else {
                return None;
            };
            if pair.len() != 2 {
                return None;
            }
            let fields = pair.pop()?;
            let id = match pair.pop()? {
                Value::BulkString(b) => String::from_utf8(b).ok()?,
                Value::SimpleString(s) => s,
                _ => return None,
            };
            let Value::Array(flat) = fields else {
                return None;
            };
            let mut out = Vec::with_capacity(flat.len() / 2);
            let mut it = flat.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                out.push((bytes_of(k), bytes_of(v)));
            }
            Some((id, out))
        })
        .collect()
}

fn bytes_of(v: redis::Value) -> Vec<u8> {
    match v {
        redis::Value::BulkString(b) => b,
        redis::Value::SimpleString(s) => s.into_bytes(),
        redis::Value::Int(i) => i.to_string().into_bytes(),
        _ => Vec::new(),
    }
}
