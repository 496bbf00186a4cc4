//! Re-asserting this node's share of the cluster-wide facts, from what its connections hold.
//!
//! A node must put its share back when Redis lost it: a Redis that restarted without
//! persistence (REGISTER answers `silent`), or the node's own lease expired and a survivor
//! reaped it (`loud`). The node asks every worker for a [`Snapshot`] of its connections; the
//! inbox thread sends the requests after delivering what it had read, so no join answer read
//! before can still be on its way. Each worker queues its snapshot in the link behind
//! everything it sent before, which tells the command thread which of the operations it held
//! the snapshot already reflects:
//!
//! - a leave, sign-in or sign-out sent before the snapshot is in it, and is not sent again
//!   (after a silent re-assertion its departure is checked instead, with SETTLE: the member
//!   may have left everyone's lists meanwhile, or not);
//! - a join sent before the snapshot is sent again if the snapshot still has it pending (its
//!   answer was lost with Redis), and dropped if not (it was answered, or its connection
//!   left);
//! - publishes, terminations and everything sent after the snapshot go as they are.
//!
//! The snapshots are summed per fact ([`Totals`]) and written with ASSERT, in chunks. A loud
//! assertion sends the events new joins would; a silent one sends none, because every client
//! already saw those members and counts, and waits (`super::command`) until the other nodes
//! have re-asserted too before SETTLE sends what changed meanwhile.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::sync::Arc;

use ringcast_protocol::pusher::event::ServerEvent;

use super::outbox::Held;
use super::scripts::ScriptId;
use super::wire::{Command, Encoder, offline_frame};
use crate::ids::{AppIdx, ConnKey, ShardId};
use crate::state::msg::{Channel, OwnerMsg, Snapshot, UserId};

/// Most records in one ASSERT or SETTLE call.
pub const CHUNK: usize = 1000;

/// How a node re-asserts its share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// After a reap: with the events of new joins.
    Loud,
    /// After Redis lost its data: without events, then SETTLE.
    Silent,
}

impl Mode {
    fn arg(self) -> &'static str {
        match self {
            Mode::Loud => "loud",
            Mode::Silent => "silent",
        }
    }
}

/// A presence member: app, channel name, user.
type MemberKey = (AppIdx, String, UserId);

/// Everything the workers' snapshots hold, summed per fact.
#[derive(Debug, Default)]
pub struct Totals {
    subs: BTreeMap<(AppIdx, String), (Channel, u64)>,
    members: BTreeMap<MemberKey, (Channel, u64, Arc<str>)>,
    signins: BTreeMap<(AppIdx, UserId), u64>,
    watches: BTreeMap<(AppIdx, UserId, UserId), u64>,
}

impl Totals {
    /// The sums of `snaps`.
    pub fn of<'a>(snaps: impl IntoIterator<Item = &'a Snapshot>) -> Totals {
        let mut t = Totals::default();
        for s in snaps {
            for (app, ch, member) in &s.subs {
                t.subs
                    .entry((*app, ch.as_str().to_string()))
                    .or_insert_with(|| (ch.clone(), 0))
                    .1 += 1;
                if let Some((user, info)) = member {
                    t.members
                        .entry((*app, ch.as_str().to_string(), user.clone()))
                        .or_insert_with(|| (ch.clone(), 0, info.clone()))
                        .1 += 1;
                }
            }
            for (app, user, watchlist) in &s.signins {
                *t.signins.entry((*app, user.clone())).or_default() += 1;
                for w in watchlist {
                    *t.watches
                        .entry((*app, w.clone(), user.clone()))
                        .or_default() += 1;
                }
            }
        }
        t
    }

    /// Whether there is nothing to assert.
    pub fn is_empty(&self) -> bool {
        self.subs.is_empty() && self.signins.is_empty()
    }
}

/// What a re-assertion leaves to SETTLE.
#[derive(Debug, Default)]
pub struct Followups {
    /// Presence members whose connection here left while Redis could not hear it.
    pub departed: Vec<(AppIdx, Channel, UserId)>,
    /// Users whose signed-in connection here left meanwhile.
    pub offline: Vec<(AppIdx, UserId)>,
    /// Channels whose subscriptions changed meanwhile (their counts are sent again).
    pub changed: Vec<(AppIdx, Channel)>,
    /// Sign-ins made meanwhile, to be told which of their watched users are online.
    pub signins: Vec<(AppIdx, ShardId, ConnKey, Vec<UserId>)>,
}

/// Chunks `records` (each a list of arguments) into calls of `id` after `head`.
fn chunked(
    enc: &Encoder,
    id: ScriptId,
    head: &[&str],
    records: Vec<Vec<Vec<u8>>>,
) -> Vec<redis::Cmd> {
    records
        .chunks(CHUNK)
        .map(|chunk| {
            let mut c = enc.call(id);
            for h in head {
                c.arg(*h);
            }
            for r in chunk {
                for a in r {
                    c.arg(&a[..]);
                }
            }
            c
        })
        .collect()
}

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

