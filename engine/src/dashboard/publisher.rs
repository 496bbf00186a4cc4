//! The stats publisher: one task per worker, and only when the dashboard is on.
//!
//! Once a second the task looks in its own worker's registry for subscribers of each app's
//! stats channel. Finding none (the usual case) it goes back to sleep: no message, no
//! allocation, no other worker disturbed. Finding some, it asks every worker for its report
//! of that app (`crate::stats`), waits up to [`ANSWER_WAIT`] for the answers, and delivers the
//! document ([`super::report`]) to its own subscribers of the channel only. A watcher on
//! another worker is served by that worker's task, so no publish ever crosses the mesh and a
//! frame is built only where someone will read it.
//!
//! A worker that does not answer in time (stalled, or shutting down) is shown as not
//! answering rather than holding the others' figures back.
//!
//! With scaling on, the same publish also asks the cluster for its nodes
//! ([`Question::Nodes`], one script run in Redis) within the same wait, so the document lists
//! every node with its connections and lease; without an answer in time it lists this node
//! alone.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_channel::oneshot;
use ringcast_protocol::pusher::event::ServerEvent;

use super::report::{ClusterView, Node, document};
use super::{STATS_EVENT, channel_name};
use crate::ids::{AppIdx, ShardId};
use crate::mesh::MeshMsg;
use crate::state::msg::{Answer, Question};
use crate::stats::{Request, unix_ms};
use crate::worker::Worker;

/// Time between two looks for watchers (and so between two publishes while watched).
pub const PERIOD: Duration = Duration::from_secs(1);

/// Longest wait for the workers' reports.
pub const ANSWER_WAIT: Duration = Duration::from_millis(500);

/// Runs the publisher of one worker until the worker shuts down.
pub async fn run(worker: Rc<RefCell<Worker>>) {
    let (channels, node) = {
        let w = worker.borrow();
        let apps = &w.shared.apps;
        let channels: Vec<(AppIdx, String, String)> = (0..apps.len() as u32)
            .map(AppIdx)
            .map(|a| {
                let cfg = &apps.get(a).cfg;
                (a, cfg.id.clone(), channel_name(&cfg.secret))
            })
            .collect();
        (channels, Node::this(unix_ms()))
    };
    loop {
        monoio::time::sleep(PERIOD).await;
        let watched: Vec<&(AppIdx, String, String)> = {
            let w = worker.borrow();
            if w.shutting_down {
                return;
            }
            channels
                .iter()
                .filter(|(app, _, name)| w.shard.local_subscribers(*app, name) > 0)
                .collect()
        };
        for (app, id, name) in watched {
            publish(&worker, *app, id, name, &node).await;
        }
    }
}

/// Gathers `app`'s figures from every worker and delivers them to this worker's subscribers
/// of `channel`.
async fn publish(
    worker: &Rc<RefCell<Worker>>,
    app: AppIdx,
    app_id: &str,
    channel: &str,
    node: &Node,
) {
    let req = Request {
        app: Some(app),
        channels: true,
    };
    let (workers, waits, cluster) = {
        let mut w = worker.borrow_mut();
        let n = w.shared.mesh.len();
        let waits: Vec<oneshot::Receiver<_>> = (0..n)
            .map(|i| {
                let (tx, rx) = oneshot::channel();
                w.shared
                    .mesh
                    .send(ShardId(i as u16), MeshMsg::Stats(req, tx));
                rx
            })
            .collect();
        // In a cluster a question goes to Redis whichever worker is named.
        let cluster = w
            .shared
            .cluster
            .as_ref()
            .map(|c| (c.node().to_string(), c.lease()))
            .map(|(me, lease)| (me, lease, w.ask(ShardId(0), Question::Nodes { app })));
        (n, waits, cluster)
    };
    let deadline = Instant::now() + ANSWER_WAIT;
    let mut reports = Vec::with_capacity(workers);
    for rx in waits {
        let left = deadline.saturating_duration_since(Instant::now());
        if let Ok(Ok(report)) = monoio::time::timeout(left, rx).await {
            reports.push(report);
        }
    }
    let mut listed = None;
    let mut me = String::new();
    let mut lease = Duration::ZERO;
    if let Some((id, l, rx)) = cluster {
        me = id;
        lease = l;
        let left = deadline.saturating_duration_since(Instant::now());
        if let Ok(Ok(Answer::Nodes(nodes))) = monoio::time::timeout(left, rx).await {
            listed = Some(nodes);
        }
    }
    let view = (!me.is_empty()).then(|| ClusterView {
        this: &me,
        nodes: listed.as_deref(),
        lease,
    });
    let doc = document(app, app_id, node, workers, &reports, view, unix_ms()).to_string();
    let frame = ServerEvent::ChannelEvent {
        event: STATS_EVENT,
        channel,
        data: &doc,
    }
    .to_frame();
    worker
        .borrow_mut()
        .deliver_local(app, channel, &frame, None);
}
