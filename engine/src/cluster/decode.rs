//! What crosses Redis inbound: inbox entries as shard messages, and script replies as answers.
//!
//! An inbox entry is a flat list of field/value pairs whose `t` says what it is
//! ([`Decoder::decode`]):
//!
//! | `t` | fields | becomes |
//! |---|---|---|
//! | `p` | `a` app id, `c` channel, `x` excluded socket id or empty, `f` frame; for a publish of an API request or a client event also `o` origin node, `n` its operation number, `i` the event's place among the request's items and `e` `1` on the request's last item for this node | [`ShardMsg::Publish`] on every worker, once per origin, number and place ([`Delivery::Op`]) |
//! | `ja` | `w` worker, `s`/`g` connection slot and generation, `q` the join's number on its worker, `a`, `c`, `u` presence user or empty, `ok` 1/0, `m` members as a JSON list `[id, info, ...]`, `cf` cached frame or `cm` cache miss | [`ShardMsg::JoinAnswer`] on worker `w` |
//! | `wl` | `w`, `s`, `g`, `on`, `off` (JSON lists of user ids) | the signer's watchlist frame, [`ShardMsg::ToConn`] on worker `w` |
//! | `tu` | `a`, `u` (JSON list of user ids), `f` frame | [`ShardMsg::ToUser`] for each user on every worker |
//! | `tm` | `a`, `u` user id | [`ShardMsg::Terminate`] on every worker |
//!
//! Frames that the node builds itself from an entry (its own join answers and watchlist split)
//! are the ones whose content only the script knew: the member list, the cache hit or miss.

use std::sync::Arc;

use bytes::Bytes;
use ringcast_protocol::Limits;
use ringcast_protocol::pusher::channel::ChannelName;
use ringcast_protocol::pusher::event::ServerEvent;
use ringcast_protocol::pusher::socket_id::SocketId;

use super::wire::{AskKind, HookCtx, Pending};
use crate::app::Apps;
use crate::ids::{AppIdx, ConnKey, ShardId};
use crate::state::msg::{Answer, Channel, ChannelInfo, JoinAnswer, NodeInfo, ShardMsg, UserId};
use crate::webhook::Hook;

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

/// What one webhook code of a JOIN or LEAVE reply (or of the reaper's list) asks of the node.
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

/// The webhooks the reaper decided (HEARTBEAT's fifth part: groups of kind, app id, channel,
/// user id, due time or count), each with what it is about. Apps and channels this node does
/// not know are skipped (their entries stay until a join of that channel or user finds them).
pub fn reaped_hooks(
    reply: &redis::Value,
    apps: &Apps,
    limits: &Limits,
) -> Vec<(HookCtx, HookStep)> {
    let redis::Value::Array(items) = reply else {
        return Vec::new();
    };
    items
        .chunks_exact(5)
        .filter_map(|g| {
            let app = apps.by_id(&text(&g[1]))?.idx;
            let channel = Arc::new(ChannelName::parse(&text(&g[2]), limits).ok()?);
            let user = text(&g[3]);
            let ctx = HookCtx {
                app,
                channel: channel.clone(),
                user: (!user.is_empty()).then(|| UserId::from(user.as_str())),
            };
            let step = match text(&g[0]).as_str() {
                "n" => HookStep::Send(Hook::SubscriptionCount {
                    channel,
                    count: int(&g[4]),
                }),
                k @ ("v" | "r" | "d") => HookStep::Later(k.as_bytes()[0], text(&g[4])),
                _ => return None,
            };
            Some((ctx, step))
        })
        .collect()
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
    /// To every worker, unless item `item` of the publish numbered `op` of node `origin` (or
    /// a later one of it) was already delivered here (`super::seen`); `end` when it is the
    /// publish's last item for this node.
    Op {
        origin: String,
        op: u64,
        item: u32,
        end: bool,
        msg: ShardMsg,
    },
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
                let msg = ShardMsg::Publish {
                    app: self.app(f)?,
                    channel: self.channel(f)?,
                    frame: Bytes::copy_from_slice(f.get("f")?),
                    except,
                };
                vec![match (f.str("o"), f.num::<u64>("n")) {
                    // An entry without its place in the request is the request's only item.
                    (Some(origin), Some(op)) => Delivery::Op {
                        origin: origin.to_string(),
                        op,
                        item: f.num::<u32>("i").unwrap_or(0),
                        end: f.str("e").is_none_or(|e| e == "1"),
                        msg,
                    },
                    _ => Delivery::All(msg),
                }]
            }
            "ja" => {
                let (worker, conn) = Self::conn(f)?;
                let seq = f.num("q")?;
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
                        seq,
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
