//! Server configuration, layered the way a Laravel app expects.
//!
//! Lowest first: built-in defaults, a TOML file (`--config`), a Laravel-style `.env` in the
//! working directory, the process environment, and command-line flags. The environment layer
//! understands Reverb's names (`REVERB_APP_ID`, `REVERB_SERVER_PORT`, ...), so an app's `.env`
//! that was written for Laravel Reverb starts ringcast unchanged. Variables set in the process
//! environment win over the `.env` file, as they do for Laravel itself.
//!
//! Every mistake stops start-up with one line that names the setting to fix.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

mod operations;
mod scaling;
mod validate;

pub use operations::{FlagOperations, LogFormat, Operations};
pub use scaling::{RedisTarget, Scaling, ScalingLayer};

use rand::Rng;
use ringcast_protocol::Limits;
use serde::Deserialize;

use crate::webhook::WebhookConfig;

/// Who may send client events on an app (Reverb's `accept_client_events_from`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientEvents {
    /// Only connections subscribed to the channel (the default, as Reverb and hosted Pusher).
    Members,
    /// Any connection of the app.
    All,
    /// Nobody: client events are refused.
    None,
}

/// One app's settings.
///
/// Its `Debug` output shows every field but the secret, which prints as `[redacted]`: settings
/// end up in logs and panic messages (and [`Config`] and [`crate::app::App`] show their apps
/// through this impl), and a secret there signs anything.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AppConfig {
    /// The app id the HTTP API uses in its paths (`/apps/{id}/...`).
    pub id: String,
    /// The public key clients connect with (`/app/{key}`).
    pub key: String,
    /// The secret that signs API requests and channel authorisations. Never logged.
    pub secret: String,
    /// Whether the app accepts connections (4003 when not).
    pub enabled: bool,
    /// Seconds of silence after which pusher-js pings (sent in `connection_established`).
    /// Default 30, Reverb's default; from 1 to 2,147,483 (what pusher-js's timer can hold).
    pub activity_timeout: u32,
    /// Seconds of silence after which the server pings a connection. Default 60, as Reverb; at
    /// least 1.
    pub ping_interval: u32,
    /// Seconds a pinged connection has to answer before it is closed with 4201. Default 30, the
    /// wait pusher-js itself uses; at least 1.
    pub pong_timeout: u32,
    /// Largest WebSocket message (and frame) a client may send, in bytes. Default 10,000, as
    /// Reverb; from 1 to 1 GiB. The largest over all apps becomes [`Limits::max_message_size`]
    /// and [`Limits::max_frame_size`].
    pub max_message_size: usize,
    /// Most open connections for the app across all workers (4004 beyond); none by default, at
    /// least 1 when set (`enabled = false` refuses every connection).
    pub max_connections: Option<u64>,
    /// Origins allowed to open WebSocket connections; `*` and `*.example.com` wildcards.
    /// Empty or `["*"]` allows every origin, and clients that send no `Origin` (servers, Node).
    pub allowed_origins: Vec<String>,
    /// Who may send client events.
    pub accept_client_events_from: ClientEvents,
    /// Whether subscribers get `pusher_internal:subscription_count`.
    pub subscription_count: bool,
    /// Seconds a cache channel keeps its last event. Default 1800, hosted Pusher's 30 minutes;
    /// from 1 to a year.
    pub cache_ttl: u64,
    /// Whether signed-in users get watchlist events.
    pub watchlist_events: bool,
    /// Where the app's webhooks go (`[[apps.webhooks]]`; see [`crate::webhook::config`]).
    pub webhooks: Vec<WebhookConfig>,
}

