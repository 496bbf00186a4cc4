//! The simulated shell: what `crate::worker` does with the cores' effects, step for step.

use bytes::Bytes;
use ringcast::ids::ConnKey;
use ringcast::owner::{OwnerRoute, route};
use ringcast::state::msg::ShardMsg;
use ringcast::state::{Closing, Effect};

use super::{Msg, Sim, SimConn, Worker};

impl Sim {
    /// `Worker::run`: carries out effects until the cores and the loopback have nothing more.
    pub(super) fn run(&mut self, w: usize) {
        loop {
            let worker = &mut self.workers[w];
            if let Some((key, how)) = worker.doomed.pop() {
                self.close_now(w, key, how);
            } else if let Some(e) = worker.shard.poll_effect() {
                self.apply(w, e);
            } else if let Some(e) = worker.owner.poll_effect() {
                self.apply(w, e);
            } else if let Some(m) = worker.loopback.pop_front() {
                self.handle_msg(w, m);
            } else {
                break;
            }
        }
        self.after_step();
    }

    /// `Worker::apply`.
    pub(super) fn apply(&mut self, w: usize, effect: Effect) {
        match effect {
            Effect::Send { conn, frame } => {
                let worker = &mut self.workers[w];
                if let Some(c) = worker.shard.io_mut(conn) {
                    offer(&mut worker.doomed, conn, c, &frame);
                }
            }
            Effect::Close { conn, how } => self.close_now(w, conn, how),
            Effect::ToOwner(msg) => {
                let to = match route(msg.address(), self.workers.len(), false) {
                    OwnerRoute::Worker(w) => w.0 as usize,
                    OwnerRoute::Cluster => unreachable!("the harness runs one node"),
                };
                self.post(w, to, Msg::Owner(msg));
            }
            Effect::ToShard(to, msg) => self.post(w, to.0 as usize, Msg::Shard(msg)),
            Effect::Hook(app, hook) => {
                self.log.push(format!("w{w} webhook {}", hook.to_json()));
                self.hooks.push((self.elapsed, app, hook));
            }
            Effect::ToAll(msg) => {
                for i in (0..self.workers.len()).filter(|i| *i != w) {
                    self.mesh[w][i].push_back(Msg::Shard(msg.clone()));
                }
                match msg {
                    ShardMsg::Publish { .. } | ShardMsg::ToUser { .. } => self.handle_shard(w, msg),
                    other => self.workers[w].loopback.push_back(Msg::Shard(other)),
                }
            }
        }
    }

    /// `Worker::post`: the loopback for this worker, the mesh for another.
    fn post(&mut self, from: usize, to: usize, msg: Msg) {
        if from == to {
            self.workers[from].loopback.push_back(msg);
        } else {
            self.mesh[from][to].push_back(msg);
        }
    }

    /// `Worker::handle_mesh`.
    pub(super) fn handle_msg(&mut self, w: usize, msg: Msg) {
        match msg {
            Msg::Owner(m) => {
                let now = self.now();
                self.workers[w].owner.handle(m, now);
            }
            Msg::Shard(m) => self.handle_shard(w, m),
        }
    }

    /// `Worker::handle_shard`.
    fn handle_shard(&mut self, w: usize, msg: ShardMsg) {
        let Worker { shard, doomed, .. } = &mut self.workers[w];
        shard.handle_shard_msg(msg, |key, c, frame| offer(doomed, key, c, frame));
    }

    /// `Worker::close_now`: marks the connection closing, leaves its channels, then sends the
    /// `pusher:error` (when asked for) and the close frame.
    pub(super) fn close_now(&mut self, w: usize, key: ConnKey, how: Closing) {
        let worker = &mut self.workers[w];
        match worker.shard.io_mut(key) {
            Some(c) if c.closing.is_none() => c.closing = Some(how),
            _ => return,
        }
        worker.shard.leave_all(key);
        let frames = how.frames();
        if let Some(c) = worker.shard.io_mut(key) {
            for f in &frames {
                c.receive(f);
            }
        }
    }
}

/// `worker::offer`: a closing connection takes nothing; a slow one is doomed by the frame,
/// which is lost with its queue.
fn offer(doomed: &mut Vec<(ConnKey, Closing)>, key: ConnKey, c: &mut SimConn, frame: &Bytes) {
    if c.closing.is_some() {
        return;
    }
    if c.slow {
        doomed.push((key, Closing::slow_consumer()));
        return;
    }
    c.receive(frame);
}
