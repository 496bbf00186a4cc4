//! The worker mesh: the only path between worker threads.
//!
//! Each worker owns an inbox: an unbounded crossbeam-channel queue plus a waker. Any thread may
//! push a [`MeshMsg`] and wake the owner; the owner drains its inbox on its own thread and acts
//! on it with its own state. The queue is lock-free for the common case, FIFO per sender, and
//! carries frames as [`Bytes`], so a broadcast crosses to another worker as a reference count,
//! never as a copy. Publishes from one HTTP connection are queued in order, so every worker
//! delivers them in publish order.

use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};
use futures_util::task::AtomicWaker;
use ringcast_protocol::pusher::socket_id::SocketId;

use crate::ids::{AppIdx, ConnKey, ShardId};
use crate::owner::{Answer, ChannelOp, JoinAnswer, Question, UserOp};
use futures_channel::oneshot;

/// A message from one worker (or the signal thread) to another worker.
#[derive(Debug)]
pub enum MeshMsg {
    /// Deliver an already-encoded channel frame to the local subscribers of `channel`.
    Publish {
        app: AppIdx,
        channel: Arc<str>,
        frame: Bytes,
        except: Option<SocketId>,
    },
    /// Deliver a frame to every local connection signed in as `user`.
    ToUser {
        app: AppIdx,
        user: Arc<str>,
        frame: Bytes,
    },
    /// Deliver frames to one connection of the receiving worker.
    ToConn { conn: ConnKey, frames: Vec<Bytes> },
    /// To a channel's owner: a subscription, an unsubscription, a cached event.
    Channel(ChannelOp),
    /// From a channel's owner: the answer to a join that waited for it.
    JoinAnswer(JoinAnswer),
    /// To the app's user owner: a sign-in or sign-out.
    User(UserOp),
    /// Close every local connection signed in as `user`.
    Terminate { app: AppIdx, user: Arc<str> },
    /// A question for the receiving worker about the facts it owns.
    Ask(Question, oneshot::Sender<Answer>),
    /// First step of a shutdown: stop accepting connections and publishes, then acknowledge.
    /// Once every worker has acknowledged, every publish that was accepted is already queued
    /// ahead of the second step on every worker.
    Quiesce(std::sync::mpsc::Sender<()>),
    /// Second step: close every connection with 4200 after what is queued for it, and exit
    /// once drained.
    Drain,
}

struct Slot {
    tx: Sender<MeshMsg>,
    waker: AtomicWaker,
}

/// Handles to every worker's inbox; cheap to clone and shareable across threads.
#[derive(Clone)]
pub struct Mesh {
    slots: Arc<Vec<Slot>>,
}

/// One worker's receiving end.
pub struct Inbox {
    id: ShardId,
    rx: Receiver<MeshMsg>,
    mesh: Mesh,
}

impl Mesh {
    /// A mesh of `n` workers and their inboxes, in worker order.
    pub fn new(n: usize) -> (Mesh, Vec<Inbox>) {
        let mut slots = Vec::with_capacity(n);
        let mut rxs = Vec::with_capacity(n);
        for _ in 0..n {
            let (tx, rx) = crossbeam_channel::unbounded();
            slots.push(Slot {
                tx,
                waker: AtomicWaker::new(),
            });
            rxs.push(rx);
        }
        let mesh = Mesh {
            slots: Arc::new(slots),
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

    /// Queues `msg` for worker `to` and wakes it.
    pub fn send(&self, to: ShardId, msg: MeshMsg) {
        let slot = &self.slots[to.0 as usize];
        // The receiver lives as long as its worker; after a worker has exited nothing is
        // waiting for the message, so a failed send has nothing to report.
        let _ = slot.tx.send(msg);
        slot.waker.wake();
    }

    /// Queues a publish for every worker except `from`.
    pub fn publish_to_others(
        &self,
        from: ShardId,
        app: AppIdx,
        channel: &Arc<str>,
        frame: &Bytes,
        except: Option<SocketId>,
    ) {
        for i in 0..self.slots.len() {
            if i != from.0 as usize {
                self.send(
                    ShardId(i as u16),
                    MeshMsg::Publish {
                        app,
                        channel: channel.clone(),
                        frame: frame.clone(),
                        except,
                    },
                );
            }
        }
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
            while let Ok(msg) = self.rx.try_recv() {
                out.push(msg);
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