impl std::fmt::Debug for AppConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Destructured, so that a new field cannot be forgotten here.
        let Self {
            id,
            key,
            secret: _,
            enabled,
            activity_timeout,
            ping_interval,
            pong_timeout,
            max_message_size,
            max_connections,
            allowed_origins,
            accept_client_events_from,
            subscription_count,
            cache_ttl,
            watchlist_events,
            webhooks,
        } = self;
        f.debug_struct("AppConfig")
            .field("id", id)
            .field("key", key)
            .field("secret", &format_args!("[redacted]"))
            .field("enabled", enabled)
            .field("activity_timeout", activity_timeout)
            .field("ping_interval", ping_interval)
            .field("pong_timeout", pong_timeout)
            .field("max_message_size", max_message_size)
            .field("max_connections", max_connections)
            .field("allowed_origins", allowed_origins)
            .field("accept_client_events_from", accept_client_events_from)
            .field("subscription_count", subscription_count)
            .field("cache_ttl", cache_ttl)
            .field("watchlist_events", watchlist_events)
            .field("webhooks", webhooks)
            .finish()
    }
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            id: String::new(),
            key: String::new(),
            secret: String::new(),
            enabled: true,
            activity_timeout: 30,
            ping_interval: 60,
            pong_timeout: 30,
            max_message_size: 10_000,
            max_connections: None,
            allowed_origins: Vec::new(),
            accept_client_events_from: ClientEvents::Members,
            subscription_count: false,
            cache_ttl: 1800,
            watchlist_events: true,
            webhooks: Vec::new(),
        }
    }
}

/// The whole server's settings. Safe to log: `Debug` shows the apps without their secrets.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to listen on.
    pub host: String,
    /// Port to listen on.
    pub port: u16,
    /// Worker threads, one per core by default; from 1 to 1024.
    pub workers: usize,
    /// A path prefix in front of `/app/{key}` and `/apps/{id}` (Reverb's `REVERB_SERVER_PATH`,
    /// pusher-js's `wsPath`), without a trailing slash; empty for none.
    pub path_prefix: String,
    /// Whether the `/echo` WebSocket endpoint (conformance testing) is enabled.
    pub echo: bool,
    /// Whether `/dashboard` serves the operator dashboard (`crate::dashboard`). Off by default,
    /// so that no page appears on a port nobody chose to open one on; even on, it shows nothing
    /// to anyone who does not know an app's id, key and secret.
    pub dashboard: bool,
    /// Seconds the server waits on shutdown for clients to take their close frames. Default 10,
    /// from 1 to 3600.
    pub shutdown_timeout: Duration,
    /// How long an HTTP response (an API answer, a refusal, the upgrade's 101) may wait for the
    /// client to make room for it before the connection is reset. The wait restarts whenever the
    /// client takes bytes, as nginx's `send_timeout`, so a slow reader of a large answer is
    /// served and only one that stops reading is dropped. Default 10 s: the Laravel queue
    /// worker reads its answer at once, and a client that takes nothing for that long has gone
    /// or is holding the connection on purpose.
    pub write_timeout: Duration,
    /// Protocol limits shared by every app: each field is a top-level key of the config file
    /// of the same name (`max_request_body` is Reverb's `max_request_size`), except the
    /// message and frame limits, which follow the apps' `max_message_size`.
    pub limits: Limits,
    /// The apps served.
    pub apps: Vec<AppConfig>,
    /// Whether the single app was generated at start-up because none was configured.
    pub generated: bool,
    /// The cluster this node joins (`REVERB_SCALING_ENABLED`), or `None` for a lone node.
    pub scaling: Option<Scaling>,
    /// Metrics and the other operator's settings (`config::operations`).
    pub operations: Operations,
    /// What this configuration was loaded from, to load it again on a reload.
    pub source: Source,
}

/// The layers a configuration was loaded from: the flags, the working directory (whose
/// `.env` and relative config path are read again) and the process environment. Its `Debug`
/// output names the environment's variables without their values, which hold secrets.
#[derive(Clone, Default)]
pub struct Source {
    pub flags: Overrides,
    pub cwd: std::path::PathBuf,
    pub env: HashMap<String, String>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.env.keys().collect();
        names.sort();
        f.debug_struct("Source")
            .field("flags", &self.flags)
            .field("cwd", &self.cwd)
            .field("env", &names)
            .finish()
    }
}

impl Config {
    /// Loads the configuration again from the layers it was loaded from.
    pub fn reload(&self) -> Result<Config, ConfigError> {
        Config::load(&self.source.flags, &self.source.cwd, &self.source.env)
    }
}

