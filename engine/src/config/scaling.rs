//! The scaling settings: whether this node joins a cluster, and which Redis holds it.
//!
//! The names are Laravel's, so an app's `.env` written for Reverb's Redis scaling starts a
//! ringcast cluster unchanged: `REVERB_SCALING_ENABLED`, `REVERB_SCALING_CHANNEL` (here the
//! prefix of every key ringcast keeps in Redis, default `reverb`), and the Redis connection of
//! Laravel's `config/database.php`: `REDIS_URL`, or `REDIS_HOST`, `REDIS_PORT`,
//! `REDIS_USERNAME`, `REDIS_PASSWORD`, `REDIS_DB`. As in Laravel, the parts a `REDIS_URL` names
//! win over the separate variables, and the separate ones fill in what the URL leaves out;
//! `null` and `(null)` mean unset, as PHP's `env()` reads them (Laravel's default `.env` has
//! `REDIS_PASSWORD=null`). The same settings are the `[scaling]` table of the config file and
//! the `--scaling` and `--redis-*` flags.
//!
//! Two settings are ringcast's own: how long a silent node lives before the others reap it
//! (`node_timeout`, `RINGCAST_NODE_TIMEOUT`, `--node-timeout`) and how many bytes of work for
//! Redis a node holds while Redis is slow or away (`buffer_bytes`,
//! `RINGCAST_CLUSTER_BUFFER_BYTES`, `--cluster-buffer-bytes`).
//!
//! A password never leaves this module in text: [`RedisTarget`]'s `Debug` and
//! [`RedisTarget::display`] leave it out, and so do the errors about a bad `REDIS_URL`.

use std::collections::HashMap;

use serde::Deserialize;

use super::ConfigError;

/// The largest database index accepted (Redis's default `databases` is 16; servers configured
/// for more exist, none with millions).
const MAX_DB: i64 = 1 << 20;

/// The default [`Scaling::node_timeout`], in seconds.
pub const NODE_TIMEOUT_SECS: u64 = 30;
/// The shortest node timeout: the lease must outlive a few missed heartbeats (one a second)
/// on a busy host before a live node is taken for dead.
const MIN_NODE_TIMEOUT_SECS: u64 = 3;
const MAX_NODE_TIMEOUT_SECS: u64 = 3600;
/// The default [`Scaling::buffer_bytes`]: as much as a worker's mesh inbox holds.
pub const BUFFER_BYTES: usize = 64 << 20;
/// The smallest buffer: room for a few of the largest API requests.
const MIN_BUFFER_BYTES: usize = 1 << 20;
const MAX_BUFFER_BYTES: usize = 1 << 40;

/// Where this node's cluster lives.
#[derive(Clone, Debug)]
pub struct Scaling {
    /// The prefix of every Redis key ringcast keeps (`REVERB_SCALING_CHANNEL`), so that several
    /// clusters (or apps of Laravel that also use Redis) share one Redis without meeting.
    pub prefix: String,
    /// The Redis server.
    pub redis: RedisTarget,
    /// How long a node that stopped renewing its lease (killed, frozen, cut off) is still
    /// taken for alive: within this time of its last heartbeat a survivor removes its
    /// members, subscriptions and sign-ins. Default 30 s, from 3 s to an hour: shorter finds
    /// dead nodes sooner, and takes a node whose heartbeats are late (a host stalled for the
    /// whole timeout) for dead; that node then registers again with its clients, who see
    /// their members leave and come back.
    pub node_timeout: std::time::Duration,
    /// Bytes of work for Redis a node holds, queued or waiting for an unreachable Redis,
    /// before the HTTP API answers 503 (and client frames are read more slowly). Also the
    /// bound of the publishes kept for a few seconds after Redis ran them
    /// (`crate::cluster::outbox`). Default 64 MiB, at least 1 MiB: at 1,000 publishes of
    /// 1 KiB a second, a minute of outage.
    pub buffer_bytes: usize,
}

impl Scaling {
    /// The lease a heartbeat sets: the node timeout less the heartbeat interval, so that a
    /// survivor's heartbeat reaps a dead node within the node timeout of its last one.
    pub fn lease(&self) -> std::time::Duration {
        self.node_timeout
            .saturating_sub(crate::cluster::command::HEARTBEAT_EVERY)
    }
}

