//! One app's webhook settings: where its events go, which ones, and how.
//!
//! A config file lists them as an array of tables under each app, as Soketi and Sockudo do,
//! with the names hosted Pusher's dashboard uses for the event types:
//!
//! ```toml
//! [[apps.webhooks]]
//! url = "https://example.com/pusher/webhook"
//! event_types = ["channel_occupied", "channel_vacated", "member_added", "member_removed"]
//! headers = { "X-Source" = "ringcast" }      # sent with every request
//! filter = { prefix = "presence-", suffix = "" } # only channels that match both
//! batch = { enabled = true, window_ms = 250, max_events = 20 }
//! timeout_ms = 4000
//! max_queue = 100000
//! ```
//!
//! For the single app of a Laravel `.env`, `RINGCAST_WEBHOOK_URL` and `RINGCAST_WEBHOOK_EVENTS`
//! (comma-separated) give one webhook. Every mistake is refused at start with one line naming
//! the setting ([`check`]), never discovered when the first event is due.

use serde::Deserialize;

use super::EventKind;

/// Hosted Pusher's batch window: events are held for at most 250 ms...
pub const DEFAULT_BATCH_WINDOW_MS: u64 = 250;
/// ...or until 20 of them are waiting, whichever comes first.
pub const DEFAULT_BATCH_MAX: usize = 20;
/// Hosted Pusher asks receivers to answer within 4 seconds; a request that takes longer is a
/// failure and is retried.
pub const DEFAULT_TIMEOUT_MS: u64 = 4000;
/// Events one webhook holds while its receiver is slow or down: at 1 KiB an event, 100 MiB.
/// At hosted Pusher's retry horizon of 5 minutes, that is 330 events a second kept through an
/// outage. Events past it are counted and logged as overflowed, never silently lost.
pub const DEFAULT_MAX_QUEUE: usize = 100_000;
/// The event types a webhook of `RINGCAST_WEBHOOK_URL` gets when `RINGCAST_WEBHOOK_EVENTS`
/// is not set: channel existence and presence, hosted Pusher's two original kinds.
pub const DEFAULT_ENV_EVENTS: &str = "channel_occupied,channel_vacated,member_added,member_removed";

/// Which channels a webhook is for: names that start with `prefix` and end with `suffix`
/// (both empty by default, so every channel).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Filter {
    pub prefix: String,
    pub suffix: String,
}

impl Filter {
    /// Whether events of `channel` go to this webhook.
    pub fn matches(&self, channel: &str) -> bool {
        channel.starts_with(&self.prefix) && channel.ends_with(&self.suffix)
    }
}

/// Whether and how events are gathered into one request (hosted Pusher's "batch webhooks").
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Batch {
    /// Off by default: one event per request, as hosted Pusher sends them unless told.
    pub enabled: bool,
    /// Longest an event waits for others to join its request, in milliseconds; 1 to 60,000.
    pub window_ms: u64,
    /// Most events in one request; 1 to 1,000.
    pub max_events: usize,
}

impl Default for Batch {
    fn default() -> Self {
        Batch {
            enabled: false,
            window_ms: DEFAULT_BATCH_WINDOW_MS,
            max_events: DEFAULT_BATCH_MAX,
        }
    }
}

/// One webhook of an app.
///
/// Its `Debug` output shows header names but not their values: a header is where a receiver's
/// own token goes, and settings end up in logs.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// Where the events are posted: an `http://` or `https://` URL.
    pub url: String,
    /// The event types sent (at least one), by their Pusher names.
    pub event_types: Vec<String>,
    /// Extra request headers, such as a token the receiver checks.
    pub headers: std::collections::BTreeMap<String, String>,
    /// Which channels' events are sent.
    pub filter: Filter,
    /// Batching.
    pub batch: Batch,
    /// How long each step of a request (connecting, sending it, waiting for the answer,
    /// reading it) may take before the request counts as failed and is retried, in
    /// milliseconds; 100 to 60,000. Default 4,000, the answer time hosted Pusher asks for.
    pub timeout_ms: u64,
    /// Events held for this webhook while they wait to be sent; at least 1.
    pub max_queue: usize,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            url: String::new(),
            event_types: Vec::new(),
            headers: Default::default(),
            filter: Filter::default(),
            batch: Batch::default(),
            timeout_ms: DEFAULT_TIMEOUT_MS,
            max_queue: DEFAULT_MAX_QUEUE,
        }
    }
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            url,
            event_types,
            headers,
            filter,
            batch,
            timeout_ms,
            max_queue,
        } = self;
        f.debug_struct("WebhookConfig")
            .field("url", url)
            .field("event_types", event_types)
            .field("headers", &headers.keys().collect::<Vec<_>>())
            .field("filter", filter)
            .field("batch", batch)
            .field("timeout_ms", timeout_ms)
            .field("max_queue", max_queue)
            .finish()
    }
}

impl WebhookConfig {
    /// The webhook of `RINGCAST_WEBHOOK_URL` and `RINGCAST_WEBHOOK_EVENTS`.
    pub fn from_env(url: &str, events: Option<&str>) -> WebhookConfig {
        WebhookConfig {
            url: url.trim().to_string(),
            event_types: events
                .unwrap_or(DEFAULT_ENV_EVENTS)
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            ..WebhookConfig::default()
        }
    }

    /// The event kinds this webhook asks for, as a mask of [`EventKind::bit`]s (unknown names,
    /// refused by [`check`], count as none).
    pub fn mask(&self) -> u8 {
        self.event_types
            .iter()
            .filter_map(|n| EventKind::parse(n))
            .fold(0, |m, k| m | k.bit())
    }
}

