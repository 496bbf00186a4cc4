//! The app table: every app's settings and its cluster-wide connection count.
//!
//! The table is built at start-up and shared read-only by every worker through an `Arc`.
//! Its one mutable part is each app's open-connection counter, an atomic: `max_connections` is a
//! limit across all workers that must be checked at the moment a connection opens, and an atomic
//! increment is both the cheapest and the only exact way to do that. The counter is the owner of
//! the fact "connections per app" (see the crate docs for the other facts and their owners).
//!
//! In a cluster each node keeps its own counter exact and adds the other nodes' counts, which
//! the cluster link refreshes from Redis every second: `max_connections` is then a cluster-wide
//! limit that is exact on each node and can be passed by the connections other nodes opened in
//! the last second.
//!
//! A configuration reload (`crate::reload`) builds a new table with [`Apps::reload`] and hands
//! it to every worker. An app keeps its index for as long as the process runs, whatever the
//! reloads do: the workers' per-app state (registries, owners' facts, counters) is indexed by
//! it. A kept app (the same id) keeps its index and its connection counter; a removed app
//! stays in the table as a tombstone that no key or id finds; a new app gets the next index.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::AppConfig;
use crate::ids::AppIdx;

/// One app at run time. Its `Debug` output shows the settings without the secret (see
/// [`AppConfig`]'s `Debug`).
#[derive(Debug)]
pub struct App {
    /// Its index in the table.
    pub idx: AppIdx,
    /// Its settings.
    pub cfg: AppConfig,
    connections: Arc<AtomicU64>,
    /// The other nodes' open connections, as last refreshed (0 on a lone node).
    others: Arc<AtomicU64>,
    /// The webhook event kinds any of the app's webhooks wants (`crate::webhook::EventKind`
    /// bits): the state core decides no webhook nobody asked for.
    hooks: u8,
    /// Removed by a reload: no key or id finds it any more.
    pub removed: bool,
}

impl App {
    /// Counts a new connection unless the app is at `max_connections`; `false` means refused.
    pub fn try_connect(&self) -> bool {
        let before =
            self.connections.fetch_add(1, Ordering::AcqRel) + self.others.load(Ordering::Acquire);
        match self.cfg.max_connections {
            Some(max) if before >= max => {
                self.connections.fetch_sub(1, Ordering::AcqRel);
                false
            }
            _ => true,
        }
    }

    /// Uncounts a connection that [`App::try_connect`] counted.
    pub fn disconnect(&self) {
        self.connections.fetch_sub(1, Ordering::AcqRel);
    }

    /// Open connections across all workers, and across all nodes of a cluster.
    pub fn connections(&self) -> u64 {
        self.local_connections() + self.others.load(Ordering::Acquire)
    }

    /// Open connections across the workers of this node.
    pub fn local_connections(&self) -> u64 {
        self.connections.load(Ordering::Acquire)
    }

    /// The webhook event kinds the app's webhooks want, as a mask of
    /// [`EventKind::bit`](crate::webhook::EventKind::bit)s.
    pub fn hooks(&self) -> u8 {
        self.hooks
    }

    /// Whether one of the app's webhooks wants events of `kind`.
    pub fn wants(&self, kind: crate::webhook::EventKind) -> bool {
        self.hooks & kind.bit() != 0
    }

    /// Records the other nodes' open connections.
    pub fn set_others(&self, n: u64) {
        self.others.store(n, Ordering::Release);
    }

    /// Whether a WebSocket upgrade with this `Origin` header may connect.
    ///
    /// No `allowed_origins` (or `*`) allows everything. Otherwise the origin's host must match
    /// one entry exactly or through a leading `*.` wildcard; a request without an `Origin`
    /// header (a server-side client) is allowed, since browsers always send one.
    pub fn origin_allowed(&self, origin: Option<&str>) -> bool {
        let allowed = &self.cfg.allowed_origins;
        if allowed.is_empty() || allowed.iter().any(|a| a == "*") {
            return true;
        }
        let Some(origin) = origin else { return true };
        let host = origin
            .split_once("://")
            .map_or(origin, |(_, rest)| rest)
            .split(['/', ':'])
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        allowed.iter().any(|a| {
            let a = a.to_ascii_lowercase();
            let a = a.split_once("://").map_or(a.as_str(), |(_, rest)| rest);
            match a.strip_prefix("*.") {
                Some(suffix) => host.ends_with(&format!(".{suffix}")),
                None => host == a,
            }
        })
    }
}

