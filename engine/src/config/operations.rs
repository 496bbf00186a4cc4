//! The operator's settings: where metrics are served, how logs look, the message log, the
//! TLS certificate.
//!
//! They follow the same layers as every other setting (file, `.env`, environment, flags), and
//! each layer's value is checked as it is read, so an error names the key, variable or flag
//! the bad value came from.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use super::ConfigError;
use crate::tls::TlsFiles;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Settings for running ringcast in production.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Operations {
    /// Where `/metrics` (Prometheus text format) is served, on a listener of its own; `None`
    /// (the default) serves no metrics. A separate address, so that metrics never appear on
    /// the public WebSocket port by accident: the usual value is a loopback or private
    /// address, `127.0.0.1:9601`.
    pub metrics_addr: Option<SocketAddr>,
    /// The log format: `text` (default) or `json` (`RINGCAST_LOG_FORMAT`, `log_format`).
    pub log_format: LogFormat,
    /// Log every WebSocket message in and out and every HTTP API request, signatures
    /// redacted (`--debug`, `RINGCAST_DEBUG`, `debug`); off by default, since a busy server
    /// sends millions of messages a minute.
    pub debug: bool,
    /// The PEM certificate chain for TLS on the server's port (`--tls-cert`,
    /// `RINGCAST_TLS_CERT`, `tls_cert`); with [`Operations::tls_key`], every connection is
    /// TLS (`crate::tls`). `None` (the default): plain TCP.
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of [`Operations::tls_cert`] (`--tls-key`, `RINGCAST_TLS_KEY`,
    /// `tls_key`).
    pub tls_key: Option<PathBuf>,
}

/// The keys of the config file that [`Operations`] reads.
#[derive(Debug, Default, Clone)]
pub(super) struct FileOperations {
    pub metrics_addr: Option<String>,
    pub log_format: Option<String>,
    pub debug: Option<bool>,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
}

/// The command-line flags that [`Operations`] reads.
#[derive(Debug, Default, Clone)]
pub struct FlagOperations {
    /// `--metrics-addr`.
    pub metrics_addr: Option<String>,
    /// `--debug`.
    pub debug: bool,
    /// `--tls-cert`.
    pub tls_cert: Option<String>,
    /// `--tls-key`.
    pub tls_key: Option<String>,
}

impl Operations {
    pub(super) fn apply_file(&mut self, file: &FileOperations) -> Result<(), ConfigError> {
        if let Some(v) = &file.metrics_addr {
            self.metrics_addr = metrics_addr(v, "metrics_addr")?;
        }
        if let Some(v) = &file.log_format {
            self.log_format = log_format(v, "log_format")?;
        }
        if let Some(d) = file.debug {
            self.debug = d;
        }
        self.set_tls(file.tls_cert.as_deref(), file.tls_key.as_deref());
        Ok(())
    }

    pub(super) fn apply_env(&mut self, vars: &HashMap<String, String>) -> Result<(), ConfigError> {
        if let Some(v) = vars.get("RINGCAST_METRICS_ADDR") {
            self.metrics_addr = metrics_addr(v, "RINGCAST_METRICS_ADDR")?;
        }
        if let Some(v) = vars.get("RINGCAST_LOG_FORMAT") {
            self.log_format = log_format(v, "RINGCAST_LOG_FORMAT")?;
        }
        if let Some(v) = vars.get("RINGCAST_DEBUG") {
            self.debug = super::parse_switch(v, "RINGCAST_DEBUG")?;
        }
        self.set_tls(
            vars.get("RINGCAST_TLS_CERT").map(String::as_str),
            vars.get("RINGCAST_TLS_KEY").map(String::as_str),
        );
        Ok(())
    }

    pub(super) fn apply_flags(&mut self, flags: &FlagOperations) -> Result<(), ConfigError> {
        if let Some(v) = &flags.metrics_addr {
            self.metrics_addr = metrics_addr(v, "--metrics-addr")?;
        }
        self.debug |= flags.debug;
        self.set_tls(flags.tls_cert.as_deref(), flags.tls_key.as_deref());
        Ok(())
    }

    /// Takes the paths a layer gives; an empty one unsets what a lower layer set.
    fn set_tls(&mut self, cert: Option<&str>, key: Option<&str>) {
        let path = |v: &str| (!v.trim().is_empty()).then(|| PathBuf::from(v.trim()));
        if let Some(c) = cert {
            self.tls_cert = path(c);
        }
        if let Some(k) = key {
            self.tls_key = path(k);
        }
    }

    /// The certificate and key files, when TLS is on.
    pub fn tls(&self) -> Option<TlsFiles> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        }
    }

    /// Whether `other` differs in anything a reload cannot apply: all but the TLS files'
    /// paths (a reload reads the certificate again from the new ones; turning TLS on or off
    /// needs a restart).
    pub fn needs_restart_for(&self, other: &Operations) -> bool {
        let paths_only = |o: &Operations| Operations {
            tls_cert: o.tls_cert.is_some().then(PathBuf::new),
            tls_key: o.tls_key.is_some().then(PathBuf::new),
            ..o.clone()
        };
        paths_only(self) != paths_only(other)
    }

    /// Checks the settings against the server's own address.
    pub(super) fn validate(&self, host: &str, port: u16) -> Result<(), ConfigError> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => return Err(ConfigError::TlsHalf("key")),
            (None, Some(_)) => return Err(ConfigError::TlsHalf("certificate")),
            _ => {}
        }
        if let Some(m) = self.metrics_addr {
            let overlaps = host.parse::<std::net::IpAddr>().map_or(true, |h| {
                h.is_unspecified() || m.ip().is_unspecified() || h == m.ip()
            });
            if port != 0 && m.port() == port && overlaps {
                return Err(ConfigError::BadValue {
                    name: "metrics_addr".into(),
                    expected: "another port than the WebSocket port (metrics are never served on the public port)",
                    value: m.to_string(),
                });
            }
        }
        Ok(())
    }
}

/// An `IP:port` to serve metrics on, or `None` for an empty value (which turns metrics off).
fn metrics_addr(value: &str, name: &str) -> Result<Option<SocketAddr>, ConfigError> {
    let v = value.trim();
    if v.is_empty() {
        return Ok(None);
    }
    v.parse().map(Some).map_err(|_| ConfigError::BadValue {
        name: name.into(),
        expected: "an IP address and port such as 127.0.0.1:9601",
        value: value.into(),
    })
}

/// `text` or `json`.
fn log_format(value: &str, name: &str) -> Result<LogFormat, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "text" | "" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(ConfigError::BadValue {
            name: name.into(),
            expected: "text or json",
            value: value.into(),
        }),
    }
}
