//! The Pusher HTTP API, served on the same port as the WebSockets.
//!
//! Laravel's queue workers call it synchronously through the Pusher PHP SDK for every broadcast,
//! so its latency is on the application's critical path: a request is authenticated, parsed,
//! accepted and answered on the worker that received it, and the fan-out follows. Each event is
//! encoded into its final WebSocket frame once per channel, and those same bytes go through the
//! mesh to every worker's subscribers, this worker's included: its own part waits in its own
//! inbox until the answer is written, behind whatever other workers queued there before, so
//! events of one channel reach every subscriber in the order they were accepted.
//!
//! A publish is accepted only when every other worker's mesh inbox has room for it (see
//! `crate::mesh`) and no worker is more than [`crate::worker::FANOUT_BACKLOG`] behind on its
//! fan-outs (this one with the publishes it accepted, another with the batch it is working
//! through): the API waits up to [`BACKLOG_WAIT`] for a fan-out to catch up and up to
//! [`MESH_WAIT`] for room in an inbox, reserves that room, and otherwise answers 503 (Laravel's
//! queue retries), so a request reaches every worker or none, and a publisher faster than the
//! workers is held to their pace instead of growing memory or latency.
//!
//! Questions about the whole server (occupied channels, counts, presence users, `info` on
//! events) are asked of the facts' owners (`crate::owner`) and answered when every owner has
//! replied.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_channel::oneshot;
use ringcast_protocol::api::body::{
    Info, TriggerEvent, parse_batch, parse_event, parse_legacy_event,
};
use ringcast_protocol::api::query::Query;
use ringcast_protocol::api::route::{Route, route};
use ringcast_protocol::api::signature::{self, Credentials};
use ringcast_protocol::http::{self, Request};
use ringcast_protocol::pusher::channel::ChannelName;
use serde_json::{Map, Value, json};

use crate::ids::{AppIdx, ShardId};
use crate::mesh;
use crate::owner::{OwnerRoute, channel_owner};
use crate::state::Effect;
use crate::state::msg::{Answer, Channel, ChannelInfo, Question, ShardMsg};
use crate::worker::Worker;

/// How long a publish waits for room in a busy worker's inbox before it is refused with 503.
pub const MESH_WAIT: Duration = Duration::from_millis(200);

/// How long a publish waits while a worker is behind on its fan-outs before it is refused with
/// 503. Longer than [`MESH_WAIT`]: a fan-out in progress always frees its part within a few
/// hundred milliseconds on a healthy server, and a Laravel queue worker that is held briefly
/// is better off than one whose job fails.
pub const BACKLOG_WAIT: Duration = Duration::from_secs(2);

/// The 503's reason when a worker is behind on deliveries.
const BEHIND: &str = "Server is over capacity: a worker is behind on deliveries, retry later";

/// What a request still needs once it is authenticated.
enum Plan {
    /// The response is ready.
    Done(Vec<u8>),
    /// The response is built from the owners' answers.
    Ask(Vec<oneshot::Receiver<Answer>>, Then),
    /// Publishes, carried out once every worker has room for them; then `{}`, or the `info`
    /// the request asked for.
    Publish(Vec<Effect>, Option<Then>),
}

/// How the answers become a response.
enum Then {
    /// `info` on one event: per channel, whether it is a presence channel.
    Events(AppIdx, Vec<(Channel, bool)>, Info),
    /// `info` on a batch: per item, its channel, whether presence, and its `info`.
    Batch(AppIdx, Vec<(Channel, bool, Info)>),
    /// `GET /channels`, gathered from every worker.
    Channels { user_count: bool },
    /// `GET /channels/{name}`.
    Channel { presence: bool, info: Info },
    /// `GET /channels/{name}/users`.
    Users,
}

