//! The app table: every app's settings and its cluster-wide connection count.
//!
//! The table is built once at start-up and shared read-only by every worker through an `Arc`.
//! Its one mutable part is each app's open-connection counter, an atomic: `max_connections` is a
//! limit across all workers that must be checked at the moment a connection opens, and an atomic
//! increment is both the cheapest and the only exact way to do that. The counter is the owner of
//! the fact "connections per app" (see the crate docs for the other facts and their owners).
//!
//! In a cluster each node keeps its own counter exact and adds the other nodes' counts, which
//! the cluster link refreshes from Redis every second: `max_connections` is then a cluster-wide
//! limit that is exact on each node and can be passed by the connections other nodes opened in
//! the last second.

use std::collections::HashMap;
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
    connections: AtomicU64,
    /// The other nodes' open connections, as last refreshed (0 on a lone node).
    others: AtomicU64,
    /// The webhook event kinds any of the app's webhooks wants (`crate::webhook::EventKind`
    /// bits): the state core decides no webhook nobody asked for.
    hooks: u8,
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
                connections: AtomicU64::new(0),
                others: AtomicU64::new(0),
                hooks: cfg.webhooks.iter().fold(0, |m, w| m | w.mask()),
            })
            .collect();
        let by_key = apps.iter().map(|a| (a.cfg.key.clone(), a.idx)).collect();
        let by_id = apps.iter().map(|a| (a.cfg.id.clone(), a.idx)).collect();
        Apps {
            apps,
            by_key,
            by_id,
        }
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

    /// Number of apps.
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