/// What a reload did to one app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub app: AppIdx,
    pub id: String,
    pub kind: ChangeKind,
}

/// The kinds of [`Change`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// New: accepts connections from now on.
    Added,
    /// Gone: its connections are closed with 4001, as for an unknown app.
    Removed,
    /// `enabled = false`: its connections are closed with 4003.
    Disabled,
    /// Other settings (limits, origins, secrets, enabled again): they apply from now on, to
    /// new connections and new subscriptions; its connections stay.
    Changed,
}

/// Every app, looked up by key (WebSocket side) or by id (HTTP API side).
#[derive(Debug)]
pub struct Apps {
    apps: Vec<App>,
    by_key: HashMap<String, AppIdx>,
    by_id: HashMap<String, AppIdx>,
}

impl Apps {
    /// Builds the table from validated settings.
    pub fn new(cfgs: &[AppConfig]) -> Apps {
        let apps: Vec<App> = cfgs
            .iter()
            .enumerate()
            .map(|(i, cfg)| App {
                idx: AppIdx(i as u32),
                cfg: cfg.clone(),
                hooks: cfg.webhooks.iter().fold(0, |m, w| m | w.mask()),
                removed: false,
                connections: Arc::new(AtomicU64::new(0)),
                others: Arc::new(AtomicU64::new(0)),
            })
            .collect();
        Apps::index(apps)
    }

    fn index(apps: Vec<App>) -> Apps {
        let live = || apps.iter().filter(|a| !a.removed);
        let by_key = live().map(|a| (a.cfg.key.clone(), a.idx)).collect();
        let by_id = live().map(|a| (a.cfg.id.clone(), a.idx)).collect();
        Apps {
            apps,
            by_key,
            by_id,
        }
    }

    /// The table after a reload to `cfgs` (validated), and what changed. Apps are matched by
    /// id: a kept one keeps its index and its connection counter (connections admitted under
    /// the old settings are still counted), a removed one becomes a tombstone, a new one is
    /// appended (or takes the tombstone of an earlier app with its id).
    pub fn reload(&self, cfgs: &[AppConfig]) -> (Apps, Vec<Change>) {
        let mut changes = Vec::new();
        let mut apps: Vec<App> = self
            .apps
            .iter()
            .map(|old| {
                let cfg = cfgs.iter().find(|c| c.id == old.cfg.id);
                let change = match (old.removed, cfg) {
                    (true, None) => None,
                    (false, None) => Some(ChangeKind::Removed),
                    (true, Some(_)) => Some(ChangeKind::Added),
                    (false, Some(c)) if old.cfg.enabled && !c.enabled => Some(ChangeKind::Disabled),
                    (false, Some(c)) if c != &old.cfg => Some(ChangeKind::Changed),
                    (false, Some(_)) => None,
                };
                if let Some(kind) = change {
                    changes.push(Change {
                        app: old.idx,
                        id: old.cfg.id.clone(),
                        kind,
                    });
                }
                if cfg.is_some_and(|c| c.webhooks != old.cfg.webhooks) {
                    tracing::warn!(
                        app = %old.cfg.id,
                        "webhook settings changed: they take effect at the next start (ringcast restart keeps the connections)"
                    );
                }
                App {
                    idx: old.idx,
                    cfg: cfg.cloned().unwrap_or_else(|| old.cfg.clone()),
                    removed: cfg.is_none(),
                    connections: old.connections.clone(),
                    others: old.others.clone(),
                    // The running senders were built at start; the mask says what they serve.
                    hooks: old.hooks,
                }
            })
            .collect();
        for cfg in cfgs {
            if self.apps.iter().any(|a| a.cfg.id == cfg.id) {
                continue;
            }
            let idx = AppIdx(apps.len() as u32);
            changes.push(Change {
                app: idx,
                id: cfg.id.clone(),
                kind: ChangeKind::Added,
            });
            if !cfg.webhooks.is_empty() {
                tracing::warn!(
                    app = %cfg.id,
                    "an app added by a reload gets its webhooks at the next start"
                );
            }
            apps.push(App {
                idx,
                cfg: cfg.clone(),
                removed: false,
                connections: Arc::new(AtomicU64::new(0)),
                others: Arc::new(AtomicU64::new(0)),
                hooks: 0,
            });
        }
        (Apps::index(apps), changes)
    }

