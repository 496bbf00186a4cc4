//! The load generator's error type.
//!
//! A failing client is counted, not fatal: the scenario reports how many connections failed and
//! why, so the error names the step that failed.

use std::io;

use ringcast_protocol::ws::decoder::ProtocolError;

/// Why a client connection or request failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A socket operation failed.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    /// The server's reply to the WebSocket upgrade was not a valid `101`.
    #[error("handshake: {0}")]
    Handshake(String),
    /// The server broke RFC 6455 framing (as a client sees it).
    #[error("frame: {0}")]
    Frame(#[from] ProtocolError),
    /// The server's Pusher messages were not what the protocol requires.
    #[error("pusher: {0}")]
    Pusher(String),
    /// An HTTP API response could not be parsed.
    #[error("http: {0}")]
    Http(String),
    /// The server closed the connection (WebSocket close code if one was sent).
    #[error("closed by server (code {0:?})")]
    Closed(Option<u16>),
    /// A deadline passed.
    #[error("timed out: {0}")]
    Timeout(&'static str),
    /// Command-line values or the environment do not allow the scenario.
    #[error("setup: {0}")]
    Setup(String),
}
