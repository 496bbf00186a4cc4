//! The app table: every app's settings and its cluster-wide connection count.
//!
//! The table is built once at start-up and shared read-only by every worker through an `Arc`.
//! Its one mutable part is each app's open-connection counter, an atomic: `max_connections` is a
//! limit across all workers that must be checked at the moment a connection opens, and an atomic
//! increment is both the cheapest and the only exact way to do that. The counter is the owner of
//! the fact "connections per app" (see the crate docs for the other facts and their owners).

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
}

impl App {
    /// Counts a new connection unless the app is at `max_connections`; `false` means refused.
    pub fn try_connect(&self) -> bool {
        let before = self.connections.fetch_add(1, Ordering::AcqRel);
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

    /// Open connections across all workers.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Acquire)
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

    /// Every app, in index order.
    pub fn iter(&self) -> impl Iterator<Item = &App> {
        self.apps.iter()
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
