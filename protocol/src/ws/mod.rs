//! RFC 6455 WebSocket: the opening handshake, frames, and their decoding and encoding.
//!
//! - [`handshake`]: validating an upgrade request and answering it (section 4.2).
//! - [`frame`]: opcodes and frame headers (section 5.2).
//! - [`mask`]: (un)masking client payloads (section 5.3).
//! - [`utf8`]: incremental UTF-8 validation of text (section 8.1).
//! - [`close`]: close codes and reasons (sections 5.5.1 and 7.4).
//! - [`decoder`]: the incremental decoder of the peer's frames into messages, owned or borrowed
//!   in place; a server's decoder or a client's ([`decoder::DecoderConfig::require_mask`]).
//! - [`encode`]: the server's frames, built once as [`bytes::Bytes`], and a client's masked
//!   frames.
//!
//! ringcast negotiates neither extensions nor subprotocols: Pusher messages are small JSON
//! texts, and compression would cost memory per connection (a deflate context) and rule out
//! encoding a broadcast once for every recipient.
pub mod close;
pub mod decoder;
pub mod encode;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod utf8;
