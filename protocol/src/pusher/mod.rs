//! Pusher Channels protocol.
