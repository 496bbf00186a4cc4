//! # ringcast-protocol
//!
//! Everything ringcast knows about bytes on the wire, with no I/O: the HTTP/1.1 request head
//! that opens every connection, the RFC 6455 handshake and framing, the Pusher Channels
//! messages, channel rules and signatures, and the authentication and bodies of the Pusher
//! HTTP API.
//!
//! The crate is *sans-IO*: it never touches a socket, a clock, a thread or a random number
//! generator. Callers feed it bytes and get back typed values or typed errors; the current time
//! and any randomness arrive as arguments. That keeps every rule testable with plain unit tests
//! and replayable fuzz inputs, and lets the engine (or the load generator, or a fuzzer) drive
//! the same code.
//!
//! ## Layout
//! - [`limits`]: every size and count limit, with its default and the reason for it.
//! - [`http`]: HTTP/1.1 request heads and responses (shared by the upgrade and the HTTP API).
//! - [`ws`]: the RFC 6455 handshake, the incremental frame decoder and the server frame encoder.
//! - [`pusher`]: client messages, server events, channel names, socket ids, signatures, codes.
//! - [`api`]: routes, request signatures and bodies of the Pusher HTTP API.
//!
//! ## Errors
//! Each error type carries its wire consequence: a WebSocket close code, a Pusher error code
//! or an HTTP status, decided in one `match` next to the type.
#![forbid(unsafe_code)]

pub mod api;
pub mod http;
pub mod limits;
pub mod pusher;
pub mod ws;

pub use limits::Limits;
