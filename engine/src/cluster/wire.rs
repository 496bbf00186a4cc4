//! What crosses Redis: the link's commands as script calls, and inbox entries as shard
//! messages.
//!
//! Outbound, every [`Command`] becomes one `EVALSHA` ([`Encoder::encode`]) whose arguments are
//! strings and frame bytes; nothing is serialised beyond what the scripts store or copy.
//! Inbound, an inbox entry is a flat list of field/value pairs whose `t` says what it is
//! ([`Decoder::decode`]):
//!
//! | `t` | fields | becomes |
//! |---|---|---|
//! | `p` | `a` app id, `c` channel, `x` excluded socket id or empty, `f` frame | [`ShardMsg::Publish`] on every worker |
//! | `ja` | `w` worker, `s`/`g` connection slot and generation, `a`, `c`, `u` presence user or empty, `ok` 1/0, `m` members as a JSON list `[id, info, ...]`, `cf` cached frame or `cm` cache miss | [`ShardMsg::JoinAnswer`] on worker `w` |
//! | `wl` | `w`, `s`, `g`, `on`, `off` (JSON lists of user ids) | the signer's watchlist frame, [`ShardMsg::ToConn`] on worker `w` |
//! | `tu` | `a`, `u` (JSON list of user ids), `f` frame | [`ShardMsg::ToUser`] for each user on every worker |
//! | `tm` | `a`, `u` user id | [`ShardMsg::Terminate`] on every worker |
//!
//! Frames that the node builds itself from an entry (its own join answers and watchlist split)
//! are the ones whose content only the script knew: the member list, the cache hit or miss.

use std::sync::Arc;

use bytes::Bytes;
use futures_channel::oneshot;
use ringcast_protocol::Limits;
use ringcast_protocol::pusher::channel::ChannelName;
use ringcast_protocol::pusher::event::ServerEvent;
use ringcast_protocol::pusher::socket_id::SocketId;

use super::scripts::{ScriptId, Scripts};
use crate::app::Apps;
use crate::ids::{AppIdx, ConnKey, ShardId};
use crate::mesh::{MESSAGE_COST, owner_msg_cost};
use crate::state::msg::{
    Answer, Channel, ChannelInfo, JoinAnswer, NodeInfo, OwnerMsg, Question, ShardMsg, UserId,
};
use crate::webhook::Hook;

/// One publish for the PUBLISH script.
#[derive(Debug)]
pub struct Item {
    pub app: AppIdx,
    pub channel: Channel,
    pub frame: Bytes,
    pub except: Option<SocketId>,
    /// A cache channel's event data: the event is kept, and goes to this node's inbox too.
    pub cache: Option<String>,
}

/// What the workers (and the API) ask of the cluster link.
#[derive(Debug)]
pub enum Command {
    /// A message for the owner of a fact, which in a cluster is Redis.
    Owner(OwnerMsg),
    /// The publishes of one API request or one client event, in order, as one step.
    Publish(Vec<Item>),
    /// Close a user's connections on every node.
    Terminate { app: AppIdx, user: UserId },
    /// A question about cluster-wide facts.
    Ask(Question, oneshot::Sender<Answer>),
    /// Finish what is queued, say goodbye to the cluster, and acknowledge.
    Stop(std::sync::mpsc::Sender<()>),
}

impl Command {
    /// Bytes this command is counted as in the link's queue.
    pub fn cost(&self) -> usize {
        match self {
            Command::Owner(m) => owner_msg_cost(m),
            Command::Publish(items) => items
                .iter()
                .map(|i| MESSAGE_COST + i.frame.len() + i.cache.as_ref().map_or(0, String::len))
                .sum(),
            _ => MESSAGE_COST,
        }
    }
}

/// What a JOIN, LEAVE or HOOKFIRE reply's webhook codes are about.
#[derive(Clone, Debug)]
pub struct HookCtx {
    pub app: AppIdx,
    pub channel: Channel,
    pub user: Option<UserId>,
}

/// A departure's webhook waiting on this node for its delay (`super::link`).
#[derive(Clone, Debug)]
pub struct Pending {
    /// When to fire it.
    pub due: std::time::Instant,
    /// `v`, `r` or `d` ([`super::scripts::HOOKFIRE`]).
    pub kind: u8,
    pub ctx: HookCtx,
    /// The due time Redis recorded, which the fire must find unchanged.
    pub token: String,
}