/// A configuration mistake, worded as what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("invalid config file {path}: {reason}")]
    Invalid { path: String, reason: String },
    #[error("cannot read .env: {0}")]
    DotEnv(String),
    #[error("{name} must be {expected}, got {value:?}")]
    BadValue {
        name: String,
        expected: &'static str,
        value: String,
    },
    #[error("{name} must be {expected}, got {value:?}")]
    BadWebhook {
        name: String,
        expected: String,
        value: String,
    },
    #[error("app {0:?} has no secret: set REVERB_APP_SECRET or `secret` in the config file")]
    MissingSecret(String),
    #[error(
        "TLS needs a certificate and its key, but the {0} is not set (tls_cert and tls_key in the file, RINGCAST_TLS_CERT and RINGCAST_TLS_KEY, or --tls-cert and --tls-key)"
    )]
    TlsHalf(&'static str),
    #[error("an app needs an id and a key: set REVERB_APP_ID and REVERB_APP_KEY")]
    MissingIdentity,
    #[error("two apps share the {what} {value:?}; every app needs its own")]
    Duplicate { what: &'static str, value: String },
    #[error(
        "REVERB_SCALING_ENABLED needs configured apps: every node of a cluster must serve the same ones (set REVERB_APP_ID, REVERB_APP_KEY and REVERB_APP_SECRET)"
    )]
    ScalingNeedsApps,
}

/// The config file's shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileConfig {
    host: Option<String>,
    port: Option<u16>,
    workers: Option<usize>,
    path: Option<String>,
    echo: Option<bool>,
    dashboard: Option<bool>,
    shutdown_timeout: Option<u64>,
    write_timeout_ms: Option<u64>,
    /// Sets [`Limits::max_request_body`], under Reverb's name for it.
    max_request_size: Option<usize>,
    max_request_head: Option<usize>,
    max_headers: Option<usize>,
    max_event_data: Option<usize>,
    max_channels_per_event: Option<usize>,
    max_batch_events: Option<usize>,
    max_channel_name_len: Option<usize>,
    max_event_name_len: Option<usize>,
    max_channels_per_connection: Option<usize>,
    max_presence_members: Option<usize>,
    max_user_info_bytes: Option<usize>,
    max_user_id_len: Option<usize>,
    max_watchlist: Option<usize>,
    client_events_per_second: Option<u32>,
    auth_timestamp_skew_secs: Option<u64>,
    max_outbound_bytes: Option<usize>,
    max_mesh_bytes: Option<usize>,
    send_buffer_bytes: Option<usize>,
    handshake_timeout_ms: Option<u64>,
    scaling: Option<ScalingLayer>,
    metrics_addr: Option<String>,
    log_format: Option<String>,
    debug: Option<bool>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    apps: Vec<AppConfig>,
}

/// Values given on the command line (the highest layer).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub workers: Option<usize>,
    pub path: Option<String>,
    pub echo: bool,
    pub dashboard: bool,
    pub config_file: Option<String>,
    /// `--scaling`, `--scaling-channel` and the `--redis-*` flags.
    pub scaling: ScalingLayer,
    /// The operator's settings given as flags.
    pub operations: FlagOperations,
}

