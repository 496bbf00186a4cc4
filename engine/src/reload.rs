//! Reload without restart: `SIGHUP` reads the configuration again and applies what changed
//! in the apps, without touching the connections of the apps that did not.
//!
//! The configuration is loaded from the same layers as at start (the file, `.env`, the
//! environment the process started with, the flags) and validated as at start. An invalid
//! one is refused with its one-line error, and the running configuration stays. A valid one
//! becomes a new app table ([`Apps::reload`]: apps keep their index, removed ones stay as
//! tombstones) and a new [`Shared`], which every worker takes over the mesh
//! ([`MeshMsg::Reload`]) between two of its inputs, so a worker never sees half of it. In a
//! cluster the link's threads get the new table first (`Cluster::set_apps`), so that a worker's
//! first command about an added app finds it known there:
//!
//! | change | effect |
//! |---|---|
//! | app added | accepts connections and API requests |
//! | app removed | its connections are closed with 4001 (as for an unknown key); its key and id are unknown from now on |
//! | `enabled = false` | its connections are closed with 4003; new ones are refused with 4003, API requests with 403 |
//! | other app settings (secret, key, origins, limits, timeouts, client events, ...) | apply from now on: to new connections and their handshakes, new subscriptions and sign-ins, API requests; open connections and their subscriptions stay |
//! | the TLS certificate and key | read again: new handshakes present the new certificate, open connections keep theirs; files that do not load are refused with one line and the running certificate stays |
//! | server settings (host, port, workers, limits, metrics, logs, turning TLS on or off, ...) | unchanged until a restart (`ringcast restart`); the reload says which changed |
//!
//! A connection's largest message is fixed when it opens (its reader's decoder is built
//! then), so a new `max_message_size` applies to connections that open after the reload.

use std::sync::Arc;

use ringcast_protocol::pusher::error::PusherCode;

use crate::app::{Change, ChangeKind};
use crate::config::Config;
use crate::ids::{AppIdx, ConnKey, ShardId};
use crate::mesh::MeshMsg;
use crate::state::Closing;
use crate::worker::{Shared, Worker};

/// A reloaded configuration, as every worker gets it.
pub struct Reloaded {
    /// The new settings and app table.
    pub shared: Arc<Shared>,
    /// What changed, per app.
    pub changes: Vec<Change>,
}

impl std::fmt::Debug for Reloaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloaded")
            .field("config", &self.shared.config)
            .field("changes", &self.changes)
            .finish()
    }
}

/// Reads the configuration again and hands it to every worker. Returns the new shared state,
/// or `None` when the configuration was refused (the error is logged, as one line).
pub fn reload(shared: &Arc<Shared>) -> Option<Arc<Shared>> {
    let old = &shared.config;
    let new = match old.reload() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("reload refused, the running configuration stays: {e}");
            return None;
        }
    };
    // With no app configured the app was generated at start: it stays (a new one would
    // change every client's key).
    let cfgs = if new.generated && old.generated {
        old.apps.clone()
    } else {
        new.apps.clone()
    };
    reload_certificate(shared, &new);
    let pending = restart_only(old, &new);
    if !pending.is_empty() {
        tracing::warn!(
            settings = pending.join(", "),
            "changed server settings take effect after a restart (ringcast restart)"
        );
    }
    let (apps, changes) = shared.apps.reload(&cfgs);
    let mut config = old.clone();
    config.apps = cfgs;
    config.generated = new.generated && old.generated;
    // The limits that follow the apps' largest message.
    config.limits.max_message_size = new.limits.max_message_size;
    config.limits.max_frame_size = new.limits.max_frame_size;
    config.limits.max_outbound_bytes = new.limits.max_outbound_bytes;
    let next = Arc::new(Shared {
        config,
        apps: Arc::new(apps),
        mesh: shared.mesh.clone(),
        cluster: shared.cluster.clone(),
        webhooks: shared.webhooks.clone(),
        draining: shared.draining.clone(),
        tls: shared.tls.clone(),
    });
    // The cluster threads first: a worker that has the new table may at once send them a
    // command about an app it added.
    if let Some(c) = &next.cluster {
        c.set_apps(next.apps.clone());
    }
    let reloaded = Arc::new(Reloaded {
        shared: next.clone(),
        changes,
    });
    for i in 0..next.mesh.len() {
        next.mesh
            .send(ShardId(i as u16), MeshMsg::Reload(reloaded.clone()));
    }
    let changes = &reloaded.changes;
    let list = |kind: ChangeKind| -> String {
        let ids: Vec<&str> = changes
            .iter()
            .filter(|c| c.kind == kind)
            .map(|c| c.id.as_str())
            .collect();
        ids.join(",")
    };
    tracing::info!(
        apps = next.apps.iter().count(),
        added = list(ChangeKind::Added),
        removed = list(ChangeKind::Removed),
        disabled = list(ChangeKind::Disabled),
        changed = list(ChangeKind::Changed),
        "configuration reloaded"
    );
    Some(next)
}