/// What to do with a script's reply.
#[derive(Debug)]
pub enum Then {
    /// Nothing: its effects reach the workers through the inboxes.
    Nothing,
    /// A join: if Redis could not take it, the subscriber is told on its worker; otherwise the
    /// reply's webhook codes are about `HookCtx`.
    Join(ShardId, JoinAnswer, HookCtx),
    /// A leave: the reply's webhook codes.
    Leave(HookCtx),
    /// Departures fired: the reply says which are sent.
    Fired(Vec<Pending>),
    /// Turn the reply into the answer to a question.
    Answer(AskKind, oneshot::Sender<Answer>),
}

/// Which question a QUERY answers.
#[derive(Clone, Copy, Debug)]
pub enum AskKind {
    Channel,
    Channels,
    Users,
    Nodes,
}

/// Builds the script calls of the link's commands.
#[derive(Debug)]
pub struct Encoder {
    pub apps: Arc<Apps>,
    pub prefix: String,
    pub node: String,
    pub scripts: Scripts,
    pub max_members: usize,
}

/// A number no real count reaches, where the script puts the real one.
const COUNT_MARK: u64 = 918_273_645_546_372_819;

/// The `subscription_count` JSON of `channel` before and after its number.
pub fn count_parts(channel: &str) -> (Vec<u8>, Vec<u8>) {
    let json = ServerEvent::SubscriptionCount {
        channel,
        count: COUNT_MARK,
    }
    .to_json();
    let mark = COUNT_MARK.to_string();
    let at = json
        .windows(mark.len())
        .rposition(|w| w == mark.as_bytes())
        .unwrap_or(json.len());
    let after = (at + mark.len()).min(json.len());
    (json[..at].to_vec(), json[after..].to_vec())
}

fn sid(s: &Option<SocketId>) -> String {
    s.map(|s| s.to_string()).unwrap_or_default()
}

impl Encoder {
    fn app_id(&self, app: AppIdx) -> &str {
        &self.apps.get(app).cfg.id
    }

    fn call(&self, id: ScriptId) -> redis::Cmd {
        self.scripts.call(id, &self.prefix, &self.node)
    }

    /// The webhook flags of `app` for JOIN and LEAVE ([`super::scripts::HOOK_FLAGS`]).
    fn hook_flags(&self, app: AppIdx, channel: &ChannelName) -> String {
        use crate::webhook::{EventKind, wants_members, wants_occupancy};
        let a = self.apps.get(app);
        let mask = a.hooks();
        let mut f = String::new();
        if wants_occupancy(mask) {
            f.push('o');
        }
        if wants_members(mask) && channel.is_presence() {
            f.push('m');
        }
        if a.wants(EventKind::CacheMiss) && channel.is_cache() {
            f.push('c');
        }
        if a.wants(EventKind::SubscriptionCount) && !channel.is_presence() {
            f.push('n');
        }
        f
    }

    /// The HOOKFIRE call of departures whose delay has passed.
    pub fn fire(&self, due: &[Pending]) -> redis::Cmd {
        let mut c = self.call(ScriptId::HookFire);
        for p in due {
            c.arg(&[p.kind][..])
                .arg(self.app_id(p.ctx.app))
                .arg(p.ctx.channel.as_str())
                .arg(p.ctx.user.as_deref().unwrap_or(""))
                .arg(&p.token);
        }
        c
    }

    /// The count JSON around the number, when the app sends `subscription_count` on `channel`.
    fn counts(&self, app: AppIdx, channel: &ChannelName) -> (Vec<u8>, Vec<u8>) {
        if self.apps.get(app).cfg.subscription_count && !channel.is_presence() {
            count_parts(channel.as_str())
        } else {
            (Vec::new(), Vec::new())
        }
    }

