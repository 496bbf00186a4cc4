//! The Pusher HTTP API, served on the same port as the WebSockets.
//!
//! Laravel's queue workers call it synchronously through the Pusher PHP SDK for every broadcast,
//! so its latency is on the application's critical path: a request is authenticated, parsed and
//! fanned out on the worker that received it, with no hop to another thread before the answer.
//! Each event is encoded into its final WebSocket frame once per channel, and those same bytes
//! go to this worker's subscribers and, through the mesh, to every other worker's.

use std::time::{SystemTime, UNIX_EPOCH};

use ringcast_protocol::api::body::{parse_batch, parse_event, TriggerEvent};
use ringcast_protocol::api::query::Query;
use ringcast_protocol::api::route::{Route, route};
use ringcast_protocol::api::signature::{self, Credentials};
use ringcast_protocol::http::{self, Request};
use ringcast_protocol::pusher::event::ServerEvent;

use crate::ids::AppIdx;
use crate::worker::Worker;

impl Worker {
    /// Answers one API request whose path (below the prefix) is `path`.
    pub fn handle_api(&mut self, req: &Request, path: &str, body: &mut [u8]) -> Vec<u8> {
        let keep_alive = req.keep_alive;
        let route = match route(&req.method, path) {
            Ok(r) => r,
            Err(e) => return e.response(keep_alive),
        };
        let app_id = match &route {
            Route::Events { app_id }
            | Route::BatchEvents { app_id }
            | Route::Channels { app_id }
            | Route::Channel { app_id, .. }
            | Route::ChannelUsers { app_id, .. }
            | Route::TerminateUserConnections { app_id, .. }
            | Route::Connections { app_id }
            | Route::LegacyChannelEvents { app_id, .. } => app_id.clone(),
        };
        let shared = self.shared.clone();
        let Some(app) = shared.apps.by_id(&app_id) else {
            let msg = format!("Unknown app id {app_id}");
            return http::json_error(404, &msg, keep_alive);
        };
        let query = match Query::parse(&req.query) {
            Ok(q) => q,
            Err(e) => return e.response(keep_alive),
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let creds = Credentials {
            key: &app.cfg.key,
            secret: &app.cfg.secret,
        };
        if let Err(e) = signature::verify(
            &req.method,
            path,
            &query,
            body,
            creds,
            now,
            &shared.config.limits,
        ) {
            return e.response(keep_alive);
        }
        let limits = &shared.config.limits;
        match route {
            Route::Events { .. } => match parse_event(body, limits) {
                Ok(ev) => {
                    self.trigger(app.idx, &ev);
                    http::json_ok(b"{}", keep_alive)
                }
                Err(e) => e.response(keep_alive),
            },
            Route::BatchEvents { .. } => match parse_batch(body, limits) {
                Ok(batch) => {
                    for ev in &batch {
                        self.trigger(app.idx, ev);
                    }
                    http::json_ok(b"{}", keep_alive)
                }
                Err(e) => e.response(keep_alive),
            },
            Route::Connections { .. } => {
                let body = format!("{{\"connections\":{}}}", app.connections());
                http::json_ok(body.as_bytes(), keep_alive)
            }
            _ => http::json_error(501, "This endpoint is not available", keep_alive),
        }
    }

    /// Publishes one event to each of its channels.
    fn trigger(&mut self, app: AppIdx, ev: &TriggerEvent) {
        for channel in &ev.channels {
            let frame = ServerEvent::ChannelEvent {
                event: &ev.name,
                channel: channel.as_str(),
                data: &ev.data,
            }
            .to_frame();
            self.publish(app, channel.as_str(), frame, ev.socket_id);
        }
    }
}
