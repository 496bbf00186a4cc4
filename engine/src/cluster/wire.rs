//! What crosses Redis outbound: the link's commands as script calls. The way back (inbox
//! entries and script replies) is [`super::decode`].
//!
//! Outbound, every [`Command`] becomes one `EVALSHA` ([`Encoder::encode`]) whose arguments are
//! strings and frame bytes; nothing is serialised beyond what the scripts store or copy. An
//! operation carries its number on this node (`super::command` numbers them in the order the
//! workers queued them), which the scripts' guard uses to apply each once.

use std::sync::Arc;

use bytes::Bytes;
use futures_channel::oneshot;
use ringcast_protocol::pusher::channel::ChannelName;
use ringcast_protocol::pusher::event::ServerEvent;
use ringcast_protocol::pusher::socket_id::SocketId;

use super::scripts::{ScriptId, Scripts};
use crate::app::Apps;
use crate::ids::{AppIdx, ShardId};
use crate::mesh::{MESSAGE_COST, owner_msg_cost};
use crate::state::msg::{Answer, Channel, OwnerMsg, Question, ShardMsg, Snapshot, UserId};

/// One publish for the PUBLISH script.
#[derive(Clone, Debug)]
pub struct Item {
    pub app: AppIdx,
    pub channel: Channel,
    pub frame: Bytes,
    pub except: Option<SocketId>,
    /// A cache channel's event data: Redis keeps the event for the channel's joiners.
    pub cache: Option<String>,
}

/// What the workers (and the API) ask of the cluster link.
#[derive(Debug)]
pub enum Command {
    /// A message of worker `.0` for the owner of a fact, which in a cluster is Redis.
    Owner(ShardId, OwnerMsg),
    /// The publishes of one API request or one client event, in order, as one step; the
    /// sender is told once they are in Redis (or held for it while Redis is unreachable), and
    /// dropped if Redis refused them.
    Publish(Vec<Item>, Option<oneshot::Sender<()>>),
    /// Close a user's connections on every node.
    Terminate { app: AppIdx, user: UserId },
    /// A question about cluster-wide facts.
    Ask(Question, oneshot::Sender<Answer>),
    /// What worker `.0`'s connections hold, asked for when the node re-asserts its share of
    /// the facts (`super::rebuild`); queued behind everything the worker sent before it.
    Snapshot(ShardId, Snapshot),
    /// Finish what is queued, say goodbye to the cluster, and acknowledge.
    Stop(std::sync::mpsc::Sender<()>),
}

impl Command {
    /// Bytes this command is counted as in the link's queue.
    pub fn cost(&self) -> usize {
        match self {
            Command::Owner(_, m) => owner_msg_cost(m),
            Command::Publish(items, _) => items_cost(items),
            Command::Snapshot(_, s) => MESSAGE_COST + s.cost(),
            _ => MESSAGE_COST,
        }
    }

    /// Whether the command is an operation: it changes the cluster and has a number.
    pub fn is_op(&self) -> bool {
        matches!(
            self,
            Command::Owner(..) | Command::Publish(..) | Command::Terminate { .. }
        )
    }

    /// What this node's own workers must be given of it when Redis cannot carry it back
    /// (publishes are written here from this node's inbox otherwise).
    pub fn local_part(&self) -> Vec<ShardMsg> {
        match self {
            Command::Publish(items, _) => items
                .iter()
                .map(|i| ShardMsg::Publish {
                    app: i.app,
                    channel: i.channel.clone(),
                    frame: i.frame.clone(),
                    except: i.except,
                })
                .collect(),
            Command::Owner(
                _,
                OwnerMsg::Cache {
                    app,
                    channel,
                    frame,
                    except,
                    ..
                },
            ) => vec![ShardMsg::Publish {
                app: *app,
                channel: channel.clone(),
                frame: frame.clone(),
                except: *except,
            }],
            Command::Terminate { app, user } => vec![ShardMsg::Terminate {
                app: *app,
                user: user.clone(),
            }],
            _ => Vec::new(),
        }
    }
}

/// Bytes a publish's items take.
pub fn items_cost(items: &[Item]) -> usize {
    items
        .iter()
        .map(|i| MESSAGE_COST + i.frame.len() + i.cache.as_ref().map_or(0, String::len))
        .sum()
}

/// What a JOIN, LEAVE or HOOKFIRE reply's webhook codes are about.
#[derive(Clone, Debug)]
pub struct HookCtx {
    pub app: AppIdx,
    pub channel: Channel,
    pub user: Option<UserId>,
}

