//! The worker mesh: the only path between worker threads.
//!
//! Each worker owns an inbox: a crossbeam-channel queue plus a waker. Any thread may push a
//! [`MeshMsg`] and wake the owner; the owner drains its inbox on its own thread and acts on it
//! with its own state. The queue is lock-free for the common case, FIFO per sender, and
//! carries frames as [`Bytes`], so a broadcast crosses to another worker as a reference count,
//! never as a copy. Publishes from one HTTP connection are queued in order, so every worker
//! delivers them in publish order.
//!
//! ## The bound
//! Each inbox counts the bytes queued in it (a frame's length plus a fixed cost per message)
//! against `max_bytes` (`mesh_max_bytes` in the configuration). What happens at the bound
//! depends on who sends:
//!
//! - The HTTP API reserves room for a request's publishes on every worker before it accepts
//!   the request ([`Mesh::reserve`]); when a worker is full it waits briefly for room and
//!   then answers 503, which Laravel's queue retries. A request is thus delivered to every
//!   worker or to none.
//! - A publish for the accepting worker's own subscribers goes into its own inbox too, behind
//!   what the other workers queued there before the request was accepted, and is weighed
//!   against the worker's fan-out backlog rather than reserved: its room is the bytes the
//!   worker still has to write (see `crate::api`).
//! - Everything else (the shards' and owners' messages) is caused by client frames, and is
//!   never dropped: a message that must arrive is queued even past the bound, and while any
//!   peer's inbox is over it the worker stops reading client frames ([`Mesh::congested`]), so
//!   the clients' TCP windows, not the server's memory, absorb the excess.

use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};
use futures_channel::oneshot;
use futures_util::task::AtomicWaker;

use crate::ids::ShardId;
use crate::state::msg::{Answer, OwnerMsg, Question, ShardMsg};

/// What a message costs in an inbox beyond the frames it carries: its own size, rounded up.
pub const MESSAGE_COST: usize = 128;

/// A message from one worker (or the signal thread) to another worker.
#[derive(Debug)]
pub enum MeshMsg {
    /// For the receiving worker's shard.
    Shard(ShardMsg),
    /// A publish the HTTP API of the receiving worker itself accepted, sent to its own inbox so
    /// that the request is answered before the fan-out runs, and queued behind what other
    /// workers sent before it. `weight` is what it added to the worker's fan-out backlog
    /// (`crate::worker::Worker::backlog`).
    Local { msg: ShardMsg, weight: usize },
    /// For the receiving worker's owner.
    Owner(OwnerMsg),
    /// A question for the receiving worker's owner.
    Ask(Question, oneshot::Sender<Answer>),
    /// First step of a shutdown: stop accepting connections and publishes, then acknowledge.
    /// Once every worker has acknowledged, every publish that was accepted is already queued
    /// ahead of the second step on every worker.
    Quiesce(std::sync::mpsc::Sender<()>),
    /// Second step: close every connection with 4200 after what is queued for it, and exit
    /// once drained.
    Drain,
    /// A request for the receiving worker's counters (`crate::stats`).
    Stats(
        crate::stats::Request,
        oneshot::Sender<crate::stats::WorkerReport>,
    ),
    /// A metrics scrape (`crate::metrics`): the receiving worker's counters and depths.
    Metrics(oneshot::Sender<Box<crate::stats::scrape::MetricsReport>>),
    /// A configuration reload (`crate::reload`): the new settings and app table, and what
    /// changed for which app.
    Reload(Arc<crate::reload::Reloaded>),
}

impl MeshMsg {
    /// Bytes this message is counted as in an inbox.
    pub fn cost(&self) -> usize {
        match self {
            MeshMsg::Shard(m) | MeshMsg::Local { msg: m, .. } => shard_msg_cost(m),
            MeshMsg::Owner(m) => owner_msg_cost(m),
            _ => MESSAGE_COST,
        }
    }
}

/// Bytes a shard message is counted as in an inbox.
pub fn shard_msg_cost(msg: &ShardMsg) -> usize {
    MESSAGE_COST
        + match msg {
            ShardMsg::Publish { frame, .. } | ShardMsg::ToUser { frame, .. } => frame.len(),
            ShardMsg::ToConn { frames, .. } => frames.iter().map(Bytes::len).sum(),
            ShardMsg::JoinAnswer(a) => a.frames.iter().map(Bytes::len).sum(),
            ShardMsg::Terminate { .. } => 0,
        }
}

/// Bytes an owner message is counted as in an inbox.
pub fn owner_msg_cost(msg: &OwnerMsg) -> usize {
    MESSAGE_COST
        + match msg {
            OwnerMsg::Cache { frame, data, .. } => frame.len() + data.len(),
            _ => 0,
        }
}

struct Slot {
    tx: Sender<MeshMsg>,
    waker: AtomicWaker,
    /// Bytes queued (and reserved) in this inbox.
    queued: AtomicUsize,
    /// Bytes of fan-out still to write for the batch its worker is working through.
    work: AtomicUsize,
}

/// Handles to every worker's inbox; cheap to clone and shareable across threads.
#[derive(Clone)]
pub struct Mesh {
    slots: Arc<Vec<Slot>>,
    max_bytes: usize,
}

/// One worker's receiving end.
pub struct Inbox {
    id: ShardId,
    rx: Receiver<MeshMsg>,
    mesh: Mesh,
}

