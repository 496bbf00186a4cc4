//! RFC 6455 WebSocket: the opening handshake, frames, and their decoding and encoding.
pub mod encode;
pub mod frame;
