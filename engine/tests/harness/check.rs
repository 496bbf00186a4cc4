//! What the simulation checks: every client's views after every step, and the owners' facts
//! against the shards' whenever nothing is queued.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use ringcast::ids::AppIdx;
use ringcast::state::msg::{Answer, Question};

use super::Sim;

impl Sim {
    /// Panics on any violation a step caused, with the steps so far.
    pub(super) fn after_step(&mut self) {
        let mut problems: Vec<String> = Vec::new();
        for c in self.conns() {
            for v in &self.conn(c).violations {
                problems.push(format!("c{} (w{}): {v}", c.0, self.conns[c.0].worker));
            }
        }
        if problems.is_empty() && self.check_when_quiet && self.is_quiet() {
            problems = self.quiet_violations();
        }
        if !problems.is_empty() {
            panic!("{}\n{}", problems.join("\n"), self.trace());
        }
    }

    /// The last steps, for a failure message.
    pub fn trace(&self) -> String {
        let mut out = String::from("steps (latest last):\n");
        let skip = self.log.len().saturating_sub(60);
        if skip > 0 {
            let _ = writeln!(out, "  ... {skip} earlier steps");
        }
        for (i, line) in self.log.iter().enumerate().skip(skip) {
            let _ = writeln!(out, "  {i:>4} {line}");
        }
        out
    }

    /// What contradicts what, once nothing is queued: the owners' facts against the shards'
    /// live subscriptions, and the clients' views against the owners' facts.
    pub fn quiet_violations(&self) -> Vec<String> {
        let mut out = Vec::new();
        let now = self.now();
        // Live subscriptions and presence memberships, across every shard.
        let mut subs: BTreeMap<String, u64> = BTreeMap::new();
        let mut as_user: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new();
        for c in self.conns() {
            let r = &self.conns[c.0];
            if r.gone.is_some() {
                continue;
            }
            let shard = &self.workers[r.worker].shard;
            if shard.pending_joins(r.key) > 0 {
                out.push(format!(
                    "c{} still waits for {} joins with nothing queued",
                    c.0,
                    shard.pending_joins(r.key)
                ));
            }
            let conn = self.conn(c);
            if conn.closing.is_some() && !shard.subscriptions(r.key).is_empty() {
                out.push(format!("c{} is closing but still subscribed", c.0));
            }
            for ch in shard.subscriptions(r.key) {
                *subs.entry(ch.as_str().to_string()).or_default() += 1;
                if ch.is_presence() {
                    match shard.presence_user(r.key, ch.as_str()) {
                        Some(u) => {
                            *as_user
                                .entry(ch.as_str().to_string())
                                .or_default()
                                .entry(u.to_string())
                                .or_default() += 1
                        }
                        None => out.push(format!(
                            "c{} is subscribed to {} as no user",
                            c.0,
                            ch.as_str()
                        )),
                    }
                }
            }
        }
        // Every channel any owner knows of, and every channel subscribed anywhere.
        let mut names: BTreeSet<String> = subs.keys().cloned().collect();
        for w in &self.workers {
            let q = Question::Channels {
                app: AppIdx(0),
                prefix: String::new(),
            };
            if let Answer::Channels(list) = w.owner.answer(&q, now) {
                names.extend(list.into_iter().map(|(c, _)| c.as_str().to_string()));
            }
        }
        for name in &names {
            let info = self.channel_info(name);
            let live = subs.get(name).copied().unwrap_or(0);
            if info.subscriptions != live {
                out.push(format!(
                    "{name}: the owner counts {} subscriptions, the shards have {live}",
                    info.subscriptions
                ));
            }
            if !name.starts_with("presence-") {
                continue;
            }
            let members: BTreeMap<String, u32> = self.members(name).into_iter().collect();
            let expected = as_user.get(name).cloned().unwrap_or_default();
            if members != expected {
                out.push(format!(
                    "{name}: the owner's members (user: sockets) are {members:?}, the live \
                     subscriptions are {expected:?}"
                ));
            }
            if info.users != members.len() as u64 {
                out.push(format!(
                    "{name}: user_count {} but {} members",
                    info.users,
                    members.len()
                ));
            }
        }
        // The clients' views.
        let count_events = self.apps.get(AppIdx(0)).cfg.subscription_count;
        let watchlists = self.apps.get(AppIdx(0)).cfg.watchlist_events;
        let online: BTreeSet<&str> = self
            .conns()
            .into_iter()
            .filter(|c| self.is_live(*c))
            .filter_map(|c| self.conn(c).signed_in.as_ref().map(|(u, _)| u.as_str()))
            .collect();
        for c in self.conns() {
            if !self.is_live(c) {
                continue;
            }
            let conn = self.conn(c);
            let r = &self.conns[c.0];
            for ch in self.workers[r.worker].shard.subscriptions(r.key) {
                let name = ch.as_str();
                if ch.is_presence() {
                    let members: BTreeSet<String> =
                        self.members(name).into_iter().map(|(u, _)| u).collect();
                    match conn.views.get(name) {
                        Some(view) if *view == members => {}
                        view => out.push(format!(
                            "c{} believes {name} has {view:?}, its owner has {members:?}",
                            c.0
                        )),
                    }
                } else if count_events {
                    let live = subs.get(name).copied().unwrap_or(0);
                    let seen = conn.counts.get(name).copied();
                    if seen != Some(live) {
                        out.push(format!(
                            "c{} last got subscription_count {seen:?} on {name}, which has {live}",
                            c.0
                        ));
                    }
                }
            }
            if let Some((_, watchlist)) = conn.signed_in.as_ref().filter(|_| watchlists) {
                for id in watchlist {
                    let is_online = online.contains(id.as_str());
                    let told = conn.watch.get(id).copied();
                    if told != Some(is_online) {
                        out.push(format!(
                            "c{} was last told {id} is {told:?} online; it is {is_online}",
                            c.0
                        ));
                    }
                }
            }
        }
        out
    }
}