    /// The script call of `cmd` and what to do with its reply; `None` for [`Command::Stop`].
    pub fn encode(&self, cmd: Command) -> Option<(redis::Cmd, Then)> {
        Some(match cmd {
            Command::Owner(OwnerMsg::Join(j)) => {
                let mut c = self.call(ScriptId::Join);
                let (user, info) = j.member.clone().unwrap_or_default();
                let added = match &j.member {
                    Some((u, i)) => ServerEvent::MemberAdded {
                        channel: j.channel.as_str(),
                        user_id: u,
                        user_info: i,
                    }
                    .to_frame(),
                    None => Bytes::new(),
                };
                let (pre, post) = self.counts(j.app, &j.channel);
                c.arg(self.app_id(j.app))
                    .arg(j.channel.as_str())
                    .arg(j.from.0)
                    .arg(j.conn.slot)
                    .arg(j.conn.generation)
                    .arg(&*user)
                    .arg(info)
                    .arg(j.socket_id.to_string())
                    .arg(self.max_members)
                    .arg(if j.channel.is_cache() { "1" } else { "0" })
                    .arg(pre)
                    .arg(post)
                    .arg(&added[..])
                    .arg(self.hook_flags(j.app, &j.channel));
                let ctx = HookCtx {
                    app: j.app,
                    channel: j.channel.clone(),
                    user: j.member.as_ref().map(|(u, _)| u.clone()),
                };
                let refusal = JoinAnswer {
                    conn: j.conn,
                    app: j.app,
                    channel: j.channel.clone(),
                    user: None,
                    accepted: false,
                    frames: vec![
                        ServerEvent::SubscriptionError {
                            channel: j.channel.as_str(),
                            error_type: "ClusterUnavailable",
                            error: "The cluster's Redis did not answer; subscribe again",
                            status: 503,
                        }
                        .to_frame(),
                    ],
                };
                (c, Then::Join(j.from, refusal, ctx))
            }
            Command::Owner(OwnerMsg::Leave { app, channel, user }) => {
                let mut c = self.call(ScriptId::Leave);
                let removed = match &user {
                    Some(u) => ServerEvent::MemberRemoved {
                        channel: channel.as_str(),
                        user_id: u,
                    }
                    .to_frame(),
                    None => Bytes::new(),
                };
                let (pre, post) = self.counts(app, &channel);
                c.arg(self.app_id(app))
                    .arg(channel.as_str())
                    .arg(user.as_deref().unwrap_or(""))
                    .arg(&removed[..])
                    .arg(pre)
                    .arg(post)
                    .arg(self.hook_flags(app, &channel));
                (c, Then::Leave(HookCtx { app, channel, user }))
            }
            Command::Owner(OwnerMsg::Cache {
                app,
                channel,
                data,
                frame,
                except,
            }) => self.publish(vec![Item {
                app,
                channel,
                frame,
                except,
                cache: Some(data),
            }]),
            Command::Publish(items) => self.publish(items),
            Command::Owner(OwnerMsg::Signin {
                app,
                user,
                watchlist,
                from,
                conn,
            }) => {
                let mut c = self.call(ScriptId::Signin);
                let online = ServerEvent::WatchlistEvents {
                    online: &[&user],
                    offline: &[],
                }
                .to_frame();
                c.arg(self.app_id(app))
                    .arg(&*user)
                    .arg(from.0)
                    .arg(conn.slot)
                    .arg(conn.generation)
                    .arg(&online[..]);
                for w in &watchlist {
                    c.arg(&**w);
                }
                (c, Then::Nothing)
            }
            Command::Owner(OwnerMsg::Signout {
                app,
                user,
                watchlist,
            }) => {
                let mut c = self.call(ScriptId::Signout);
                let offline = ServerEvent::WatchlistEvents {
                    online: &[],
                    offline: &[&user],
                }
                .to_frame();
                c.arg(self.app_id(app)).arg(&*user).arg(&offline[..]);
                for w in &watchlist {
                    c.arg(&**w);
                }
                (c, Then::Nothing)
            }
            Command::Terminate { app, user } => {
                let mut c = self.call(ScriptId::Terminate);
                c.arg(self.app_id(app)).arg(&*user);
                (c, Then::Nothing)
            }
            Command::Ask(q, reply) => {
                let mut c = self.call(ScriptId::Query);
                let kind = match &q {
                    Question::Channel { app, channel } => {
                        c.arg("c").arg(self.app_id(*app)).arg(channel.as_str());
                        AskKind::Channel
                    }
                    Question::Channels { app, prefix } => {
                        c.arg("l").arg(self.app_id(*app)).arg(prefix);
                        AskKind::Channels
                    }
                    Question::Users { app, channel } => {
                        c.arg("u").arg(self.app_id(*app)).arg(channel.as_str());
                        AskKind::Users
                    }
                    Question::Nodes { app } => {
                        c.arg("n").arg(self.app_id(*app));
                        AskKind::Nodes
                    }
                };
                (c, Then::Answer(kind, reply))
            }
            Command::Stop(_) => return None,
        })
    }