/// A webhook setting that cannot work, as the setting's name, what it must be, and its value.
#[derive(Debug, PartialEq, Eq)]
pub struct Invalid {
    /// `url`, `event_types`, `timeout_ms`, ...
    pub key: &'static str,
    pub expected: String,
    pub value: String,
}

/// Headers ringcast sets itself: a webhook may not replace them.
const OWN_HEADERS: [&str; 4] = [
    "x-pusher-key",
    "x-pusher-signature",
    "content-type",
    "content-length",
];

/// Checks one webhook.
///
/// Every event type stands on its own: `subscription_count` needs no app setting, since the
/// channel's owner counts subscriptions anyway and decides the webhook whether or not the app
/// also sends `pusher_internal:subscription_count` to its subscribers (`crate::state::Owner`).
pub fn check(w: &WebhookConfig) -> Result<(), Invalid> {
    let bad = |key, expected: &str, value: &str| Invalid {
        key,
        expected: expected.to_string(),
        value: value.to_string(),
    };
    let url_ok = w.url.parse::<ureq::http::Uri>().ok().is_some_and(|u| {
        matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some_and(|h| !h.is_empty())
    });
    if !url_ok {
        return Err(bad("url", "an http:// or https:// URL with a host", &w.url));
    }
    if w.event_types.is_empty() {
        return Err(bad(
            "event_types",
            &format!("at least one of {}", EventKind::names()),
            "[]",
        ));
    }
    if let Some(name) = w.event_types.iter().find(|n| EventKind::parse(n).is_none()) {
        return Err(bad(
            "event_types",
            &format!("one of {}", EventKind::names()),
            name,
        ));
    }
    for (name, value) in &w.headers {
        let lower = name.to_ascii_lowercase();
        if OWN_HEADERS.contains(&lower.as_str())
            || ureq::http::HeaderName::from_bytes(name.as_bytes()).is_err()
        {
            return Err(bad(
                "headers",
                "header names other than X-Pusher-Key, X-Pusher-Signature, Content-Type and Content-Length",
                name,
            ));
        }
        if ureq::http::HeaderValue::from_str(value).is_err() {
            return Err(bad("headers", "visible ASCII header values", value));
        }
    }
    if !(100..=60_000).contains(&w.timeout_ms) {
        return Err(bad(
            "timeout_ms",
            "from 100 to 60000 milliseconds",
            &w.timeout_ms.to_string(),
        ));
    }
    if w.max_queue == 0 {
        return Err(bad("max_queue", "at least 1 event", "0"));
    }
    if !(1..=60_000).contains(&w.batch.window_ms) {
        return Err(bad(
            "batch.window_ms",
            "from 1 to 60000 milliseconds",
            &w.batch.window_ms.to_string(),
        ));
    }
    if !(1..=1000).contains(&w.batch.max_events) {
        return Err(bad(
            "batch.max_events",
            "from 1 to 1000 events",
            &w.batch.max_events.to_string(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(url: &str, events: &[&str]) -> WebhookConfig {
        WebhookConfig {
            url: url.into(),
            event_types: events.iter().map(|s| s.to_string()).collect(),
            ..WebhookConfig::default()
        }
    }

    #[test]
    fn urls_and_event_types_are_checked() {
        assert!(check(&hook("http://127.0.0.1:9000/hook", &["channel_occupied"])).is_ok());
        assert!(check(&hook("https://example.com", &["client_event"])).is_ok());
        for url in [
            "",
            "ftp://example.com/x",
            "example.com/hook",
            "http://",
            "http:// x",
        ] {
            let e = check(&hook(url, &["channel_occupied"])).unwrap_err();
            assert_eq!(e.key, "url", "{url}");
        }
        let e = check(&hook("http://h", &["channel_ocupied"])).unwrap_err();
        assert_eq!(
            (e.key, e.value.as_str()),
            ("event_types", "channel_ocupied")
        );
        assert!(check(&hook("http://h", &[])).is_err());
        // Every type, subscription_count included, with no app setting beside it.
        let every: Vec<&str> = EventKind::ALL.iter().map(|k| k.name()).collect();
        assert!(check(&hook("http://h", &every)).is_ok());
        assert!(check(&hook("http://h", &["subscription_count"])).is_ok());
    }

    #[test]
    fn own_headers_and_ranges_are_refused() {
        let mut w = hook("http://h", &["cache_miss"]);
        w.headers.insert("X-Pusher-Signature".into(), "x".into());
        assert_eq!(check(&w).unwrap_err().key, "headers");
        let mut w = hook("http://h", &["cache_miss"]);
        w.timeout_ms = 0;
        assert_eq!(check(&w).unwrap_err().key, "timeout_ms");
        let mut w = hook("http://h", &["cache_miss"]);
        w.batch.max_events = 0;
        assert_eq!(check(&w).unwrap_err().key, "batch.max_events");
    }

    #[test]
    fn the_environment_form_splits_on_commas() {
        let w = WebhookConfig::from_env(" http://h/x ", Some("member_added, client_event,"));
        assert_eq!(w.url, "http://h/x");
        assert_eq!(w.event_types, ["member_added", "client_event"]);
        let d = WebhookConfig::from_env("http://h", None);
        assert_eq!(d.event_types.len(), 4);
        assert_eq!(
            d.mask(),
            EventKind::ChannelOccupied.bit()
                | EventKind::ChannelVacated.bit()
                | EventKind::MemberAdded.bit()
                | EventKind::MemberRemoved.bit()
        );
    }
}
