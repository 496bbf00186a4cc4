//! Which HTTP API endpoint a request addresses.
//!
//! The endpoints are those of the Pusher HTTP API reference, plus the deprecated per-channel
//! trigger and Reverb's `GET /apps/{id}/connections` (Laravel Pulse's Reverb card calls it
//! through the Pusher SDK). Path segments are percent-decoded: a channel named
//! `#server-to-user-7` can only travel as `%23server-to-user-7`, since a raw `#` would start the
//! URL's fragment. Channel names are returned as sent; the handler validates them, because what
//! an invalid name means depends on the endpoint.
//!
//! A server may be mounted under a path prefix (Reverb's `REVERB_SERVER_PATH`). Clients send
//! requests to `prefix + /apps/...` but pusher-http-php signs `/apps/...`, so the prefix is
//! stripped with [`strip_prefix`] before routing and verifying.

use super::error::{ApiError, clip};
use super::query::percent_decode;

/// An HTTP API endpoint, with the identifiers its path carries (percent-decoded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `POST /apps/{app_id}/events`: trigger an event on one or more channels.
    Events { app_id: String },
    /// `POST /apps/{app_id}/batch_events`: trigger several events.
    BatchEvents { app_id: String },
    /// `GET /apps/{app_id}/channels`: occupied channels.
    Channels { app_id: String },
    /// `GET /apps/{app_id}/channels/{channel}`: one channel's state.
    Channel { app_id: String, channel: String },
    /// `GET /apps/{app_id}/channels/{channel}/users`: a presence channel's users.
    ChannelUsers { app_id: String, channel: String },
    /// `POST /apps/{app_id}/users/{user_id}/terminate_connections`.
    TerminateUserConnections { app_id: String, user_id: String },
    /// `GET /apps/{app_id}/connections` (Reverb): the number of connections.
    Connections { app_id: String },
    /// `POST /apps/{app_id}/channels/{channel}/events`: the deprecated single-channel trigger.
    LegacyChannelEvents { app_id: String, channel: String },
}

impl Route {
    /// The app the request addresses.
    pub fn app_id(&self) -> &str {
        match self {
            Self::Events { app_id }
            | Self::BatchEvents { app_id }
            | Self::Channels { app_id }
            | Self::Channel { app_id, .. }
            | Self::ChannelUsers { app_id, .. }
            | Self::TerminateUserConnections { app_id, .. }
            | Self::Connections { app_id }
            | Self::LegacyChannelEvents { app_id, .. } => app_id,
        }
    }

    /// The one method this endpoint answers.
    pub fn method(&self) -> &'static str {
        match self {
            Self::Events { .. }
            | Self::BatchEvents { .. }
            | Self::TerminateUserConnections { .. }
            | Self::LegacyChannelEvents { .. } => "POST",
            Self::Channels { .. }
            | Self::Channel { .. }
            | Self::ChannelUsers { .. }
            | Self::Connections { .. } => "GET",
        }
    }
}

/// The endpoint `method path_after_prefix` addresses.
///
/// Errors: 404 [`ApiError::UnknownPath`] for a path that is no endpoint (including empty
/// segments such as `/apps//events` or a trailing `/`), 405 [`ApiError::MethodNotAllowed`] for
/// an endpoint asked with the wrong method, 400 [`ApiError::BadPercentEncoding`] for a segment
/// that does not decode.
pub fn route(method: &str, path_after_prefix: &str) -> Result<Route, ApiError> {
    let not_found = || ApiError::UnknownPath {
        path: clip(path_after_prefix),
    };
    let rest = path_after_prefix
        .strip_prefix("/apps/")
        .ok_or_else(not_found)?;
    // At most five segments are looked at; any more and no endpoint matches.
    let segments: Vec<&str> = rest.split('/').take(5).collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err(not_found());
    }
    let route = match segments.as_slice() {
        [app, "events"] => Route::Events {
            app_id: decode(app)?,
        },
        [app, "batch_events"] => Route::BatchEvents {
            app_id: decode(app)?,
        },
        [app, "channels"] => Route::Channels {
            app_id: decode(app)?,
        },
        [app, "connections"] => Route::Connections {
            app_id: decode(app)?,
        },
        [app, "channels", channel] => Route::Channel {
            app_id: decode(app)?,
            channel: decode(channel)?,
        },
        [app, "channels", channel, "users"] => Route::ChannelUsers {
            app_id: decode(app)?,
            channel: decode(channel)?,
        },
        [app, "channels", channel, "events"] => Route::LegacyChannelEvents {
            app_id: decode(app)?,
            channel: decode(channel)?,
        },
        [app, "users", user, "terminate_connections"] => Route::TerminateUserConnections {
            app_id: decode(app)?,
            user_id: decode(user)?,
        },
        _ => return Err(not_found()),
    };
    if method != route.method() {
        return Err(ApiError::MethodNotAllowed {
            method: clip(method),
            allowed: route.method(),
        });
    }
    Ok(route)
}

/// `path` without the mount `prefix`, or `None` when the path is not under the prefix.
///
/// The prefix is normalised by dropping leading and trailing slashes, so `""`, `"/"`, `"ws"`,
/// `"/ws"` and `"ws/"` are all accepted; an empty prefix leaves the path unchanged. The prefix
/// must end at a segment boundary: `/ws` contains `/ws/apps/1/events` and `/ws` (returned as
/// `/`), not `/wsx/apps/1/events`.
pub fn strip_prefix<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        return Some(path);
    }
    let rest = path.strip_prefix('/')?.strip_prefix(prefix)?;
    if rest.is_empty() {
        Some("/")
    } else if rest.starts_with('/') {
        Some(rest)
    } else {
        None
    }
}