    fn publish(&self, items: Vec<Item>) -> (redis::Cmd, Then) {
        let mut c = self.call(ScriptId::Publish);
        for i in &items {
            let ttl = match &i.cache {
                Some(_) => (self.apps.get(i.app).cfg.cache_ttl.saturating_mul(1000)).to_string(),
                None => String::new(),
            };
            c.arg(self.app_id(i.app))
                .arg(i.channel.as_str())
                .arg(sid(&i.except))
                .arg(&i.frame[..])
                .arg(i.cache.as_deref().unwrap_or(""))
                .arg(ttl);
        }
        (c, Then::Nothing)
    }

    /// The HEARTBEAT call: the lease and this node's connections per app.
    pub fn heartbeat(&self, lease_ms: u64) -> redis::Cmd {
        let mut c = self.call(ScriptId::Heartbeat);
        c.arg(lease_ms);
        for i in 0..self.apps.len() {
            let app = self.apps.get(AppIdx(i as u32));
            c.arg(&app.cfg.id).arg(app.local_connections());
        }
        c
    }

    /// The GOODBYE call.
    pub fn goodbye(&self) -> redis::Cmd {
        let mut c = self.call(ScriptId::Goodbye);
        for i in 0..self.apps.len() {
            c.arg(&self.apps.get(AppIdx(i as u32)).cfg.id);
        }
        c
    }
}

/// The answer a QUERY reply gives.
pub fn answer(kind: AskKind, reply: &redis::Value, limits: &Limits) -> Answer {
    let items = match reply {
        redis::Value::Array(v) => v.as_slice(),
        _ => &[],
    };
    match kind {
        AskKind::Channel => Answer::Channel(ChannelInfo {
            subscriptions: items.first().map_or(0, int),
            users: items.get(1).map_or(0, int),
            cache: items
                .get(2)
                .map(|d| (text(d), items.get(3).map_or(0, int).div_ceil(1000))),
        }),
        AskKind::Channels => Answer::Channels(
            items
                .chunks_exact(3)
                .filter_map(|c| {
                    let name = ChannelName::parse(&text(&c[0]), limits).ok()?;
                    Some((
                        Arc::new(name),
                        ChannelInfo {
                            subscriptions: int(&c[1]),
                            users: int(&c[2]),
                            cache: None,
                        },
                    ))
                })
                .collect(),
        ),
        AskKind::Users => Answer::Users(items.iter().map(|v| UserId::from(text(v))).collect()),
        AskKind::Nodes => Answer::Nodes(
            items
                .chunks_exact(3)
                .map(|n| NodeInfo {
                    id: text(&n[0]),
                    connections: int(&n[1]),
                    // PTTL: -2 for a lease that is gone, -1 for one without expiry (never set).
                    lease_ms_left: match &n[2] {
                        redis::Value::Int(ms) if *ms >= 0 => Some(*ms as u64),
                        _ => None,
                    },
                })
                .collect(),
        ),
    }
}

/// What one webhook code of a JOIN or LEAVE reply asks of the node.
#[derive(Debug, PartialEq, Eq)]
pub enum HookStep {
    /// Send this webhook now.
    Send(Hook),
    /// Fire a departure (`v`, `r`) or a throttled count (`d`) later, with its token.
    Later(u8, String),
}