impl HookCtx {
    /// What a JOIN or LEAVE's webhook codes are about, `None` for any other command.
    pub fn of(cmd: &Command) -> Option<HookCtx> {
        match cmd {
            Command::Owner(_, OwnerMsg::Join(j)) => Some(HookCtx {
                app: j.app,
                channel: j.channel.clone(),
                user: j.member.as_ref().map(|(u, _)| u.clone()),
            }),
            Command::Owner(_, OwnerMsg::Leave { app, channel, user }) => Some(HookCtx {
                app: *app,
                channel: channel.clone(),
                user: user.clone(),
            }),
            _ => None,
        }
    }
}

/// A departure's webhook (or a throttled count's) waiting on this node for its delay
/// (`super::command`).
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

/// Which question a QUERY answers.
#[derive(Clone, Copy, Debug)]
pub enum AskKind {
    Channel,
    Channels,
    Users,
    Nodes,
}

impl AskKind {
    /// The kind of `q`.
    pub fn of(q: &Question) -> AskKind {
        match q {
            Question::Channel { .. } => AskKind::Channel,
            Question::Channels { .. } => AskKind::Channels,
            Question::Users { .. } => AskKind::Users,
            Question::Nodes { .. } => AskKind::Nodes,
        }
    }
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

    /// A call of script `id`, which the caller gives its own arguments.
    pub fn call(&self, id: ScriptId) -> redis::Cmd {
        self.scripts.call(id, &self.prefix, &self.node)
    }