impl Config {
    /// Loads every layer: `config_file`, `.env` in `cwd`, `env`, then `flags`.
    pub fn load(
        flags: &Overrides,
        cwd: &Path,
        env: &HashMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let mut cfg = Config {
            host: "0.0.0.0".into(),
            port: 8080,
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            path_prefix: String::new(),
            echo: false,
            dashboard: false,
            shutdown_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            limits: Limits::default(),
            apps: Vec::new(),
            generated: false,
            scaling: None,
            operations: Operations::default(),
            source: Source {
                flags: flags.clone(),
                cwd: cwd.to_path_buf(),
                env: env.clone(),
            },
        };
        let mut scaling = ScalingLayer::default();
        if let Some(path) = &flags.config_file {
            scaling = cfg.apply_file(path)?;
        }
        let mut vars = read_dotenv(&cwd.join(".env"))?;
        vars.extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));
        cfg.apply_env(&vars)?;
        scaling.apply(&ScalingLayer::from_env(&vars)?);
        scaling.apply(&flags.scaling);
        if let Some(h) = &flags.host {
            cfg.host = h.clone();
        }
        if let Some(p) = flags.port {
            cfg.port = p;
        }
        if let Some(w) = flags.workers {
            cfg.workers = w;
        }
        if let Some(p) = &flags.path {
            cfg.path_prefix = normalise_prefix(p);
        }
        cfg.echo |= flags.echo;
        cfg.dashboard |= flags.dashboard;
        cfg.operations.apply_flags(&flags.operations)?;
        let mut cfg = cfg.finish(&vars)?;
        cfg.scaling = scaling.resolve(cfg.generated)?;
        Ok(cfg)
    }

    /// Applies the config file and returns its `[scaling]` table, which is resolved with the
    /// other layers' scaling settings once they are all known.
    fn apply_file(&mut self, path: &str) -> Result<ScalingLayer, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Unreadable {
            path: path.into(),
            reason: e.to_string(),
        })?;
        let file: FileConfig = toml::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: path.into(),
            reason: located(&text, &e),
        })?;
        if let Some(h) = file.host {
            self.host = h;
        }
        if let Some(p) = file.port {
            self.port = p;
        }
        if let Some(w) = file.workers {
            self.workers = w;
        }
        if let Some(p) = file.path {
            self.path_prefix = normalise_prefix(&p);
        }
        if let Some(e) = file.echo {
            self.echo = e;
        }
        if let Some(d) = file.dashboard {
            self.dashboard = d;
        }
        if let Some(s) = file.shutdown_timeout {
            self.shutdown_timeout = Duration::from_secs(s);
        }
        if let Some(t) = file.write_timeout_ms {
            self.write_timeout = Duration::from_millis(t);
        }
        if let Some(m) = file.max_request_size {
            self.limits.max_request_body = m;
        }
        // The rest of the file's top-level keys are `Limits` fields of the same name.
        macro_rules! limits {
            ($($field:ident),* $(,)?) => {
                $(if let Some(v) = file.$field {
                    self.limits.$field = v;
                })*
            };
        }
        limits!(
            max_request_head,
            max_headers,
            max_event_data,
            max_channels_per_event,
            max_batch_events,
            max_channel_name_len,
            max_event_name_len,
            max_channels_per_connection,
            max_presence_members,
            max_user_info_bytes,
            max_user_id_len,
            max_watchlist,
            client_events_per_second,
            auth_timestamp_skew_secs,
            max_outbound_bytes,
            max_mesh_bytes,
            send_buffer_bytes,
            handshake_timeout_ms,
        );
        self.apps = file.apps;
        self.operations.apply_file(&operations::FileOperations {
            metrics_addr: file.metrics_addr,
            log_format: file.log_format,
            debug: file.debug,
            tls_cert: file.tls_cert,
            tls_key: file.tls_key,
        })?;
        Ok(file.scaling.unwrap_or_default())
    }

    fn apply_env(&mut self, vars: &HashMap<String, String>) -> Result<(), ConfigError> {
        self.operations.apply_env(vars)?;
        if let Some(v) = vars.get("REVERB_SERVER_HOST") {
            self.host = v.clone();
        }
        if let Some(v) = vars.get("REVERB_SERVER_PORT") {
            self.port = parse(v, "REVERB_SERVER_PORT", "a port number from 0 to 65535")?;
        }
        if let Some(v) = vars.get("REVERB_SERVER_PATH") {
            self.path_prefix = normalise_prefix(v);
        }
        if let Some(v) = vars.get("REVERB_MAX_REQUEST_SIZE") {
            self.limits.max_request_body = parse(v, "REVERB_MAX_REQUEST_SIZE", "a size in bytes")?;
        }
        if let Some(v) = vars.get("RINGCAST_DASHBOARD") {
            self.dashboard = parse_switch(v, "RINGCAST_DASHBOARD")?;
        }
        if let Some(v) = vars.get("RINGCAST_WORKERS") {
            self.workers = parse(v, "RINGCAST_WORKERS", "a number of worker threads")?;
        }
        if let Some(v) = vars.get("RINGCAST_HANDSHAKE_TIMEOUT_MS") {
            self.limits.handshake_timeout_ms =
                parse(v, "RINGCAST_HANDSHAKE_TIMEOUT_MS", "milliseconds")?;
        }
        if let Some(v) = vars.get("RINGCAST_MAX_OUTBOUND_BYTES") {
            self.limits.max_outbound_bytes =
                parse(v, "RINGCAST_MAX_OUTBOUND_BYTES", "a size in bytes")?;
        }
        if let Some(v) = vars.get("RINGCAST_MAX_MESH_BYTES") {
            self.limits.max_mesh_bytes = parse(v, "RINGCAST_MAX_MESH_BYTES", "a size in bytes")?;
        }
        if let Some(v) = vars.get("RINGCAST_SEND_BUFFER_BYTES") {
            self.limits.send_buffer_bytes =
                parse(v, "RINGCAST_SEND_BUFFER_BYTES", "a size in bytes")?;
        }
        if let Some(v) = vars.get("RINGCAST_SHUTDOWN_TIMEOUT") {
            self.shutdown_timeout =
                Duration::from_secs(parse(v, "RINGCAST_SHUTDOWN_TIMEOUT", "seconds")?);
        }
        if let Some(v) = vars.get("RINGCAST_WRITE_TIMEOUT_MS") {
            self.write_timeout =
                Duration::from_millis(parse(v, "RINGCAST_WRITE_TIMEOUT_MS", "milliseconds")?);
        }
        let names = [
            "REVERB_APP_ID",
            "REVERB_APP_KEY",
            "REVERB_APP_SECRET",
            "REVERB_APP_ACTIVITY_TIMEOUT",
            "REVERB_APP_PING_INTERVAL",
            "REVERB_APP_PONG_TIMEOUT",
            "REVERB_APP_MAX_MESSAGE_SIZE",
            "REVERB_APP_MAX_CONNECTIONS",
        ];
        if !names.iter().any(|n| vars.contains_key(*n)) {
            return Ok(());
        }
        if self.apps.is_empty() {
            self.apps.push(AppConfig::default());
        }
        let app = &mut self.apps[0];
        if let Some(v) = vars.get("REVERB_APP_ID") {
            app.id = v.clone();
        }
        if let Some(v) = vars.get("REVERB_APP_KEY") {
            app.key = v.clone();
        }
        if let Some(v) = vars.get("REVERB_APP_SECRET") {
            app.secret = v.clone();
        }
        if let Some(v) = vars.get("REVERB_APP_ACTIVITY_TIMEOUT") {
            app.activity_timeout = parse(v, "REVERB_APP_ACTIVITY_TIMEOUT", "seconds")?;
        }
        if let Some(v) = vars.get("REVERB_APP_PING_INTERVAL") {
            app.ping_interval = parse(v, "REVERB_APP_PING_INTERVAL", "seconds")?;
        }
        if let Some(v) = vars.get("REVERB_APP_PONG_TIMEOUT") {
            app.pong_timeout = parse(v, "REVERB_APP_PONG_TIMEOUT", "seconds")?;
        }
        if let Some(v) = vars.get("REVERB_APP_MAX_MESSAGE_SIZE") {
            app.max_message_size = parse(v, "REVERB_APP_MAX_MESSAGE_SIZE", "a size in bytes")?;
        }
        if let Some(v) = vars.get("REVERB_APP_MAX_CONNECTIONS") {
            app.max_connections = if v.trim().is_empty() {
                None
            } else {
                Some(parse(
                    v,
                    "REVERB_APP_MAX_CONNECTIONS",
                    "a number of connections",
                )?)
            };
        }
        Ok(())
    }

    /// Generates the app when none is configured, validates every setting and derives the
    /// limits that follow from the apps'.
    fn finish(mut self, vars: &HashMap<String, String>) -> Result<Config, ConfigError> {
        if self.apps.is_empty() {
            self.apps.push(generated_app());
            self.generated = true;
        }
        // The environment's webhook is the first app's, replacing any of the file's.
        if let Some(url) = vars.get("RINGCAST_WEBHOOK_URL") {
            self.apps[0].webhooks = if url.trim().is_empty() {
                Vec::new()
            } else {
                let events = vars.get("RINGCAST_WEBHOOK_EVENTS").map(String::as_str);
                vec![WebhookConfig::from_env(url, events)]
            };
        }
        for app in &self.apps {
            if app.id.is_empty() || app.key.is_empty() {
                return Err(ConfigError::MissingIdentity);
            }
            if app.secret.is_empty() {
                return Err(ConfigError::MissingSecret(app.id.clone()));
            }
        }
        for (i, a) in self.apps.iter().enumerate() {
            for b in &self.apps[..i] {
                if a.id == b.id {
                    return Err(ConfigError::Duplicate {
                        what: "id",
                        value: a.id.clone(),
                    });
                }
                if a.key == b.key {
                    return Err(ConfigError::Duplicate {
                        what: "key",
                        value: a.key.clone(),
                    });
                }
            }
        }
        self.validate(vars)?;
        self.operations.validate(&self.host, self.port)?;
        // The largest message any app accepts bounds the frame decoder.
        let max_msg = self
            .apps
            .iter()
            .map(|a| a.max_message_size)
            .max()
            .unwrap_or(0);
        self.limits.max_message_size = max_msg;
        self.limits.max_frame_size = max_msg;
        // A queue must hold at least a couple of the largest frames an echo can produce.
        self.limits.max_outbound_bytes = self.limits.max_outbound_bytes.max(2 * max_msg + 64);
        Ok(self)
    }

    /// The lines a Laravel `.env` needs to reach this server, for printing at start-up.
    pub fn laravel_env_block(&self) -> String {
        let app = &self.apps[0];
        let host = if self.host == "0.0.0.0" || self.host == "::" {
            "localhost"
        } else {
            &self.host
        };
        format!(
            "BROADCAST_CONNECTION=reverb\nREVERB_APP_ID={}\nREVERB_APP_KEY={}\nREVERB_APP_SECRET={}\nREVERB_HOST={}\nREVERB_PORT={}\nREVERB_SCHEME=http\n",
            app.id, app.key, app.secret, host, self.port
        )
    }
}

