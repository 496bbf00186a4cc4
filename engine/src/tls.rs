//! TLS on ringcast's own port, with rustls: for those who run it without nginx in front.
//!
//! With a certificate and a key configured (`--tls-cert`/`--tls-key`, `RINGCAST_TLS_CERT`/
//! `RINGCAST_TLS_KEY`, `tls_cert`/`tls_key`), every connection on the port starts with a TLS
//! handshake, and what follows is what a plain connection carries: WebSocket upgrades
//! (`wss://`), the Pusher HTTP API (`https://`), `/up` and the dashboard. The handshake offers
//! ALPN `http/1.1` only, so a browser never tries HTTP/2 (WebSocket upgrades are HTTP/1.1).
//! The bytes move through [`crate::transport`], which keeps the engine's own non-blocking
//! reads and writes.
//!
//! rustls with its `ring` provider: no OpenSSL, no C toolchain beyond what `ring` builds, and
//! the provider the Redis link already uses for `rediss://`.
//!
//! The certificate is read at start (a file that does not load stops the start with one line
//! that names it) and again on every `SIGHUP` ([`Tls::reload`]): the server config resolves
//! its certificate through [`Certs`], which holds the current one, so handshakes after a
//! reload present the new certificate and open connections are not touched (their keys were
//! agreed at their own handshake). A reload whose files do not load keeps the running
//! certificate and logs why, in one line.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, UnbufferedServerConnection};
use rustls::sign::CertifiedKey;

/// The protocol the handshake agrees (ALPN): HTTP/1.1, the one WebSocket upgrades run on.
pub const ALPN: &[u8] = b"http/1.1";

/// Where the certificate chain and its key are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM: the server's certificate first, then any intermediates.
    pub cert: PathBuf,
    /// PEM: the private key (PKCS#8, PKCS#1 RSA or SEC1 EC).
    pub key: PathBuf,
}

/// Why a certificate and key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the TLS {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no PEM certificate in the TLS certificate file {0}")]
    NoCertificate(PathBuf),
    #[error("the TLS certificate file {path} is not valid PEM: {reason}")]
    BadCertificate { path: PathBuf, reason: String },
    #[error("no PEM private key in the TLS key file {0}")]
    NoKey(PathBuf),
    #[error("the TLS key in {path} cannot be used: {reason}")]
    BadKey { path: PathBuf, reason: String },
    #[error("the TLS key {key} does not belong to the certificate {cert}")]
    Mismatch { cert: PathBuf, key: PathBuf },
}

/// The current certificate, which every handshake asks for.
#[derive(Debug)]
pub struct Certs(RwLock<Arc<CertifiedKey>>);

impl Certs {
    fn current(&self) -> Arc<CertifiedKey> {
        match self.0.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set(&self, key: Arc<CertifiedKey>) {
        match self.0.write() {
            Ok(mut c) => *c = key,
            Err(poisoned) => *poisoned.into_inner() = key,
        }
    }
}

impl ResolvesServerCert for Certs {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The TLS side of the server: its config for new connections, and the certificate to swap.
#[derive(Debug)]
pub struct Tls {
    config: Arc<ServerConfig>,
    certs: Arc<Certs>,
}

impl Tls {
    /// Loads `files` and builds the server config.
    pub fn new(files: &TlsFiles) -> Result<Tls, TlsError> {
        let key = Arc::new(load_files(files)?);
        let certs = Arc::new(Certs(RwLock::new(key)));
        Ok(Tls {
            config: server_config(certs.clone()),
            certs,
        })
    }

    /// A new server connection, for a connection just accepted.
    pub fn accept(&self) -> std::io::Result<UnbufferedServerConnection> {
        UnbufferedServerConnection::new(self.config.clone()).map_err(std::io::Error::other)
    }

    /// Loads `files` again; later handshakes present what they hold. On an error the running
    /// certificate stays.
    pub fn reload(&self, files: &TlsFiles) -> Result<(), TlsError> {
        let key = load_files(files)?;
        self.certs.set(Arc::new(key));
        Ok(())
    }
}

/// The server config: the `ring` provider, TLS 1.2 and 1.3, no client certificates, ALPN
/// `http/1.1`, the certificate from `resolver`.
fn server_config(resolver: Arc<dyn ResolvesServerCert>) -> Arc<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default protocol versions")
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    cfg.alpn_protocols = vec![ALPN.to_vec()];
    Arc::new(cfg)
}

/// A server config that always presents `key` (for tests of the layers below).
pub fn server_config_for(key: Arc<CertifiedKey>) -> Arc<ServerConfig> {
    server_config(Arc::new(Certs(RwLock::new(key))))
}

/// Reads and checks the certificate chain and key of `files`.
pub fn load_files(files: &TlsFiles) -> Result<CertifiedKey, TlsError> {
    let read = |what, path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            what,
            path: path.to_path_buf(),
            source,
        })
    };
    let cert = read("certificate", &files.cert)?;
    let key = read("key", &files.key)?;
    certified(&cert, &key, &files.cert, &files.key)
}

/// The certificate chain and key from PEM text (for tests; errors name no file).
pub fn load_pem(cert: &[u8], key: &[u8]) -> Result<CertifiedKey, TlsError> {
    certified(cert, key, Path::new("(PEM)"), Path::new("(PEM)"))
}

fn certified(
    cert: &[u8],
    key: &[u8],
    cert_path: &Path,
    key_path: &Path,
) -> Result<CertifiedKey, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::BadCertificate {
            path: cert_path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(cert_path.to_path_buf()));
    }
    let der = PrivateKeyDer::from_pem_slice(key).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey(key_path.to_path_buf()),
        e => TlsError::BadKey {
            path: key_path.to_path_buf(),
            reason: e.to_string(),
        },
    })?;
    let signing =
        rustls::crypto::ring::sign::any_supported_type(&der).map_err(|e| TlsError::BadKey {
            path: key_path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|_| TlsError::Mismatch {
        cert: cert_path.to_path_buf(),
        key: key_path.to_path_buf(),
    })?;
    Ok(certified)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A self-signed certificate for `localhost` and its key, as PEM.
    pub fn self_signed() -> (String, String) {
        let c = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        (c.cert.pem(), c.signing_key.serialize_pem())
    }

    #[test]
    fn a_certificate_and_its_key_load_and_bad_ones_say_what_is_wrong() {
        let (cert, key) = self_signed();
        assert!(load_pem(cert.as_bytes(), key.as_bytes()).is_ok());
        let (_, other_key) = self_signed();
        let e = load_pem(cert.as_bytes(), other_key.as_bytes()).unwrap_err();
        assert!(matches!(e, TlsError::Mismatch { .. }), "{e}");
        let e = load_pem(b"not pem", key.as_bytes()).unwrap_err();
        assert!(matches!(e, TlsError::NoCertificate(_)), "{e}");
        let e = load_pem(cert.as_bytes(), cert.as_bytes()).unwrap_err();
        assert!(matches!(e, TlsError::NoKey(_)), "{e}");
        let files = TlsFiles {
            cert: "/nonexistent/cert.pem".into(),
            key: "/nonexistent/key.pem".into(),
        };
        let e = load_files(&files).unwrap_err().to_string();
        assert!(
            e.starts_with("cannot read the TLS certificate /nonexistent/cert.pem: "),
            "{e}"
        );
        assert_eq!(e.lines().count(), 1);
    }
}