    /// A call of operation script `id` with operation number `op`.
    fn op(&self, id: ScriptId, op: u64) -> redis::Cmd {
        let mut c = self.call(id);
        c.arg(op);
        c
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
    pub fn counts(&self, app: AppIdx, channel: &ChannelName) -> (Vec<u8>, Vec<u8>) {
        if self.apps.get(app).cfg.subscription_count && !channel.is_presence() {
            count_parts(channel.as_str())
        } else {
            (Vec::new(), Vec::new())
        }
    }

    /// The script call of operation `op` (its number; unused by a question), `local_done`
    /// when this node's own workers already have what it publishes. `None` for what is no
    /// script call ([`Command::Snapshot`], [`Command::Stop`]).
    pub fn encode(&self, cmd: &Command, op: u64, local_done: bool) -> Option<redis::Cmd> {
        Some(match cmd {
            Command::Owner(_, OwnerMsg::Join(j)) => {
                let mut c = self.op(ScriptId::Join, op);
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
                    .arg(j.seq)
                    .arg(&*user)
                    .arg(info)
                    .arg(j.socket_id.to_string())
                    .arg(self.max_members)
                    .arg(if j.channel.is_cache() { "1" } else { "0" })
                    .arg(pre)
                    .arg(post)
                    .arg(&added[..])
                    .arg(self.hook_flags(j.app, &j.channel));
                c
            }
            Command::Owner(_, OwnerMsg::Leave { app, channel, user }) => {
                let mut c = self.op(ScriptId::Leave, op);
                let removed = match user {
                    Some(u) => ServerEvent::MemberRemoved {
                        channel: channel.as_str(),
                        user_id: u,
                    }
                    .to_frame(),
                    None => Bytes::new(),
                };
                let (pre, post) = self.counts(*app, channel);
                c.arg(self.app_id(*app))
                    .arg(channel.as_str())
                    .arg(user.as_deref().unwrap_or(""))
                    .arg(&removed[..])
                    .arg(pre)
                    .arg(post)
                    .arg(self.hook_flags(*app, channel));
                c
            }
            Command::Owner(
                _,
                OwnerMsg::Cache {
                    app,
                    channel,
                    data,
                    frame,
                    except,
                },
            ) => {
                let item = Item {
                    app: *app,
                    channel: channel.clone(),
                    frame: frame.clone(),
                    except: *except,
                    cache: Some(data.clone()),
                };
                self.publish(std::slice::from_ref(&item), op, local_done)
            }
            Command::Publish(items, _) => self.publish(items, op, local_done),
            Command::Owner(
                _,
                OwnerMsg::Signin {
                    app,
                    user,
                    watchlist,
                    from,
                    conn,
                },
            ) => {
                let mut c = self.op(ScriptId::Signin, op);
                let online = ServerEvent::WatchlistEvents {
                    online: &[user],
                    offline: &[],
                }
                .to_frame();
                c.arg(self.app_id(*app))
                    .arg(&**user)
                    .arg(from.0)
                    .arg(conn.slot)
                    .arg(conn.generation)
                    .arg(&online[..]);
                for w in watchlist {
                    c.arg(&**w);
                }
                c
            }
            Command::Owner(
                _,
                OwnerMsg::Signout {
                    app,
                    user,
                    watchlist,
                },
            ) => {
                let mut c = self.op(ScriptId::Signout, op);
                c.arg(self.app_id(*app))
                    .arg(&**user)
                    .arg(&offline_frame(user)[..]);
                for w in watchlist {
                    c.arg(&**w);
                }
                c
            }
            Command::Terminate { app, user } => {
                let mut c = self.op(ScriptId::Terminate, op);
                c.arg(self.app_id(*app))
                    .arg(&**user)
                    .arg(if local_done { "1" } else { "0" });
                c
            }
            Command::Ask(q, _) => {
                let mut c = self.call(ScriptId::Query);
                match q {
                    Question::Channel { app, channel } => {
                        c.arg("c").arg(self.app_id(*app)).arg(channel.as_str());
                    }
                    Question::Channels { app, prefix } => {
                        c.arg("l").arg(self.app_id(*app)).arg(prefix);
                    }
                    Question::Users { app, channel } => {
                        c.arg("u").arg(self.app_id(*app)).arg(channel.as_str());
                    }
                    Question::Nodes { app } => {
                        c.arg("n").arg(self.app_id(*app));
                    }
                }
                c
            }
            Command::Snapshot(..) | Command::Stop(_) => return None,
        })
    }

    fn publish(&self, items: &[Item], op: u64, local_done: bool) -> redis::Cmd {
        let mut c = self.op(ScriptId::Publish, op);
        for i in items {
            let ttl = match &i.cache {
                Some(_) => (self.apps.get(i.app).cfg.cache_ttl.saturating_mul(1000)).to_string(),
                None => String::new(),
            };
            c.arg(self.app_id(i.app))
                .arg(i.channel.as_str())
                .arg(sid(&i.except))
                .arg(&i.frame[..])
                .arg(i.cache.as_deref().unwrap_or(""))
                .arg(ttl)
                .arg(if local_done { "1" } else { "0" });
        }
        c
    }

    /// The app triples of HEARTBEAT, REGISTER and GOODBYE: each app's id, this node's open
    /// connections to it, and how it counts subscriptions: '1' it sends `subscription_count`
    /// events, 'h' only its webhooks want the counts, '0' neither.
    pub fn app_triples(&self, c: &mut redis::Cmd) {
        for i in 0..self.apps.len() {
            let app = self.apps.get(AppIdx(i as u32));
            let counts = if app.cfg.subscription_count {
                "1"
            } else if app.wants(crate::webhook::EventKind::SubscriptionCount) {
                "h"
            } else {
                "0"
            };
            c.arg(&app.cfg.id).arg(app.local_connections()).arg(counts);
        }
    }

    /// The HEARTBEAT call with a lease of `lease_ms`.
    pub fn heartbeat(&self, lease_ms: u64) -> redis::Cmd {
        let mut c = self.call(ScriptId::Heartbeat);
        c.arg(lease_ms).arg(super::scripts::REAP_BUDGET);
        self.app_triples(&mut c);
        c
    }

    /// The REGISTER call: the epoch this node knows, a fresh one for a Redis without any, the
    /// operation number to start from, the lease, whether to start from scratch anyway, and
    /// the highest operation number Redis answered this node.
    pub fn register(
        &self,
        known: &str,
        fresh: &str,
        floor: u64,
        lease_ms: u64,
        force: bool,
        answered: u64,
    ) -> redis::Cmd {
        let mut c = self.call(ScriptId::Register);
        c.arg(known)
            .arg(fresh)
            .arg(floor)
            .arg(lease_ms)
            .arg(if force { "1" } else { "0" })
            .arg(answered);
        self.app_triples(&mut c);
        c
    }

    /// The GOODBYE call.
    pub fn goodbye(&self) -> redis::Cmd {
        let mut c = self.call(ScriptId::Goodbye);
        self.app_triples(&mut c);
        c
    }
}

/// The watchlist frame saying `user` went offline.
pub fn offline_frame(user: &str) -> Bytes {
    ServerEvent::WatchlistEvents {
        online: &[],
        offline: &[user],
    }
    .to_frame()
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