    /// The app with this public key.
    pub fn by_key(&self, key: &str) -> Option<&App> {
        self.by_key.get(key).map(|i| self.get(*i))
    }

    /// The app with this id.
    pub fn by_id(&self, id: &str) -> Option<&App> {
        self.by_id.get(id).map(|i| self.get(*i))
    }

    /// The app at `idx`.
    pub fn get(&self, idx: AppIdx) -> &App {
        &self.apps[idx.0 as usize]
    }

    /// Every app that is not removed, in index order.
    pub fn iter(&self) -> impl Iterator<Item = &App> {
        self.apps.iter().filter(|a| !a.removed)
    }

    /// Number of app slots, removed apps' included (what per-app state is sized by).
    pub fn len(&self) -> usize {
        self.apps.len()
    }

    /// Whether there are no apps.
    pub fn is_empty(&self) -> bool {
        self.apps.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(origins: &[&str], max: Option<u64>) -> Apps {
        Apps::new(&[AppConfig {
            id: "1".into(),
            key: "k".into(),
            secret: "s".into(),
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            max_connections: max,
            ..AppConfig::default()
        }])
    }

    #[test]
    fn origins_match_exactly_or_by_wildcard() {
        let apps = app(&["laravel.test", "*.example.com"], None);
        let a = apps.by_key("k").unwrap();
        assert!(a.origin_allowed(Some("https://laravel.test")));
        assert!(a.origin_allowed(Some("http://laravel.test:8000")));
        assert!(a.origin_allowed(Some("https://app.example.com")));
        assert!(!a.origin_allowed(Some("https://example.com.evil.io")));
        assert!(!a.origin_allowed(Some("https://evil.test")));
        assert!(a.origin_allowed(None));
        let open = app(&["*"], None);
        assert!(
            open.by_id("1")
                .unwrap()
                .origin_allowed(Some("https://any.where"))
        );
    }

    #[test]
    fn a_reload_keeps_indices_and_counters_and_says_what_changed() {
        let cfg = |id: &str, key: &str| AppConfig {
            id: id.into(),
            key: key.into(),
            secret: "s".into(),
            ..AppConfig::default()
        };
        let apps = Apps::new(&[cfg("a", "ka"), cfg("b", "kb"), cfg("c", "kc")]);
        assert!(apps.by_key("kb").unwrap().try_connect());
        let mut a2 = cfg("a", "ka");
        a2.secret = "new".into();
        let mut c2 = cfg("c", "kc");
        c2.enabled = false;
        let (next, changes) = apps.reload(&[a2, c2, cfg("d", "kd")]);
        let kinds: Vec<(&str, ChangeKind)> =
            changes.iter().map(|c| (c.id.as_str(), c.kind)).collect();
        assert_eq!(
            kinds,
            vec![
                ("a", ChangeKind::Changed),
                ("b", ChangeKind::Removed),
                ("c", ChangeKind::Disabled),
                ("d", ChangeKind::Added)
            ]
        );
        assert_eq!(next.len(), 4, "b stays as a tombstone");
        assert!(next.by_key("kb").is_none() && next.by_id("b").is_none());
        assert_eq!(
            next.get(AppIdx(1)).connections(),
            1,
            "b's counter is the same"
        );
        next.get(AppIdx(1)).disconnect();
        assert_eq!(
            apps.get(AppIdx(1)).connections(),
            0,
            "shared with the old table"
        );
        assert_eq!(next.by_id("d").unwrap().idx, AppIdx(3));
        assert_eq!(next.by_key("ka").unwrap().cfg.secret, "new");
        assert_eq!(next.iter().count(), 3);
        // b comes back: it takes its old slot.
        let (again, changes) = next.reload(&[cfg("b", "kb")]);
        assert_eq!(again.by_id("b").unwrap().idx, AppIdx(1));
        assert!(changes.contains(&Change {
            app: AppIdx(1),
            id: "b".into(),
            kind: ChangeKind::Added
        }));
    }

    #[test]
    fn max_connections_is_exact() {
        let apps = app(&[], Some(2));
        let a = apps.by_key("k").unwrap();
        assert!(a.try_connect());
        assert!(a.try_connect());
        assert!(!a.try_connect());
        assert_eq!(a.connections(), 2);
        a.disconnect();
        assert!(a.try_connect());
    }
}