/// The ASSERT calls that write `t`; after a loud assertion, also the one that raises the
/// node's highest applied operation to `answered`, the highest Redis had answered it.
pub fn assert_calls(enc: &Encoder, mode: Mode, t: &Totals, answered: u64) -> Vec<redis::Cmd> {
    let app_id = |a: AppIdx| b(&enc.apps.get(a).cfg.id);
    let mut records = Vec::new();
    for ((app, _), (ch, n)) in &t.subs {
        let (pre, post) = enc.counts(*app, ch);
        records.push(vec![
            b("s"),
            app_id(*app),
            b(ch.as_str()),
            b(&n.to_string()),
            pre,
            post,
        ]);
    }
    for ((app, _, user), (ch, n, info)) in &t.members {
        let added = ServerEvent::MemberAdded {
            channel: ch.as_str(),
            user_id: user,
            user_info: info,
        }
        .to_frame();
        records.push(vec![
            b("m"),
            app_id(*app),
            b(ch.as_str()),
            b(user),
            b(&n.to_string()),
            b(info),
            added.to_vec(),
        ]);
    }
    for ((app, user), n) in &t.signins {
        let online = ServerEvent::WatchlistEvents {
            online: &[user],
            offline: &[],
        }
        .to_frame();
        records.push(vec![
            b("u"),
            app_id(*app),
            b(user),
            b(&n.to_string()),
            online.to_vec(),
        ]);
    }
    for ((app, watched, watcher), n) in &t.watches {
        records.push(vec![
            b("w"),
            app_id(*app),
            b(watched),
            b(watcher),
            b(&n.to_string()),
        ]);
    }
    if mode == Mode::Loud {
        // (Silent: the recent publishes are sent again, which the number REGISTER set lets.)
        records.push(vec![b("h"), b(&answered.to_string())]);
    }
    chunked(enc, ScriptId::Assert, &[mode.arg()], records)
}

/// The SETTLE calls of a re-assertion: after a silent one, the departures, offline users and
/// counts to check again (the counts of every channel here, and of those that changed), and
/// after either the sign-ins to answer.
pub fn settle_calls(enc: &Encoder, mode: Mode, t: &Totals, f: &Followups) -> Vec<redis::Cmd> {
    let app_id = |a: AppIdx| b(&enc.apps.get(a).cfg.id);
    let mut records = Vec::new();
    if mode == Mode::Silent {
        for (app, ch, user) in &f.departed {
            let removed = ServerEvent::MemberRemoved {
                channel: ch.as_str(),
                user_id: user,
            }
            .to_frame();
            records.push(vec![
                b("r"),
                app_id(*app),
                b(ch.as_str()),
                b(user),
                removed.to_vec(),
            ]);
        }
        for (app, user) in &f.offline {
            records.push(vec![
                b("o"),
                app_id(*app),
                b(user),
                offline_frame(user).to_vec(),
            ]);
        }
        let mut counted = BTreeSet::new();
        let channels = t
            .subs
            .values()
            .map(|(ch, _)| ch)
            .zip(t.subs.keys().map(|(a, _)| *a))
            .map(|(ch, a)| (a, ch.clone()))
            .chain(f.changed.iter().cloned());
        for (app, ch) in channels {
            let (pre, post) = enc.counts(app, &ch);
            if !pre.is_empty() && counted.insert((app, ch.as_str().to_string())) {
                records.push(vec![b("c"), app_id(app), b(ch.as_str()), pre, post]);
            }
        }
    }
    for (app, worker, conn, watched) in &f.signins {
        let list = serde_json::to_vec(&watched.iter().map(|w| &**w).collect::<Vec<&str>>())
            .unwrap_or_else(|_| b"[]".to_vec());
        records.push(vec![
            b("l"),
            app_id(*app),
            b(&worker.0.to_string()),
            b(&conn.slot.to_string()),
            b(&conn.generation.to_string()),
            list,
        ]);
    }
    chunked(enc, ScriptId::Settle, &[], records)
}

/// What one worker's snapshot says about the operations held: the number of the last
/// operation queued before it, and the joins it still has pending.
#[derive(Debug, Default)]
pub struct Cut {
    pub before: u64,
    pub pending: HashSet<u32>,
}

/// Sorts the held operations after the snapshots (see the module docs): what they keep, in
/// order, and what the dropped ones leave to SETTLE. Also hands back the bytes the dropped
/// ones held.
pub fn sort_held(held: VecDeque<Held>, cuts: &[Cut], f: &mut Followups) -> (VecDeque<Held>, usize) {
    let mut kept = VecDeque::with_capacity(held.len());
    let mut freed = 0;
    for h in held {
        let before = |w: ShardId| cuts.get(w.0 as usize).is_some_and(|c| h.op <= c.before);
        let keep = match &h.cmd {
            Command::Owner(w, msg) if before(*w) => match msg {
                OwnerMsg::Join(j) => cuts[w.0 as usize].pending.contains(&j.seq),
                OwnerMsg::Leave { app, channel, user } => {
                    f.changed.push((*app, channel.clone()));
                    if let Some(u) = user {
                        f.departed.push((*app, channel.clone(), u.clone()));
                    }
                    false
                }
                OwnerMsg::Signout { app, user, .. } => {
                    f.offline.push((*app, user.clone()));
                    false
                }
                OwnerMsg::Signin {
                    app,
                    watchlist,
                    from,
                    conn,
                    ..
                } => {
                    if !watchlist.is_empty() {
                        f.signins.push((*app, *from, *conn, watchlist.clone()));
                    }
                    false
                }
                OwnerMsg::Cache { .. } => true,
            },
            _ => true,
        };
        if keep {
            kept.push_back(h);
        } else {
            freed += h.cost;
        }
    }
    (kept, freed)
}