/// A Redis server and the credentials to use it with.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisTarget {
    /// `rediss://`: TLS (rustls, the system's root certificates).
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    /// Never printed.
    pub password: Option<String>,
    pub db: i64,
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display())
    }
}

impl RedisTarget {
    /// The target as a URL without its password, for logs and the start-up line.
    pub fn display(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        let user = match (&self.username, &self.password) {
            (Some(u), _) => format!("{u}@"),
            (None, Some(_)) => "[password]@".to_string(),
            (None, None) => String::new(),
        };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("{scheme}://{user}{host}:{}/{}", self.port, self.db)
    }

    /// What the Redis client connects with.
    pub fn connection_info(&self) -> redis::ConnectionInfo {
        use redis::IntoConnectionInfo;
        let addr = if self.tls {
            redis::ConnectionAddr::TcpTls {
                host: self.host.clone(),
                port: self.port,
                insecure: false,
                tls_params: None,
            }
        } else {
            redis::ConnectionAddr::Tcp(self.host.clone(), self.port)
        };
        let mut settings = redis::RedisConnectionInfo::default().set_db(self.db);
        if let Some(u) = &self.username {
            settings = settings.set_username(u);
        }
        if let Some(p) = &self.password {
            settings = settings.set_password(p);
        }
        // Converting an address cannot fail: it is already parsed.
        let info = addr
            .into_connection_info()
            .unwrap_or_else(|_| unreachable!("a ConnectionAddr converts to a ConnectionInfo"));
        info.set_redis_settings(settings)
    }
}

/// The `[scaling]` table of the config file, and the shape of each layer.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScalingLayer {
    pub enabled: Option<bool>,
    pub channel: Option<String>,
    pub url: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub db: Option<i64>,
    /// [`Scaling::node_timeout`], in seconds.
    pub node_timeout: Option<u64>,
    pub buffer_bytes: Option<usize>,
}

impl ScalingLayer {
    /// Sets what `over` sets.
    pub fn apply(&mut self, over: &ScalingLayer) {
        macro_rules! take {
            ($($f:ident),*) => { $(if over.$f.is_some() { self.$f = over.$f.clone(); })* };
        }
        take!(
            enabled,
            channel,
            url,
            host,
            port,
            username,
            password,
            db,
            node_timeout,
            buffer_bytes
        );
    }

    /// The layer of the environment (and `.env`) variables.
    pub fn from_env(vars: &HashMap<String, String>) -> Result<ScalingLayer, ConfigError> {
        let get = |name: &str| vars.get(name).and_then(|v| php_env(v));
        let mut l = ScalingLayer::default();
        if let Some(v) = vars.get("REVERB_SCALING_ENABLED") {
            l.enabled = Some(parse_bool(v, "REVERB_SCALING_ENABLED")?);
        }
        l.channel = get("REVERB_SCALING_CHANNEL");
        l.url = get("REDIS_URL");
        l.host = get("REDIS_HOST");
        if let Some(v) = get("REDIS_PORT") {
            l.port = Some(parse_port(&v, "REDIS_PORT")?);
        }
        l.username = get("REDIS_USERNAME");
        l.password = get("REDIS_PASSWORD");
        if let Some(v) = get("REDIS_DB") {
            l.db = Some(parse_db(&v, "REDIS_DB")?);
        }
        if let Some(v) = get("RINGCAST_NODE_TIMEOUT") {
            l.node_timeout = Some(
                v.trim()
                    .parse()
                    .map_err(|_| bad("RINGCAST_NODE_TIMEOUT", "a number of seconds", &v))?,
            );
        }
        if let Some(v) = get("RINGCAST_CLUSTER_BUFFER_BYTES") {
            l.buffer_bytes = Some(
                v.trim()
                    .parse()
                    .map_err(|_| bad("RINGCAST_CLUSTER_BUFFER_BYTES", "a number of bytes", &v))?,
            );
        }
        Ok(l)
    }

