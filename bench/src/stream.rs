//! A client socket, plain or through TLS: what the WebSocket and HTTP API clients read and
//! write, so that every scenario runs against `ws://`/`http://` and `wss://`/`https://` alike.
//!
//! TLS is rustls driven over monoio's streams by monoio-rustls, with the `ring` provider (the
//! server's). The client trusts exactly the certificate authority given with `--ca-file`:
//! a load test names the server it measures, and a certificate problem must fail the run, not
//! be skipped.

use std::path::Path;
use std::sync::Arc;

use monoio::BufResult;
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;
use monoio_rustls::{ClientTlsStream, TlsConnector};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

use crate::error::BenchError;
use crate::target::Endpoint;
use crate::ws::{SocketOpts, tcp_connect};

/// The TLS side of the clients: the connector that trusts `--ca-file`.
#[derive(Clone)]
pub struct TlsClient {
    connector: TlsConnector,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsClient")
    }
}

impl TlsClient {
    /// A client that trusts the PEM certificates in `ca_file`, offering ALPN `http/1.1`.
    pub fn new(ca_file: &Path) -> Result<TlsClient, BenchError> {
        let setup = |what: String| BenchError::Setup(format!("{}: {what}", ca_file.display()));
        let pem = std::fs::read(ca_file).map_err(|e| setup(e.to_string()))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| setup(e.to_string()))?;
            roots.add(cert).map_err(|e| setup(e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(setup("no PEM certificate".into()));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| setup(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsClient {
            connector: TlsConnector::from(Arc::new(cfg)),
        })
    }
}

/// An open client socket.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<ClientTlsStream<TcpStream>>),
}

impl From<TcpStream> for Stream {
    fn from(s: TcpStream) -> Stream {
        Stream::Plain(s)
    }
}

/// Opens a connection to `endpoint`: TCP with `opts`, then the TLS handshake for a `wss://` or
/// `https://` endpoint. A TLS connection always has `TCP_NODELAY`: its handshake's last
/// flight and the request after it are small writes in a row, which Nagle's algorithm would
/// hold for the peer's delayed ACK (40 ms), as browsers and Node do not.
pub async fn connect(
    endpoint: &Endpoint,
    tls: Option<&TlsClient>,
    mut opts: SocketOpts,
) -> Result<Stream, BenchError> {
    opts.nodelay |= endpoint.tls;
    let tcp = tcp_connect(endpoint.addr, opts).await?;
    if !endpoint.tls {
        return Ok(Stream::Plain(tcp));
    }
    let tls = tls.ok_or_else(|| {
        BenchError::Setup(
            "wss:// and https:// need --ca-file (the PEM of the authority that signed the server's certificate)".into(),
        )
    })?;
    let name = ServerName::try_from(endpoint.server_name.clone())
        .map_err(|e| BenchError::Setup(format!("{}: {e}", endpoint.server_name)))?;
    let stream = tls
        .connector
        .connect(name, tcp)
        .await
        .map_err(|e| BenchError::Handshake(format!("TLS: {}", std::io::Error::from(e))))?;
    Ok(Stream::Tls(Box::new(stream)))
}

impl AsyncReadRent for Stream {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            Stream::Plain(s) => s.read(buf).await,
            Stream::Tls(s) => s.read(buf).await,
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            Stream::Plain(s) => s.readv(buf).await,
            Stream::Tls(s) => s.readv(buf).await,
        }
    }
}

impl AsyncWriteRent for Stream {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            Stream::Plain(s) => s.write(buf).await,
            Stream::Tls(s) => s.write(buf).await,
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            Stream::Plain(s) => s.writev(buf).await,
            Stream::Tls(s) => s.writev(buf).await,
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush().await,
            Stream::Tls(s) => s.flush().await,
        }
    }

    async fn shutdown(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.shutdown().await,
            Stream::Tls(s) => s.shutdown().await,
        }
    }
}