/// Serves one API request whose path (below the prefix) is `path`.
pub async fn serve(
    worker: &Rc<RefCell<Worker>>,
    req: &Request,
    path: &str,
    mut body: Vec<u8>,
) -> Vec<u8> {
    let keep_alive = req.keep_alive;
    let plan = worker.borrow_mut().plan(req, path, &mut body);
    let (waits, then) = match plan {
        Plan::Done(resp) => return resp,
        Plan::Ask(waits, then) => (waits, then),
        Plan::Publish(effects, then) => {
            if let Err(why) = reserve(worker, &effects).await {
                return http::json_error(503, why, keep_alive);
            }
            let mut w = worker.borrow_mut();
            w.apply_reserved(effects);
            match then {
                None => return http::json_ok(b"{}", keep_alive),
                Some(then) => {
                    let waits = then
                        .channels()
                        .map(|(app, c)| w.ask_channel(app, c))
                        .collect();
                    (waits, then)
                }
            }
        }
    };
    let mut answers = Vec::with_capacity(waits.len());
    for rx in waits {
        match rx.await {
            Ok(a) => answers.push(a),
            Err(_) => return http::json_error(503, "Server is shutting down", keep_alive),
        }
    }
    let body = then.finish(answers);
    http::json_ok(body.to_string().as_bytes(), keep_alive)
}