impl Mesh {
    /// A mesh of `n` workers whose inboxes hold `max_bytes` each, and the inboxes in worker
    /// order.
    pub fn new(n: usize, max_bytes: usize) -> (Mesh, Vec<Inbox>) {
        let mut slots = Vec::with_capacity(n);
        let mut rxs = Vec::with_capacity(n);
        for _ in 0..n {
            let (tx, rx) = crossbeam_channel::unbounded();
            slots.push(Slot {
                tx,
                waker: AtomicWaker::new(),
                queued: AtomicUsize::new(0),
                work: AtomicUsize::new(0),
            });
            rxs.push(rx);
        }
        let mesh = Mesh {
            slots: Arc::new(slots),
            max_bytes,
        };
        let inboxes = rxs
            .into_iter()
            .enumerate()
            .map(|(i, rx)| Inbox {
                id: ShardId(i as u16),
                rx,
                mesh: mesh.clone(),
            })
            .collect();
        (mesh, inboxes)
    }

    /// Number of workers.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the mesh has no workers.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Queues `msg` for worker `to` and wakes it. Never refused: the senders of messages that
    /// must arrive slow their clients down instead (see [`Mesh::congested`]).
    pub fn send(&self, to: ShardId, msg: MeshMsg) {
        let slot = &self.slots[to.0 as usize];
        slot.queued.fetch_add(msg.cost(), Ordering::Relaxed);
        self.push(slot, msg);
    }

    /// Queues `msg` for worker `to` in room reserved before with [`Mesh::reserve`].
    pub fn send_reserved(&self, to: ShardId, msg: MeshMsg) {
        self.push(&self.slots[to.0 as usize], msg);
    }

    fn push(&self, slot: &Slot, msg: MeshMsg) {
        // The receiver lives as long as its worker; after a worker has exited nothing is
        // waiting for the message, so a failed send has nothing to report.
        let _ = slot.tx.send(msg);
        slot.waker.wake();
    }

    /// Reserves `bytes` in worker `to`'s inbox, unless that would pass the bound.
    pub fn reserve(&self, to: ShardId, bytes: usize) -> bool {
        let queued = &self.slots[to.0 as usize].queued;
        let before = queued.fetch_add(bytes, Ordering::AcqRel);
        if before + bytes > self.max_bytes && before > 0 {
            queued.fetch_sub(bytes, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Gives back a reservation that will not be used.
    pub fn unreserve(&self, to: ShardId, bytes: usize) {
        self.slots[to.0 as usize]
            .queued
            .fetch_sub(bytes, Ordering::AcqRel);
    }

    /// Whether any worker but `me` has more queued than the bound.
    pub fn congested(&self, me: ShardId) -> bool {
        self.slots
            .iter()
            .enumerate()
            .any(|(i, s)| i != me.0 as usize && s.queued.load(Ordering::Relaxed) > self.max_bytes)
    }

    /// Records how many bytes of fan-out worker `me` still has to write for its current batch.
    pub fn set_work(&self, me: ShardId, bytes: usize) {
        self.slots[me.0 as usize]
            .work
            .store(bytes, Ordering::Relaxed);
    }

    /// Bytes of fan-out worker `to` still has to write for its current batch.
    pub fn work(&self, to: ShardId) -> usize {
        self.slots[to.0 as usize].work.load(Ordering::Relaxed)
    }

    /// Bytes queued in worker `to`'s inbox.
    pub fn queued(&self, to: ShardId) -> usize {
        self.slots[to.0 as usize].queued.load(Ordering::Relaxed)
    }
}

impl Inbox {
    /// This inbox's worker.
    pub fn id(&self) -> ShardId {
        self.id
    }

    /// Waits until at least one message is queued, then returns everything queued so far.
    pub async fn recv_batch(&self, out: &mut Vec<MeshMsg>) {
        let slot = &self.mesh.slots[self.id.0 as usize];
        poll_fn(|cx| {
            slot.waker.register(cx.waker());
            let mut taken = 0;
            while let Ok(msg) = self.rx.try_recv() {
                taken += msg.cost();
                out.push(msg);
            }
            if taken > 0 {
                slot.queued.fetch_sub(taken, Ordering::AcqRel);
            }
            if out.is_empty() {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;

    #[test]
    fn reservations_stop_at_the_bound_and_are_released_by_the_receiver() {
        let (mesh, inboxes) = Mesh::new(2, 1000);
        let to = ShardId(1);
        assert!(mesh.reserve(to, 600));
        assert!(!mesh.reserve(to, 600), "past the bound");
        assert!(mesh.reserve(to, 400));
        mesh.unreserve(to, 400);
        assert_eq!(mesh.queued(to), 600);
        // One oversized message fits into an empty inbox, or it could never be sent.
        assert!(mesh.reserve(ShardId(0), 5000));
        mesh.send_reserved(to, MeshMsg::Drain);
        mesh.unreserve(to, 600 - MESSAGE_COST);
        assert_eq!(mesh.queued(to), MESSAGE_COST);
        mesh.send(to, MeshMsg::Drain);
        assert!(mesh.congested(to), "worker 0's inbox is over the bound");
        assert!(!mesh.congested(ShardId(0)), "worker 1's is not");
        let mut out = Vec::new();
        let waker = futures_util::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        {
            let mut fut = std::pin::pin!(inboxes[1].recv_batch(&mut out));
            assert!(fut.as_mut().poll(&mut cx).is_ready());
        }
        assert_eq!(mesh.queued(to), 0);
        assert_eq!(out.len(), 2);
    }
}