/// The webhook steps of a JOIN or LEAVE reply (`{1, codes...}`; anything else has none).
pub fn hook_steps(ctx: &HookCtx, reply: &redis::Value) -> Vec<HookStep> {
    let redis::Value::Array(items) = reply else {
        return Vec::new();
    };
    let channel = || ctx.channel.clone();
    let user = || ctx.user.clone().unwrap_or_default();
    let mut out = Vec::new();
    let mut it = items.iter().skip(1);
    while let Some(code) = it.next() {
        let step = match text(code).as_str() {
            "o" => HookStep::Send(Hook::ChannelOccupied { channel: channel() }),
            "V" => HookStep::Send(Hook::ChannelVacated { channel: channel() }),
            "a" => HookStep::Send(Hook::MemberAdded {
                channel: channel(),
                user_id: user(),
            }),
            "R" => HookStep::Send(Hook::MemberRemoved {
                channel: channel(),
                user_id: user(),
            }),
            "c" => HookStep::Send(Hook::CacheMiss { channel: channel() }),
            "n" => HookStep::Send(Hook::SubscriptionCount {
                channel: channel(),
                count: it.next().map_or(0, int),
            }),
            "d" => HookStep::Later(b'd', String::new()),
            k @ ("v" | "r") => {
                HookStep::Later(k.as_bytes()[0], it.next().map(text).unwrap_or_default())
            }
            _ => continue,
        };
        out.push(step);
    }
    out
}

/// The webhooks to send of a HOOKFIRE reply, one value per fired departure.
pub fn fired(due: Vec<Pending>, reply: &redis::Value) -> Vec<(AppIdx, Hook)> {
    let redis::Value::Array(items) = reply else {
        return Vec::new();
    };
    due.into_iter()
        .zip(items)
        .filter_map(|(p, v)| {
            let n = match v {
                redis::Value::Int(i) => *i,
                other => text(other).parse().unwrap_or(0),
            };
            let channel = p.ctx.channel;
            let hook = match p.kind {
                b'v' if n == 1 => Hook::ChannelVacated { channel },
                b'r' if n == 1 => Hook::MemberRemoved {
                    channel,
                    user_id: p.ctx.user.unwrap_or_default(),
                },
                b'd' if n > 0 => Hook::SubscriptionCount {
                    channel,
                    count: n as u64,
                },
                _ => return None,
            };
            Some((p.ctx.app, hook))
        })
        .collect()
}

fn int(v: &redis::Value) -> u64 {
    match v {
        redis::Value::Int(i) => (*i).max(0) as u64,
        other => text(other).parse().unwrap_or(0),
    }
}

fn text(v: &redis::Value) -> String {
    match v {
        redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        redis::Value::SimpleString(s) => s.clone(),
        redis::Value::Int(i) => i.to_string(),
        _ => String::new(),
    }
}

/// Where a decoded inbox entry goes.
#[derive(Debug)]
pub enum Delivery {
    /// To every worker of this node.
    All(ShardMsg),
    /// To one worker.
    One(ShardId, ShardMsg),
}

/// Turns inbox entries into shard messages.
#[derive(Debug)]
pub struct Decoder {
    pub apps: Arc<Apps>,
    pub limits: Limits,
}

/// One entry's fields.
pub struct Fields<'a>(pub &'a [(Vec<u8>, Vec<u8>)]);

impl Fields<'_> {
    fn get(&self, name: &str) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(k, _)| k == name.as_bytes())
            .map(|(_, v)| v.as_slice())
    }

    fn str(&self, name: &str) -> Option<&str> {
        std::str::from_utf8(self.get(name)?).ok()
    }

    fn num<T: std::str::FromStr>(&self, name: &str) -> Option<T> {
        self.str(name)?.parse().ok()
    }

    /// A JSON list of strings (an empty Lua table encodes as `{}`).
    fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .and_then(|b| serde_json::from_slice::<Vec<String>>(b).ok())
            .unwrap_or_default()
    }
}

impl Decoder {
    fn app(&self, f: &Fields<'_>) -> Option<AppIdx> {
        Some(self.apps.by_id(f.str("a")?)?.idx)
    }

    fn channel(&self, f: &Fields<'_>) -> Option<Channel> {
        Some(Arc::new(
            ChannelName::parse(f.str("c")?, &self.limits).ok()?,
        ))
    }

    fn conn(f: &Fields<'_>) -> Option<(ShardId, ConnKey)> {
        Some((
            ShardId(f.num("w")?),
            ConnKey {
                slot: f.num("s")?,
                generation: f.num("g")?,
            },
        ))
    }