/// A TOML error on one line: the parser's message and the line it is about, so that a value of
/// the wrong type or size is named by its key.
fn located(text: &str, e: &toml::de::Error) -> String {
    let Some(span) = e.span() else {
        return e.message().to_string();
    };
    let start = span.start.min(text.len());
    let line_no = text[..start].matches('\n').count() + 1;
    let line = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    format!(
        "line {line_no}: {}: {}",
        text[line..end].trim(),
        e.message()
    )
}

fn parse<T: std::str::FromStr>(
    value: &str,
    name: &str,
    expected: &'static str,
) -> Result<T, ConfigError> {
    value.trim().parse().map_err(|_| ConfigError::BadValue {
        name: name.into(),
        expected,
        value: value.into(),
    })
}

/// An on/off environment variable: `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`.
fn parse_switch(value: &str, name: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        _ => Err(ConfigError::BadValue {
            name: name.into(),
            expected: "true or false",
            value: value.into(),
        }),
    }
}

/// `""`, `"/"` -> `""`; `"ws"`, `"/ws/"` -> `"/ws"`.
pub fn normalise_prefix(p: &str) -> String {
    let t = p.trim().trim_matches('/');
    if t.is_empty() {
        String::new()
    } else {
        format!("/{t}")
    }
}

fn read_dotenv(path: &Path) -> Result<HashMap<String, String>, ConfigError> {
    let mut vars = HashMap::new();
    if !path.exists() {
        return Ok(vars);
    }
    let iter = dotenvy::from_path_iter(path).map_err(|e| ConfigError::DotEnv(e.to_string()))?;
    for item in iter {
        let (k, v) = item.map_err(|e| ConfigError::DotEnv(e.to_string()))?;
        vars.insert(k, v);
    }
    Ok(vars)
}

fn generated_app() -> AppConfig {
    let mut rng = rand::thread_rng();
    let alnum = |rng: &mut rand::rngs::ThreadRng, n: usize| -> String {
        (0..n)
            .map(|_| {
                let c = rng.gen_range(0..36u8);
                (if c < 10 { b'0' + c } else { b'a' + c - 10 }) as char
            })
            .collect()
    };
    AppConfig {
        id: rng.gen_range(100_000..1_000_000u32).to_string(),
        key: alnum(&mut rng, 20),
        secret: alnum(&mut rng, 20),
        ..AppConfig::default()
    }
}

#[cfg(test)]
mod tests;
