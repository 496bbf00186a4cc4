//! The Pusher HTTP API.