/// Reads the TLS certificate and key again (from the paths of `new`), when TLS is on; a
/// certificate that does not load is refused with one line and the running one stays.
fn reload_certificate(shared: &Shared, new: &Config) {
    let (Some(tls), Some(files)) = (&shared.tls, new.operations.tls()) else {
        return;
    };
    match tls.reload(&files) {
        Ok(()) => tracing::info!(
            cert = %files.cert.display(),
            "TLS certificate reloaded: new handshakes present it"
        ),
        Err(e) => {
            tracing::error!("TLS certificate reload refused, the running certificate stays: {e}")
        }
    }
}

/// The server settings that differ between `old` and `new`: a reload leaves them as they are.
fn restart_only(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut names = Vec::new();
    let mut check = |name, differs: bool| {
        if differs {
            names.push(name);
        }
    };
    check("host", old.host != new.host);
    check("port", old.port != new.port);
    check("workers", old.workers != new.workers);
    check("path", old.path_prefix != new.path_prefix);
    check("echo", old.echo != new.echo);
    check("dashboard", old.dashboard != new.dashboard);
    check(
        "shutdown_timeout",
        old.shutdown_timeout != new.shutdown_timeout,
    );
    check("write_timeout_ms", old.write_timeout != new.write_timeout);
    let mut limits = new.limits.clone();
    limits.max_message_size = old.limits.max_message_size;
    limits.max_frame_size = old.limits.max_frame_size;
    limits.max_outbound_bytes = old.limits.max_outbound_bytes;
    check("limits", limits != old.limits);
    check(
        "operations",
        old.operations.needs_restart_for(&new.operations),
    );
    names
}

impl Worker {
    /// Takes a reloaded configuration: the new settings and app table for this worker and
    /// its state core, then closes the connections of removed (4001) and disabled (4003)
    /// apps.
    pub fn reload(&mut self, shared: Arc<Shared>, changes: &[Change]) {
        self.stats.grow(shared.apps.len());
        self.shard.set_apps(shared.apps.clone());
        self.owner.set_apps(shared.apps.clone());
        self.shared = shared;
        let closing: Vec<(AppIdx, Closing)> = changes
            .iter()
            .filter_map(|c| match c.kind {
                ChangeKind::Removed => {
                    Some((c.app, Closing::pusher(PusherCode::AppNotFound, true)))
                }
                ChangeKind::Disabled => {
                    Some((c.app, Closing::pusher(PusherCode::AppDisabled, true)))
                }
                ChangeKind::Added | ChangeKind::Changed => None,
            })
            .collect();
        if closing.is_empty() {
            return;
        }
        let doomed: Vec<(ConnKey, Closing)> = self
            .shard
            .iter_mut()
            .filter_map(|(key, app, _)| {
                let app = app?;
                closing
                    .iter()
                    .find(|(a, _)| *a == app)
                    .map(|(_, how)| (key, *how))
            })
            .collect();
        for (key, how) in doomed {
            self.close(key, how);
        }
    }
}
