//! The range of every numeric setting, checked once all layers are applied.
//!
//! Zero is refused everywhere: no setting means "off" by being 0 (a feature that can be turned
//! off has its own switch, such as `enabled` or `accept_client_events_from`), and a zero
//! interval or limit makes the server ping in a tight loop, refuse every message or close every
//! connection at once. Upper bounds exist where a larger value breaks something rather than
//! just allowing more: a timer whose deadline overflows the clock, a value pusher-js cannot
//! hold, a per-request allocation. Each error is one line naming the setting (and the
//! environment variable, when that is where the value came from).

use std::collections::HashMap;
use std::ops::RangeInclusive;

use super::{Config, ConfigError};

/// Most worker threads: one per core is the design, and no machine has more cores than this.
const MAX_WORKERS: u64 = 1024;
/// Longest timer in seconds (an hour): longer deadlines are mistakes, and `u64` seconds added to
/// the clock can overflow it, which panics.
const MAX_TIMER_SECS: u64 = 3600;
/// Shortest connection timer in milliseconds: less than a round trip across a continent.
const MIN_TIMER_MS: u64 = 100;
/// Longest `activity_timeout`: pusher-js waits `activity_timeout * 1000` ms with `setTimeout`,
/// whose delay is a signed 32-bit number of milliseconds; beyond it the timer fires at once.
const MAX_ACTIVITY_TIMEOUT: u64 = (i32::MAX / 1000) as u64;
/// Longest cache channel life in seconds (a year).
const MAX_CACHE_TTL: u64 = 365 * 24 * 3600;
/// Largest WebSocket message: a message is held whole before it is handled, and twice it sizes
/// the outbound queue.
const MAX_MESSAGE: u64 = 1 << 30;
/// Fewest request headers: a browser's upgrade carries about a dozen.
const MIN_HEADERS: u64 = 8;
/// Most request headers: the parser allocates a slot for each on every request.
const MAX_HEADERS: u64 = 1024;
/// Smallest request head: a browser's upgrade request is several hundred bytes.
const MIN_REQUEST_HEAD: u64 = 1024;

/// Smallest send buffer: Linux's own floor (`SOCK_MIN_SNDBUF`), below which it raises the
/// value anyway.
const MIN_SEND_BUFFER: u64 = 4608;
/// Largest send buffer: far past what any subscriber needs; the kernel caps it at twice
/// `net.core.wmem_max` in any case.
const MAX_SEND_BUFFER: u64 = 256 << 20;

const ANY: RangeInclusive<u64> = 1..=u64::MAX;

/// One setting's value and the range it must be in.
struct Rule {
    key: &'static str,
    env: Option<&'static str>,
    value: u64,
    range: RangeInclusive<u64>,
    expected: &'static str,
}

fn rule(
    key: &'static str,
    env: Option<&'static str>,
    value: impl TryInto<u64>,
    range: RangeInclusive<u64>,
    expected: &'static str,
) -> Rule {
    Rule {
        key,
        env,
        value: value.try_into().unwrap_or(u64::MAX),
        range,
        expected,
    }
}