    /// The scaling settings these layers add up to, or `None` when scaling is off.
    pub fn resolve(&self, generated_app: bool) -> Result<Option<Scaling>, ConfigError> {
        if self.enabled != Some(true) {
            return Ok(None);
        }
        if generated_app {
            return Err(ConfigError::ScalingNeedsApps);
        }
        let prefix = self.channel.clone().unwrap_or_else(|| "reverb".into());
        if prefix.is_empty() || prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad(
                "REVERB_SCALING_CHANNEL",
                "a non-empty key prefix without spaces",
                &prefix,
            ));
        }
        let mut target = RedisTarget {
            tls: false,
            host: self.host.clone().unwrap_or_else(|| "127.0.0.1".into()),
            port: self.port.unwrap_or(6379),
            username: self.username.clone(),
            password: self.password.clone(),
            db: self.db.unwrap_or(0),
        };
        if let Some(url) = &self.url {
            parse_url(url, &mut target)?;
        }
        if target.host.is_empty() {
            return Err(bad("REDIS_HOST", "a host name or address", ""));
        }
        if target.port == 0 {
            return Err(bad("REDIS_PORT", "a port number from 1 to 65535", "0"));
        }
        if !(0..=MAX_DB).contains(&target.db) {
            return Err(bad(
                "REDIS_DB",
                "a database number from 0",
                &target.db.to_string(),
            ));
        }
        let node_timeout = self.node_timeout.unwrap_or(NODE_TIMEOUT_SECS);
        if !(MIN_NODE_TIMEOUT_SECS..=MAX_NODE_TIMEOUT_SECS).contains(&node_timeout) {
            return Err(bad(
                "node_timeout",
                "a number of seconds from 3 to 3600",
                &node_timeout.to_string(),
            ));
        }
        let buffer_bytes = self.buffer_bytes.unwrap_or(BUFFER_BYTES);
        if !(MIN_BUFFER_BYTES..=MAX_BUFFER_BYTES).contains(&buffer_bytes) {
            return Err(bad(
                "buffer_bytes",
                "a number of bytes from 1048576 (1 MiB) to 1 TiB",
                &buffer_bytes.to_string(),
            ));
        }
        Ok(Some(Scaling {
            prefix,
            redis: target,
            node_timeout: std::time::Duration::from_secs(node_timeout),
            buffer_bytes,
        }))
    }
}

fn bad(name: &str, expected: &'static str, value: &str) -> ConfigError {
    ConfigError::BadValue {
        name: name.into(),
        expected,
        value: value.into(),
    }
}

/// A value as PHP's `env()` reads it: `null`/`(null)` are unset, `empty`/`(empty)` are "".
fn php_env(v: &str) -> Option<String> {
    match v.trim() {
        "null" | "(null)" => None,
        "empty" | "(empty)" => Some(String::new()),
        t => Some(t.to_string()),
    }
}

/// A boolean as PHP's `env()` and most `.env` files write it.
pub fn parse_bool(v: &str, name: &str) -> Result<bool, ConfigError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "(true)" | "1" | "yes" | "on" => Ok(true),
        "false" | "(false)" | "0" | "no" | "off" | "" | "null" | "(null)" => Ok(false),
        _ => Err(bad(name, "true or false", v)),
    }
}

fn parse_port(v: &str, name: &str) -> Result<u16, ConfigError> {
    match v.trim().parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(bad(name, "a port number from 1 to 65535", v)),
    }
}

fn parse_db(v: &str, name: &str) -> Result<i64, ConfigError> {
    match v.trim().parse::<i64>() {
        Ok(d) if (0..=MAX_DB).contains(&d) => Ok(d),
        _ => Err(bad(name, "a database number from 0", v)),
    }
}

