//! The server under test: where its WebSocket and HTTP API listen, and the app credentials.
//!
//! `ws://` and `http://`, or `wss://` and `https://` for a server that terminates TLS itself
//! (the clients then trust `--ca-file`, see `crate::stream`). On loopback TLS mostly measures
//! the cipher, which is what a TLS figure is for.

use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};

use crate::error::BenchError;

/// A parsed `scheme://host:port/path` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Resolved address.
    pub addr: SocketAddr,
    /// `host:port` as the `Host` header carries it.
    pub host_header: String,
    /// Path prefix without a trailing slash ("" for none).
    pub path: String,
    /// `wss://` or `https://`: the connection runs TLS.
    pub tls: bool,
    /// The host as the TLS handshake names it (the URL's host, without the port).
    pub server_name: String,
}

impl Endpoint {
    /// Parses `url`, whose scheme must be `scheme` or its TLS form (`scheme` and `s`: `wss`,
    /// `https`, whose default port is 443).
    pub fn parse(url: &str, scheme: &str, default_port: u16) -> Result<Self, BenchError> {
        let tls_scheme = format!("{scheme}s://");
        let (tls, rest) = match url.strip_prefix(tls_scheme.as_str()) {
            Some(rest) => (true, Some(rest)),
            None => (
                false,
                url.strip_prefix(scheme).and_then(|r| r.strip_prefix("://")),
            ),
        };
        let rest = rest.ok_or_else(|| {
            BenchError::Setup(format!("{url}: expected a {scheme}:// or {scheme}s:// URL"))
        })?;
        let default_port = if tls { 443 } else { default_port };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let host_port = if authority.contains(':') {
            authority.to_string()
        } else {
            format!("{authority}:{default_port}")
        };
        let addr = host_port
            .to_socket_addrs()
            .map_err(|e| BenchError::Setup(format!("{url}: {e}")))?
            .find(SocketAddr::is_ipv4)
            .ok_or_else(|| BenchError::Setup(format!("{url}: no IPv4 address")))?;
        let server_name = match authority.rsplit_once(':') {
            Some((host, port)) if port.parse::<u16>().is_ok() => host,
            _ => authority,
        };
        Ok(Self {
            addr,
            host_header: authority.to_string(),
            path: path.trim_end_matches('/').to_string(),
            tls,
            server_name: server_name.to_string(),
        })
    }

    /// Whether the server is on loopback, where client sockets may bind 127.0.0.N.
    pub fn is_loopback(&self) -> bool {
        self.addr.ip().is_loopback()
    }
}

/// Everything needed to talk to one Pusher app on one server.
#[derive(Clone, Debug)]
pub struct Target {
    /// WebSocket endpoint (`ws://host:port[/prefix]`).
    pub ws: Endpoint,
    /// HTTP API endpoint (`http://host:port[/prefix]`).
    pub api: Endpoint,
    /// App id.
    pub app_id: String,
    /// App key.
    pub key: String,
    /// App secret.
    pub secret: String,
    /// Source addresses that client sockets bind, round robin; empty: let the kernel choose.
    pub sources: Vec<Ipv4Addr>,
    /// The TLS client, when `--ca-file` was given.
    pub tls: Option<crate::stream::TlsClient>,
}

impl Target {
    /// The request target of the WebSocket upgrade, as pusher-js builds it. A URL that already
    /// names `/app/...` is used as given.
    pub fn ws_request_path(&self) -> String {
        if self.ws.path.contains("/app/") {
            return self.ws.path.clone();
        }
        format!(
            "{}/app/{}?protocol=7&client=ringcast-bench&version={}&flash=false",
            self.ws.path,
            self.key,
            env!("CARGO_PKG_VERSION")
        )
    }

    /// The path of the trigger-events endpoint.
    pub fn events_path(&self) -> String {
        format!("{}/apps/{}/events", self.api.path, self.app_id)
    }

    /// The source address for the `n`th client socket.
    pub fn source_for(&self, n: usize) -> Option<Ipv4Addr> {
        if self.sources.is_empty() {
            None
        } else {
            Some(self.sources[n % self.sources.len()])
        }
    }
}

/// Ephemeral ports one source address gives towards one destination (32768-60999), less a
/// margin for other sockets.
pub const PORTS_PER_SOURCE: usize = 25_000;

/// Source addresses for `sockets` concurrent client sockets to `ws`: `requested` if given
/// (0 = automatic), else as many 127.0.0.N (from .2) as the port range needs when more than
/// one address's ports are needed on a loopback target.
pub fn source_addresses(
    ws: &Endpoint,
    sockets: usize,
    requested: usize,
) -> Result<Vec<Ipv4Addr>, BenchError> {
    let count = if requested > 0 {
        requested
    } else if sockets > PORTS_PER_SOURCE && ws.is_loopback() {
        sockets.div_ceil(PORTS_PER_SOURCE)
    } else {
        return Ok(Vec::new());
    };
    if !ws.is_loopback() {
        return Err(BenchError::Setup(
            "--source-addrs binds 127.0.0.N and needs a loopback target".into(),
        ));
    }
    if count > 250 {
        return Err(BenchError::Setup("at most 250 source addresses".into()));
    }
    Ok((0..count)
        .map(|i| Ipv4Addr::new(127, 0, 0, 2 + i as u8))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_and_without_port_and_prefix() {
        let e = Endpoint::parse("ws://127.0.0.1:8080", "ws", 80).unwrap();
        assert_eq!(e.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(e.host_header, "127.0.0.1:8080");
        assert_eq!(e.path, "");
        let e = Endpoint::parse("http://127.0.0.1/reverb/", "http", 80).unwrap();
        assert_eq!(e.addr.port(), 80);
        assert_eq!(e.path, "/reverb");
        assert!(Endpoint::parse("http://x", "ws", 80).is_err());
        let e = Endpoint::parse("wss://localhost:8443/p", "ws", 80).unwrap();
        assert!(e.tls);
        assert_eq!((e.server_name.as_str(), e.addr.port()), ("localhost", 8443));
        let e = Endpoint::parse("https://localhost", "http", 80).unwrap();
        assert!(e.tls && e.addr.port() == 443);
    }

    #[test]
    fn paths_follow_pusher_js() {
        let ws = Endpoint::parse("ws://127.0.0.1:1", "ws", 80).unwrap();
        let t = Target {
            api: Endpoint::parse("http://127.0.0.1:1/p", "http", 80).unwrap(),
            ws,
            app_id: "1".into(),
            key: "k".into(),
            secret: "s".into(),
            sources: vec![],
            tls: None,
        };
        assert!(t.ws_request_path().starts_with("/app/k?protocol=7&"));
        assert_eq!(t.events_path(), "/p/apps/1/events");
        assert_eq!(t.source_for(3), None);
    }

    #[test]
    fn source_addresses_grow_with_the_socket_count() {
        let ws = Endpoint::parse("ws://127.0.0.1:1", "ws", 80).unwrap();
        assert!(source_addresses(&ws, 19_000, 0).unwrap().is_empty());
        let two = source_addresses(&ws, 30_000, 0).unwrap();
        assert_eq!(
            two,
            vec![Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 3)]
        );
        assert_eq!(source_addresses(&ws, 10, 3).unwrap().len(), 3);
    }
}