/// Reserves room in every other worker's inbox for the mesh messages of `effects`, waiting up
/// to [`MESH_WAIT`] while a worker is full; the reason to answer 503 with otherwise.
async fn reserve(worker: &Rc<RefCell<Worker>>, effects: &[Effect]) -> Result<(), &'static str> {
    let (mesh, costs) = {
        let w = worker.borrow();
        let mut costs = vec![0usize; w.shared.mesh.len()];
        for e in effects {
            match e {
                Effect::ToAll(msg) => {
                    for i in w.others() {
                        costs[i.0 as usize] += mesh::shard_msg_cost(msg);
                    }
                }
                Effect::ToOwner(msg) => {
                    if let OwnerRoute::Worker(to) = w.owner_of(msg)
                        && to != w.id
                    {
                        costs[to.0 as usize] += mesh::owner_msg_cost(msg);
                    }
                }
                _ => {}
            }
        }
        (w.shared.mesh.clone(), costs)
    };
    let cluster = worker.borrow().shared.cluster.clone();
    let cluster_cost = crate::cluster::request_cost(effects);
    let fans_out = effects.iter().any(|e| matches!(e, Effect::ToAll(_)));
    let started = Instant::now();
    // The wait for room in the inboxes starts once no fan-out holds the request back.
    let mut deadline = None;
    loop {
        let (shutting_down, behind) = {
            let w = worker.borrow();
            (w.shutting_down, fans_out && w.behind())
        };
        if shutting_down {
            // Refused rather than accepted and then lost: the application's queue retries it.
            return Err("Server is shutting down");
        }
        if behind {
            if started.elapsed() >= BACKLOG_WAIT {
                return Err(BEHIND);
            }
            monoio::time::sleep(Duration::from_millis(1)).await;
            continue;
        }
        let mut taken = Vec::with_capacity(costs.len());
        for (i, &n) in costs.iter().enumerate() {
            if n == 0 {
                continue;
            }
            if !mesh.reserve(ShardId(i as u16), n) {
                break;
            }
            taken.push((ShardId(i as u16), n));
        }
        if taken.len() == costs.iter().filter(|n| **n > 0).count() {
            match &cluster {
                Some(c) if cluster_cost > 0 && !c.reserve(cluster_cost) => {}
                _ => return Ok(()),
            }
        }
        for (to, n) in taken {
            mesh.unreserve(to, n);
        }
        if Instant::now() >= *deadline.get_or_insert_with(|| Instant::now() + MESH_WAIT) {
            return Err(BEHIND);
        }
        monoio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn bad(msg: &str, keep_alive: bool) -> Plan {
    Plan::Done(http::json_error(400, msg, keep_alive))
}

impl Worker {
    fn plan(&mut self, req: &Request, path: &str, body: &mut [u8]) -> Plan {
        let keep_alive = req.keep_alive;
        let route = match route(&req.method, path) {
            Ok(r) => r,
            Err(e) => return Plan::Done(e.response(keep_alive)),
        };
        let shared = self.shared.clone();
        let Some(app) = shared.apps.by_id(route.app_id()) else {
            let msg = format!("Unknown app id {}", route.app_id());
            return Plan::Done(http::json_error(404, &msg, keep_alive));
        };
        let query = match Query::parse(&req.query) {
            Ok(q) => q,
            Err(e) => return Plan::Done(e.response(keep_alive)),
        };
        if !app.cfg.enabled {
            return Plan::Done(http::json_error(403, "Application is disabled", keep_alive));
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let creds = Credentials {
            key: &app.cfg.key,
            secret: &app.cfg.secret,
        };
        let limits = &shared.config.limits;
        // The Pusher SDKs sign the path without the prefix they send it under; a publisher that
        // signs the URL it actually requests (as Reverb expects) signs it with the prefix.
        let prefix = &shared.config.path_prefix;
        if let Err(e) = signature::verify(&req.method, path, &query, body, creds, now, limits) {
            let full = format!("{prefix}{path}");
            if prefix.is_empty()
                || signature::verify(&req.method, &full, &query, body, creds, now, limits).is_err()
            {
                return Plan::Done(e.response(keep_alive));
            }
        }
        let app = app.idx;
        let ok = |b: &[u8]| Plan::Done(http::json_ok(b, keep_alive));
        match route {
            Route::Events { .. } => match parse_event(body, limits) {
                Ok(ev) => {
                    let then = (!ev.info.is_empty()).then(|| {
                        let channels = ev
                            .channels
                            .iter()
                            .map(|c| (Arc::new(c.clone()), c.is_presence()))
                            .collect();
                        Then::Events(app, channels, ev.info)
                    });
                    Plan::Publish(self.triggers(app, std::slice::from_ref(&ev)), then)
                }
                Err(e) => Plan::Done(e.response(keep_alive)),
            },
            Route::BatchEvents { .. } => match parse_batch(body, limits) {
                Ok(batch) => {
                    let then = (!batch.iter().all(|ev| ev.info.is_empty())).then(|| {
                        let items = batch
                            .iter()
                            .map(|ev| {
                                let c = &ev.channels[0];
                                (Arc::new(c.clone()), c.is_presence(), ev.info)
                            })
                            .collect();
                        Then::Batch(app, items)
                    });
                    Plan::Publish(self.triggers(app, &batch), then)
                }
                Err(e) => Plan::Done(e.response(keep_alive)),
            },
            Route::LegacyChannelEvents { channel, .. } => {
                match parse_legacy_event(&channel, &query, body, limits) {
                    Ok(ev) => Plan::Publish(self.triggers(app, std::slice::from_ref(&ev)), None),
                    Err(e) => Plan::Done(e.response(keep_alive)),
                }
            }
            Route::Connections { .. } => {
                let body = json!({"connections": shared.apps.get(app).connections()});
                ok(body.to_string().as_bytes())
            }
            Route::TerminateUserConnections { user_id, .. } => {
                self.broadcast(ShardMsg::Terminate {
                    app,
                    user: Arc::from(user_id.as_str()),
                });
                ok(b"{}")
            }
            Route::Channels { .. } => {
                let info = match Info::parse(query.get("info").unwrap_or("")) {
                    Ok(i) => i,
                    Err(e) => return Plan::Done(e.response(keep_alive)),
                };
                let prefix = query.get("filter_by_prefix").unwrap_or("").to_string();
                if info.user_count && !prefix.starts_with("presence-") {
                    return bad(
                        "info=user_count needs filter_by_prefix=presence- (only presence channels have users)",
                        keep_alive,
                    );
                }
                if info.subscription_count || info.cache {
                    return bad("GET /channels only supports info=user_count", keep_alive);
                }
                // In a cluster one question covers every worker and node.
                let owners = match self.shared.cluster {
                    Some(_) => 1,
                    None => self.shared.mesh.len(),
                };
                let waits = (0..owners)
                    .map(|i| {
                        let q = Question::Channels {
                            app,
                            prefix: prefix.clone(),
                        };
                        self.ask(ShardId(i as u16), q)
                    })
                    .collect();
                Plan::Ask(
                    waits,
                    Then::Channels {
                        user_count: info.user_count,
                    },
                )
            }
            Route::Channel { channel, .. } => {
                let name = match ChannelName::parse(&channel, limits) {
                    Ok(n) => n,
                    Err(e) => return bad(&format!("Invalid channel name: {e}"), keep_alive),
                };
                let info = match Info::parse(query.get("info").unwrap_or("")) {
                    Ok(i) => i,
                    Err(e) => return Plan::Done(e.response(keep_alive)),
                };
                if info.user_count && !name.is_presence() {
                    return bad(
                        "info=user_count is only available for presence channels",
                        keep_alive,
                    );
                }
                if info.cache && !name.is_cache() {
                    return bad(
                        "info=cache is only available for cache channels",
                        keep_alive,
                    );
                }
                let c: Channel = Arc::new(name.clone());
                let waits = vec![self.ask_channel(app, &c)];
                Plan::Ask(
                    waits,
                    Then::Channel {
                        presence: name.is_presence(),
                        info,
                    },
                )
            }
            Route::ChannelUsers { channel, .. } => {
                let name = match ChannelName::parse(&channel, limits) {
                    Ok(n) => n,
                    Err(e) => return bad(&format!("Invalid channel name: {e}"), keep_alive),
                };
                if !name.is_presence() {
                    return bad("Users are only available for presence channels", keep_alive);
                }
                let owner = channel_owner(app, name.as_str(), self.shared.mesh.len());
                let c: Channel = Arc::new(name);
                let waits = vec![self.ask(owner, Question::Users { app, channel: c })];
                Plan::Ask(waits, Then::Users)
            }
        }
    }

    /// Asks a channel's owner for its counts and cache.
    fn ask_channel(&mut self, app: AppIdx, channel: &Channel) -> oneshot::Receiver<Answer> {
        let owner = channel_owner(app, channel.as_str(), self.shared.mesh.len());
        self.ask(
            owner,
            Question::Channel {
                app,
                channel: channel.clone(),
            },
        )
    }

    /// The publishes of a request's events, from the shard core, not yet carried out.
    fn triggers(&mut self, app: AppIdx, events: &[TriggerEvent]) -> Vec<Effect> {
        for ev in events {
            self.shard.trigger(app, ev);
        }
        let n = events.iter().map(|ev| ev.channels.len() as u64).sum();
        self.stats.api_events(app, n);
        std::iter::from_fn(|| self.shard.poll_effect()).collect()
    }
}

/// The `info` attributes of one channel that apply to its type.
fn info_object(c: &ChannelInfo, presence: bool, info: Info) -> Value {
    let mut m = Map::new();
    if info.user_count && presence {
        m.insert("user_count".into(), c.users.into());
    }
    if info.subscription_count {
        m.insert("subscription_count".into(), c.subscriptions.into());
    }
    Value::Object(m)
}

fn channel_info(a: &Answer) -> ChannelInfo {
    match a {
        Answer::Channel(c) => c.clone(),
        _ => ChannelInfo::default(),
    }
}

impl Then {
    /// The channels whose counts a publish's `info` needs, asked after the publish.
    fn channels(&self) -> Box<dyn Iterator<Item = (AppIdx, &Channel)> + '_> {
        match self {
            Then::Events(app, channels, _) => Box::new(channels.iter().map(|(c, _)| (*app, c))),
            Then::Batch(app, items) => Box::new(items.iter().map(|(c, _, _)| (*app, c))),
            _ => Box::new(std::iter::empty()),
        }
    }

    fn finish(self, answers: Vec<Answer>) -> Value {
        match self {
            Then::Events(_, channels, info) => {
                let mut out = Map::new();
                for ((name, presence), a) in channels.iter().zip(&answers) {
                    out.insert(
                        name.as_str().to_string(),
                        info_object(&channel_info(a), *presence, info),
                    );
                }
                json!({ "channels": out })
            }
            Then::Batch(_, items) => {
                let batch: Vec<Value> = items
                    .iter()
                    .zip(&answers)
                    .map(|((_, presence, info), a)| info_object(&channel_info(a), *presence, *info))
                    .collect();
                json!({ "batch": batch })
            }
            Then::Channels { user_count } => {
                let mut out = Map::new();
                for a in &answers {
                    if let Answer::Channels(list) = a {
                        for (name, c) in list {
                            let v = if user_count {
                                json!({"user_count": c.users})
                            } else {
                                json!({})
                            };
                            out.insert(name.as_str().to_string(), v);
                        }
                    }
                }
                json!({ "channels": out })
            }
            Then::Channel { presence, info } => {
                let c = answers.first().map(channel_info).unwrap_or_default();
                let mut m = Map::new();
                m.insert("occupied".into(), (c.subscriptions > 0).into());
                if let Value::Object(extra) = info_object(&c, presence, info) {
                    m.extend(extra);
                }
                if info.cache {
                    let v = match &c.cache {
                        Some((data, ttl)) => json!({"data": data, "ttl": ttl}),
                        None => Value::Null,
                    };
                    m.insert("cache".into(), v);
                }
                Value::Object(m)
            }
            Then::Users => {
                let users: Vec<Value> = match answers.first() {
                    Some(Answer::Users(ids)) => ids.iter().map(|id| json!({"id": &**id})).collect(),
                    _ => Vec::new(),
                };
                json!({ "users": users })
            }
        }
    }
}