impl Config {
    /// Checks every numeric setting; `vars` are the environment and `.env` variables, to name
    /// the variable a bad value came from.
    pub(super) fn validate(&self, vars: &HashMap<String, String>) -> Result<(), ConfigError> {
        let l = &self.limits;
        let server = [
            rule(
                "workers",
                None,
                self.workers,
                1..=MAX_WORKERS,
                "from 1 to 1024 worker threads",
            ),
            rule(
                "shutdown_timeout",
                Some("RINGCAST_SHUTDOWN_TIMEOUT"),
                self.shutdown_timeout.as_secs(),
                1..=MAX_TIMER_SECS,
                "from 1 to 3600 seconds",
            ),
            rule(
                "write_timeout_ms",
                Some("RINGCAST_WRITE_TIMEOUT_MS"),
                self.write_timeout.as_millis(),
                MIN_TIMER_MS..=MAX_TIMER_SECS * 1000,
                "from 100 to 3600000 milliseconds",
            ),
            rule(
                "handshake_timeout_ms",
                Some("RINGCAST_HANDSHAKE_TIMEOUT_MS"),
                l.handshake_timeout_ms,
                MIN_TIMER_MS..=MAX_TIMER_SECS * 1000,
                "from 100 to 3600000 milliseconds",
            ),
            rule(
                "max_outbound_bytes",
                Some("RINGCAST_MAX_OUTBOUND_BYTES"),
                l.max_outbound_bytes,
                ANY,
                "at least 1 byte",
            ),
            rule(
                "max_mesh_bytes",
                Some("RINGCAST_MAX_MESH_BYTES"),
                l.max_mesh_bytes,
                ANY,
                "at least 1 byte",
            ),
            rule(
                "send_buffer_bytes",
                Some("RINGCAST_SEND_BUFFER_BYTES"),
                l.send_buffer_bytes,
                MIN_SEND_BUFFER..=MAX_SEND_BUFFER,
                "from 4608 bytes to 256 MiB",
            ),
            rule(
                "max_request_size",
                Some("REVERB_MAX_REQUEST_SIZE"),
                l.max_request_body,
                ANY,
                "at least 1 byte",
            ),
            rule(
                "max_request_head",
                None,
                l.max_request_head,
                MIN_REQUEST_HEAD..=u64::MAX,
                "at least 1024 bytes",
            ),
            rule(
                "max_headers",
                None,
                l.max_headers,
                MIN_HEADERS..=MAX_HEADERS,
                "from 8 to 1024 headers",
            ),
            rule(
                "max_event_data",
                None,
                l.max_event_data,
                ANY,
                "at least 1 byte",
            ),
            rule(
                "max_channels_per_event",
                None,
                l.max_channels_per_event,
                ANY,
                "at least 1",
            ),
            rule(
                "max_batch_events",
                None,
                l.max_batch_events,
                ANY,
                "at least 1",
            ),
            rule(
                "max_channel_name_len",
                None,
                l.max_channel_name_len,
                ANY,
                "at least 1",
            ),
            rule(
                "max_event_name_len",
                None,
                l.max_event_name_len,
                ANY,
                "at least 1",
            ),
            rule(
                "max_channels_per_connection",
                None,
                l.max_channels_per_connection,
                ANY,
                "at least 1",
            ),
            rule(
                "max_presence_members",
                None,
                l.max_presence_members,
                ANY,
                "at least 1",
            ),
            rule(
                "max_user_info_bytes",
                None,
                l.max_user_info_bytes,
                ANY,
                "at least 1 byte",
            ),
            rule(
                "max_user_id_len",
                None,
                l.max_user_id_len,
                ANY,
                "at least 1",
            ),
            rule(
                "max_watchlist",
                None,
                l.max_watchlist,
                ANY,
                "at least 1 (set watchlist_events = false to send no watchlist events)",
            ),
            rule(
                "client_events_per_second",
                None,
                l.client_events_per_second,
                ANY,
                "at least 1 (set accept_client_events_from = \"none\" to refuse them all)",
            ),
            rule(
                "auth_timestamp_skew_secs",
                None,
                l.auth_timestamp_skew_secs,
                ANY,
                "at least 1 second",
            ),
        ];
        for r in server {
            check(r, String::new(), vars)?;
        }
        for (i, app) in self.apps.iter().enumerate() {
            // The environment sets the first app only.
            let env = |name: &'static str| (i == 0).then_some(name);
            let mut rules = vec![
                rule(
                    "activity_timeout",
                    env("REVERB_APP_ACTIVITY_TIMEOUT"),
                    app.activity_timeout,
                    1..=MAX_ACTIVITY_TIMEOUT,
                    "from 1 to 2147483 seconds",
                ),
                rule(
                    "ping_interval",
                    env("REVERB_APP_PING_INTERVAL"),
                    app.ping_interval,
                    ANY,
                    "at least 1 second",
                ),
                rule(
                    "pong_timeout",
                    env("REVERB_APP_PONG_TIMEOUT"),
                    app.pong_timeout,
                    ANY,
                    "at least 1 second",
                ),
                rule(
                    "max_message_size",
                    env("REVERB_APP_MAX_MESSAGE_SIZE"),
                    app.max_message_size,
                    1..=MAX_MESSAGE,
                    "from 1 to 1073741824 bytes",
                ),
                rule(
                    "cache_ttl",
                    None,
                    app.cache_ttl,
                    1..=MAX_CACHE_TTL,
                    "from 1 to 31536000 seconds",
                ),
            ];
            if let Some(max) = app.max_connections {
                rules.push(rule(
                    "max_connections",
                    env("REVERB_APP_MAX_CONNECTIONS"),
                    max,
                    ANY,
                    "at least 1 (set enabled = false to refuse every connection)",
                ));
            }
            for r in rules {
                check(r, format!(" of app {:?}", app.id), vars)?;
            }
            for (n, w) in app.webhooks.iter().enumerate() {
                if let Err(bad) = crate::webhook::config::check(w) {
                    let mut name = format!("webhooks[{n}].{} of app {:?}", bad.key, app.id);
                    let env = match bad.key {
                        "url" => "RINGCAST_WEBHOOK_URL",
                        _ => "RINGCAST_WEBHOOK_EVENTS",
                    };
                    if i == 0 && vars.contains_key("RINGCAST_WEBHOOK_URL") {
                        name.push_str(&format!(" ({env})"));
                    }
                    return Err(ConfigError::BadWebhook {
                        name,
                        expected: bad.expected,
                        value: bad.value,
                    });
                }
            }
        }
        Ok(())
    }
}

/// The error for a value outside its range: `key` + `of_app` + the variable it came from.
fn check(r: Rule, of_app: String, vars: &HashMap<String, String>) -> Result<(), ConfigError> {
    if r.range.contains(&r.value) {
        return Ok(());
    }
    let mut name = format!("{}{of_app}", r.key);
    if let Some(env) = r.env.filter(|e| vars.contains_key(*e)) {
        name.push_str(&format!(" ({env})"));
    }
    Err(ConfigError::BadValue {
        name,
        expected: r.expected,
        value: r.value.to_string(),
    })
}