/// Reads `redis://[user[:password]@]host[:port][/db]` (or `rediss://`) into `t`, replacing
/// what the URL names. Errors quote the URL without its password.
fn parse_url(url: &str, t: &mut RedisTarget) -> Result<(), ConfigError> {
    let shown = redact_url(url);
    let err = |expected: &'static str| bad("REDIS_URL", expected, &shown);
    let (tls, rest) = if let Some(r) = url.strip_prefix("redis://") {
        (false, r)
    } else if let Some(r) = url.strip_prefix("rediss://") {
        (true, r)
    } else {
        return Err(err("a redis:// or rediss:// URL"));
    };
    if rest.contains('?') || rest.contains('#') {
        return Err(err(
            "a URL without query parameters (redis://user:password@host:port/db)",
        ));
    }
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (host, port) = if let Some(r) = hostport.strip_prefix('[') {
        let (h, after) = r
            .split_once(']')
            .ok_or_else(|| err("a URL with a valid host"))?;
        (h, after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(err("a URL with a host (redis://host:port)"));
    }
    let port = match port {
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p > 0 => Some(p),
            _ => return Err(err("a URL with a port from 1 to 65535")),
        },
        None => None,
    };
    let db = match path.trim_end_matches('/') {
        "" => None,
        d => match d.parse::<i64>() {
            Ok(d) if (0..=MAX_DB).contains(&d) => Some(d),
            _ => {
                return Err(err(
                    "a URL whose path is a database number (redis://host/0)",
                ));
            }
        },
    };
    if let Some(u) = userinfo {
        let (user, pass) = match u.split_once(':') {
            Some((user, pass)) => (user, Some(pass)),
            None => (u, None),
        };
        let user = percent_decode(user).ok_or_else(|| err("a URL with valid %-escapes"))?;
        if !user.is_empty() {
            t.username = Some(user);
        }
        if let Some(p) = pass {
            t.password = Some(percent_decode(p).ok_or_else(|| err("a URL with valid %-escapes"))?);
        }
    }
    t.tls = tls;
    t.host = host.to_string();
    if let Some(p) = port {
        t.port = p;
    }
    if let Some(d) = db {
        t.db = d;
    }
    Ok(())
}