fn decode(segment: &str) -> Result<String, ApiError> {
    percent_decode(segment, false)
        .ok_or_else(|| ApiError::BadPercentEncoding(format!("path segment `{}`", clip(segment))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> String {
        v.to_owned()
    }

    #[test]
    fn every_endpoint_is_recognised() {
        let cases = [
            ("POST", "/apps/1/events", Route::Events { app_id: s("1") }),
            (
                "POST",
                "/apps/1/batch_events",
                Route::BatchEvents { app_id: s("1") },
            ),
            (
                "GET",
                "/apps/1/channels",
                Route::Channels { app_id: s("1") },
            ),
            (
                "GET",
                "/apps/1/connections",
                Route::Connections { app_id: s("1") },
            ),
            (
                "GET",
                "/apps/1/channels/presence-room",
                Route::Channel {
                    app_id: s("1"),
                    channel: s("presence-room"),
                },
            ),
            (
                "GET",
                "/apps/1/channels/presence-room/users",
                Route::ChannelUsers {
                    app_id: s("1"),
                    channel: s("presence-room"),
                },
            ),
            (
                "POST",
                "/apps/1/channels/news/events",
                Route::LegacyChannelEvents {
                    app_id: s("1"),
                    channel: s("news"),
                },
            ),
            (
                "POST",
                "/apps/app-1/users/42/terminate_connections",
                Route::TerminateUserConnections {
                    app_id: s("app-1"),
                    user_id: s("42"),
                },
            ),
        ];
        for (method, path, want) in cases {
            let got = route(method, path).unwrap();
            assert_eq!(got.method(), method);
            assert_eq!(got, want, "{method} {path}");
        }
    }

    #[test]
    fn segments_are_percent_decoded_without_plus_as_space() {
        let r = route("GET", "/apps/1/channels/%23server-to-user-7").unwrap();
        assert_eq!(
            r,
            Route::Channel {
                app_id: s("1"),
                channel: s("#server-to-user-7")
            }
        );
        let r = route("POST", "/apps/1/users/a+b%40c/terminate_connections").unwrap();
        assert_eq!(
            r,
            Route::TerminateUserConnections {
                app_id: s("1"),
                user_id: s("a+b@c")
            }
        );
        assert_eq!(r.app_id(), "1");
        let e = route("GET", "/apps/1/channels/%zz").unwrap_err();
        assert!(matches!(e, ApiError::BadPercentEncoding(_)), "{e:?}");
    }

    #[test]
    fn unknown_paths_are_404() {
        for path in [
            "",
            "/",
            "/apps",
            "/apps/",
            "/apps/1",
            "/apps/1/",
            "/apps//events",
            "/apps/1/events/",
            "/apps/1/event",
            "/apps/1/channels//users",
            "/apps/1/channels/c/users/x",
            "/apps/1/users/42",
            "/users/42/terminate_connections",
            "/app/key",
            "apps/1/events",
            "/apps/1/channels/a/b/c/d/e/f",
        ] {
            let e = route("POST", path).unwrap_err();
            assert!(matches!(e, ApiError::UnknownPath { .. }), "{path}: {e:?}");
            assert_eq!(e.status(), 404);
        }
    }

    #[test]
    fn wrong_methods_are_405_naming_the_right_one() {
        let e = route("GET", "/apps/1/events").unwrap_err();
        assert_eq!(
            e,
            ApiError::MethodNotAllowed {
                method: s("GET"),
                allowed: "POST"
            }
        );
        assert_eq!(e.status(), 405);
        for (method, path) in [
            ("POST", "/apps/1/channels"),
            ("DELETE", "/apps/1/channels/c"),
            ("HEAD", "/apps/1/connections"),
            ("get", "/apps/1/channels/c/users"),
            ("PUT", "/apps/1/batch_events"),
        ] {
            let e = route(method, path).unwrap_err();
            assert!(
                matches!(e, ApiError::MethodNotAllowed { .. }),
                "{method} {path}: {e:?}"
            );
        }
    }

    #[test]
    fn prefixes_are_normalised_and_stripped_at_segment_boundaries() {
        let p = "/ws/apps/1/events";
        for prefix in ["ws", "/ws", "ws/", "/ws/", "//ws//"] {
            assert_eq!(
                strip_prefix(p, prefix),
                Some("/apps/1/events"),
                "{prefix:?}"
            );
        }
        for prefix in ["", "/", "//"] {
            assert_eq!(
                strip_prefix("/apps/1/events", prefix),
                Some("/apps/1/events")
            );
        }
        assert_eq!(strip_prefix("/ws", "/ws"), Some("/"));
        assert_eq!(strip_prefix("/ws/", "/ws"), Some("/"));
        assert_eq!(strip_prefix("/wsx/apps/1/events", "ws"), None);
        assert_eq!(strip_prefix("/apps/1/events", "ws"), None);
        assert_eq!(strip_prefix("ws/apps/1/events", "ws"), None);
        assert_eq!(strip_prefix("", "ws"), None);
        assert_eq!(strip_prefix("/a/b/apps/1", "a/b"), Some("/apps/1"));
        assert_eq!(strip_prefix("/a/bc/apps/1", "/a/b/"), None);
    }

    #[test]
    fn never_panics_on_odd_paths() {
        let parts = ["/", "apps", "%", "%2", "é", "events", "", "1", "channels"];
        for a in parts {
            for b in parts {
                for c in parts {
                    let p = format!("/apps/{a}{b}/{c}");
                    let _ = route("GET", &p);
                    let _ = strip_prefix(&p, a);
                }
            }
        }
    }
}
