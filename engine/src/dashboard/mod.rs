//! The operator dashboard: a page at `/dashboard` that shows one app live.
//!
//! ## What it is made of
//! - **A static page** ([`http`]): HTML, CSS and JavaScript embedded in the binary, served only
//!   when the dashboard is turned on (`--dashboard`, `RINGCAST_DASHBOARD=true`,
//!   `dashboard = true`). The page holds no data and no secret: what it shows it fetches with
//!   the credentials the operator types into it.
//! - **A stats channel** ([`channel_name`]): a private channel per app, to which the worker of
//!   each watching connection publishes that app's figures about once a second
//!   ([`publisher`], [`report`]).
//!
//! ## Why it goes through the public protocol
//! The operator logs in with an app's id, key and secret. The page keeps them in memory only
//! and does what any Pusher client and server SDK does with them: it signs its HTTP API calls
//! (the login check and the event creator are `GET /apps/{id}/channels` and
//! `POST /apps/{id}/events`) and signs its own subscription to the stats channel. So there is
//! no second way in: a wrong secret is refused by the same checks that refuse a forged
//! broadcast, the secret never crosses the network, and everything the page does is also an
//! end-to-end test of the protocol.
//!
//! The stats channel's name is derived from the app's secret (a keyed hash, see
//! [`channel_name`]), so that an application whose `/broadcasting/auth` happens to sign every
//! private channel its users ask for still cannot be talked into signing this one: its users
//! cannot know the name.
//!
//! ## Why it costs nothing when nobody looks
//! The counters it shows are the workers' own plain integers (`crate::stats`), which are
//! counted whether or not the dashboard is on. Gathering them is a message to every worker,
//! and that happens only while a worker has a subscriber of a stats channel among its own
//! connections: each worker checks its own registry once a second, and a check that finds no
//! subscriber does nothing else. With the dashboard off, not even that timer exists.
//!
//! ## Nodes
//! ringcast runs as one process today, so the node list has one entry: this process, with its
//! workers and their connections. The list is shaped for a cluster (a name, connections and a
//! lease age per node), so that nodes joining over a shared store add entries, not a new page.

pub mod http;
pub mod publisher;
pub mod report;

use ringcast_protocol::pusher::auth::sign_hex;

/// The start of every stats channel's name.
pub const CHANNEL_PREFIX: &str = "private-ringcast-dashboard-";

/// What the secret signs to name the stats channel.
const NAME_INPUT: &str = "ringcast-dashboard";

/// Hex digits of the keyed hash in the name: 96 bits, beyond guessing.
const NAME_HEX_DIGITS: usize = 24;

/// The event name of a stats publish.
pub const STATS_EVENT: &str = "stats";

/// The stats channel of the app whose secret is `secret`: [`CHANNEL_PREFIX`] followed by the
/// first 24 hex digits of HMAC-SHA256(secret, "ringcast-dashboard"). The page computes the same
/// name from the secret the operator typed.
pub fn channel_name(secret: &str) -> String {
    let mac = sign_hex(secret, NAME_INPUT);
    format!("{CHANNEL_PREFIX}{}", &mac[..NAME_HEX_DIGITS])
}

/// Whether a WebSocket `Origin` names the same host and port as the request's `Host` header:
/// the dashboard page connecting back to the server that served it. Such connections are
/// allowed even when the app's `allowed_origins` lists only the application's own sites.
pub fn same_origin(origin: Option<&str>, host: Option<&str>) -> bool {
    let (Some(origin), Some(host)) = (origin, host) else {
        return false;
    };
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => ":80",
        "https" => ":443",
        _ => return false,
    };
    let with_port = |a: &str| {
        let a = a.to_ascii_lowercase();
        let has_port = a.rsplit_once(':').is_some_and(|(_, p)| !p.contains(']'));
        if has_port {
            a
        } else {
            format!("{a}{default_port}")
        }
    };
    with_port(authority.trim_end_matches('/')) == with_port(host.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_channel_name_is_private_fixed_and_depends_on_the_secret() {
        let a = channel_name("secret-a");
        assert!(a.starts_with("private-ringcast-dashboard-"), "{a}");
        assert_eq!(a.len(), CHANNEL_PREFIX.len() + NAME_HEX_DIGITS);
        assert_eq!(a, channel_name("secret-a"));
        assert_ne!(a, channel_name("secret-b"));
        let mac = sign_hex("secret-a", "ringcast-dashboard");
        assert!(a.ends_with(&mac[..24]));
    }

    #[test]
    fn same_origin_compares_host_and_port() {
        let host = Some("127.0.0.1:8080");
        assert!(same_origin(Some("http://127.0.0.1:8080"), host));
        assert!(!same_origin(Some("http://127.0.0.1:8081"), host));
        assert!(!same_origin(Some("http://evil.test"), host));
        assert!(same_origin(
            Some("https://WS.example.com"),
            Some("ws.example.com")
        ));
        assert!(same_origin(
            Some("https://ws.example.com"),
            Some("ws.example.com:443")
        ));
        assert!(!same_origin(
            Some("http://ws.example.com"),
            Some("ws.example.com:443")
        ));
        assert!(same_origin(Some("http://[::1]:8080"), Some("[::1]:8080")));
        assert!(!same_origin(Some("null"), host));
        assert!(!same_origin(None, host));
        assert!(!same_origin(Some("http://127.0.0.1:8080"), None));
    }
}