/// `url` with the password of its user part replaced by `[password]`.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "[not a URL]".into();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let user = rest[..at].split(':').next().unwrap_or("");
            let sep = if rest[..at].contains(':') {
                ":[password]"
            } else {
                ""
            };
            format!("{scheme}://{user}{sep}{}", &rest[at..])
        }
        None => url.to_string(),
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn resolve(pairs: &[(&str, &str)]) -> Result<Option<Scaling>, ConfigError> {
        ScalingLayer::from_env(&env(pairs))?.resolve(false)
    }

    #[test]
    fn off_unless_enabled_and_laravel_defaults_when_on() {
        assert!(resolve(&[("REDIS_HOST", "x")]).unwrap().is_none());
        assert!(
            resolve(&[("REVERB_SCALING_ENABLED", "false")])
                .unwrap()
                .is_none()
        );
        let s = resolve(&[
            ("REVERB_SCALING_ENABLED", "true"),
            ("REDIS_PASSWORD", "null"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(s.prefix, "reverb");
        assert_eq!(s.redis.display(), "redis://127.0.0.1:6379/0");
        assert_eq!(s.redis.password, None, "PHP's null is unset");
    }

    #[test]
    fn url_parts_win_and_separate_variables_fill_in() {
        let s = resolve(&[
            ("REVERB_SCALING_ENABLED", "1"),
            ("REVERB_SCALING_CHANNEL", "shop"),
            ("REDIS_URL", "rediss://app:s%40cret@redis.internal:6380/3"),
            ("REDIS_HOST", "ignored"),
            ("REDIS_PORT", "1"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(s.prefix, "shop");
        let r = &s.redis;
        assert!(r.tls);
        assert_eq!((r.host.as_str(), r.port, r.db), ("redis.internal", 6380, 3));
        assert_eq!(r.username.as_deref(), Some("app"));
        assert_eq!(r.password.as_deref(), Some("s@cret"));
        assert_eq!(r.display(), "rediss://app@redis.internal:6380/3");
        assert!(!format!("{s:?}").contains("cret"), "{s:?}");
        let s = resolve(&[
            ("REVERB_SCALING_ENABLED", "true"),
            ("REDIS_URL", "redis://10.0.0.5"),
            ("REDIS_PORT", "7000"),
            ("REDIS_PASSWORD", "pw"),
            ("REDIS_DB", "2"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(s.redis.display(), "redis://[password]@10.0.0.5:7000/2");
        assert_eq!(s.redis.password.as_deref(), Some("pw"));
    }

    #[test]
    fn mistakes_are_one_line_and_never_show_the_password() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("REVERB_SCALING_ENABLED", "maybe")],
                "REVERB_SCALING_ENABLED",
            ),
            (&[("REDIS_PORT", "99999")], "REDIS_PORT"),
            (&[("REDIS_DB", "-1")], "REDIS_DB"),
            (&[("REDIS_URL", "http://u:topsecret@h:1")], "redis://"),
            (&[("REDIS_URL", "redis://u:topsecret@h:0")], "port"),
            (&[("REDIS_URL", "redis://u:topsecret@h/x")], "database"),
            (&[("REDIS_URL", "redis://u:topsecret@h?tls=1")], "query"),
            (
                &[("REVERB_SCALING_CHANNEL", "a b")],
                "REVERB_SCALING_CHANNEL",
            ),
        ];
        for (pairs, needle) in cases {
            let mut all = vec![("REVERB_SCALING_ENABLED", "true")];
            all.extend_from_slice(pairs);
            let e = resolve(&all).unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
            assert!(!e.contains("topsecret"), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
        let e = ScalingLayer {
            enabled: Some(true),
            ..Default::default()
        }
        .resolve(true)
        .unwrap_err();
        assert!(e.to_string().contains("REVERB_APP_ID"), "{e}");
    }

    #[test]
    fn node_timeout_and_buffer_come_from_every_layer_and_are_checked() {
        let on = [("REVERB_SCALING_ENABLED", "true")];
        let s = resolve(&on).unwrap().unwrap();
        assert_eq!(s.node_timeout.as_secs(), NODE_TIMEOUT_SECS);
        assert_eq!(s.lease().as_secs(), NODE_TIMEOUT_SECS - 1);
        assert_eq!(s.buffer_bytes, BUFFER_BYTES);
        let s = resolve(&[
            ("REVERB_SCALING_ENABLED", "true"),
            ("RINGCAST_NODE_TIMEOUT", "5"),
            ("RINGCAST_CLUSTER_BUFFER_BYTES", "2097152"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(s.node_timeout.as_secs(), 5);
        assert_eq!(s.buffer_bytes, 2 << 20);
        for (name, value, needle) in [
            ("RINGCAST_NODE_TIMEOUT", "2", "node_timeout"),
            ("RINGCAST_NODE_TIMEOUT", "3601", "node_timeout"),
            ("RINGCAST_NODE_TIMEOUT", "soon", "RINGCAST_NODE_TIMEOUT"),
            ("RINGCAST_CLUSTER_BUFFER_BYTES", "1000", "buffer_bytes"),
            (
                "RINGCAST_CLUSTER_BUFFER_BYTES",
                "-1",
                "RINGCAST_CLUSTER_BUFFER_BYTES",
            ),
        ] {
            let e = resolve(&[("REVERB_SCALING_ENABLED", "true"), (name, value)])
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{e}");
        }
    }

    #[test]
    fn the_file_table_the_environment_and_the_flags_layer_in_order() {
        use crate::config::{Config, Overrides};
        let dir = std::env::temp_dir().join(format!("ringcast-scaling-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("ringcast.toml");
        std::fs::write(
            &file,
            "[scaling]\nenabled = true\nchannel = \"fromfile\"\nhost = \"filehost\"\nport = 7001\ndb = 4\nnode_timeout = 9\nbuffer_bytes = 4194304\n\n[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\n",
        )
        .unwrap();
        let mut flags = Overrides {
            config_file: Some(file.to_string_lossy().into()),
            ..Overrides::default()
        };
        flags.scaling.port = Some(7003);
        flags.scaling.node_timeout = Some(11);
        let cfg = Config::load(
            &flags,
            &dir,
            &env(&[("REDIS_HOST", "envhost"), ("RINGCAST_NODE_TIMEOUT", "10")]),
        )
        .unwrap();
        let s = cfg.scaling.unwrap();
        assert_eq!(s.prefix, "fromfile");
        assert_eq!(s.redis.display(), "redis://envhost:7003/4");
        assert_eq!(s.node_timeout.as_secs(), 11, "the flag wins");
        assert_eq!(s.buffer_bytes, 4 << 20, "from the file");
        let off = Config::load(&flags, &dir, &env(&[("REVERB_SCALING_ENABLED", "false")])).unwrap();
        assert!(
            off.scaling.is_none(),
            "the environment turns the file's scaling off"
        );
        std::fs::write(&file, "[scaling]\nenable = true\n").unwrap();
        let e = Config::load(&flags, &dir, &HashMap::new()).unwrap_err();
        assert!(e.to_string().contains("enable"), "{e}");
    }
}