    /// What one entry delivers; nothing for an entry this node cannot read (an app it does
    /// not serve: every node of a cluster must serve the same apps).
    pub fn decode(&self, f: &Fields<'_>) -> Vec<Delivery> {
        self.try_decode(f).unwrap_or_default()
    }

    fn try_decode(&self, f: &Fields<'_>) -> Option<Vec<Delivery>> {
        Some(match f.str("t")? {
            "p" => {
                let except = match f.str("x")? {
                    "" => None,
                    s => Some(SocketId::parse(s).ok()?),
                };
                vec![Delivery::All(ShardMsg::Publish {
                    app: self.app(f)?,
                    channel: self.channel(f)?,
                    frame: Bytes::copy_from_slice(f.get("f")?),
                    except,
                })]
            }
            "ja" => {
                let (worker, conn) = Self::conn(f)?;
                let channel = self.channel(f)?;
                let user = f.str("u").filter(|u| !u.is_empty()).map(UserId::from);
                let accepted = f.str("ok")? == "1";
                let name = channel.as_str();
                let mut frames = Vec::with_capacity(2);
                if !accepted {
                    let max = self.limits.max_presence_members;
                    let msg = format!("Presence channel is full ({max} members)");
                    frames.push(
                        ServerEvent::SubscriptionError {
                            channel: name,
                            error_type: "LimitReached",
                            error: &msg,
                            status: 403,
                        }
                        .to_frame(),
                    );
                } else if user.is_some() {
                    let flat = f.list("m");
                    let members: Vec<(&str, &str)> = flat
                        .chunks_exact(2)
                        .map(|p| (p[0].as_str(), p[1].as_str()))
                        .collect();
                    frames.push(
                        ServerEvent::PresenceSubscriptionSucceeded {
                            channel: name,
                            members: &members,
                        }
                        .to_frame(),
                    );
                } else {
                    frames.push(ServerEvent::SubscriptionSucceeded { channel: name }.to_frame());
                }
                if accepted {
                    if let Some(cached) = f.get("cf") {
                        frames.push(Bytes::copy_from_slice(cached));
                    } else if f.get("cm").is_some() {
                        frames.push(ServerEvent::CacheMiss { channel: name }.to_frame());
                    }
                }
                vec![Delivery::One(
                    worker,
                    ShardMsg::JoinAnswer(JoinAnswer {
                        conn,
                        app: self.app(f)?,
                        channel: channel.clone(),
                        user: if accepted { user } else { None },
                        accepted,
                        frames,
                    }),
                )]
            }
            "wl" => {
                let (worker, conn) = Self::conn(f)?;
                let (on, off) = (f.list("on"), f.list("off"));
                let on: Vec<&str> = on.iter().map(String::as_str).collect();
                let off: Vec<&str> = off.iter().map(String::as_str).collect();
                let frame = ServerEvent::WatchlistEvents {
                    online: &on,
                    offline: &off,
                }
                .to_frame();
                vec![Delivery::One(
                    worker,
                    ShardMsg::ToConn {
                        conn,
                        frames: vec![frame],
                    },
                )]
            }
            "tu" => {
                let app = self.app(f)?;
                let frame = Bytes::copy_from_slice(f.get("f")?);
                f.list("u")
                    .into_iter()
                    .map(|u| {
                        Delivery::All(ShardMsg::ToUser {
                            app,
                            user: UserId::from(u),
                            frame: frame.clone(),
                        })
                    })
                    .collect()
            }
            "tm" => vec![Delivery::All(ShardMsg::Terminate {
                app: self.app(f)?,
                user: UserId::from(f.str("u")?),
            })],
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_parts_surround_the_number_exactly() {
        for name in ["room-918273645546372819", "x", "private-a.b"] {
            let (pre, post) = count_parts(name);
            let mut built = pre.clone();
            built.extend_from_slice(b"42");
            built.extend_from_slice(&post);
            let want = ServerEvent::SubscriptionCount {
                channel: name,
                count: 42,
            }
            .to_json();
            assert_eq!(
                String::from_utf8(built).unwrap(),
                String::from_utf8(want).unwrap()
            );
        }
    }
}
