//! Every size and count limit ringcast enforces, in one place.
//!
//! A server at the edge of the internet must bound everything a peer can make it hold: bytes of
//! a request head, bytes of a message, channels per connection, queued outbound bytes. Each field
//! documents its default and why that default was chosen; the engine maps its configuration
//! (including Reverb's `REVERB_*` names) onto this struct, and every check in this crate reads
//! its limit from here rather than from a constant of its own.

/// Limits applied by the protocol parsers and the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of an HTTP request line plus headers. Default 8192: browsers send well under 2 KiB
    /// for an upgrade, and the Pusher SDKs' API requests are smaller still.
    pub max_request_head: usize,
    /// Number of request headers. Default 64, far above what any client sends.
    pub max_headers: usize,
    /// Bytes of an HTTP API request body. Default 256 KiB: a batch of ten events of
    /// `max_event_data` each, JSON-escaped, fits with room to spare.
    pub max_request_body: usize,
    /// Bytes of one event's `data` string in the HTTP API. Default 10 KiB, hosted Pusher's limit
    /// (larger data answers 413).
    pub max_event_data: usize,
    /// Bytes of one WebSocket message from a client. Default 10,000, Reverb's
    /// `max_message_size`, which `REVERB_APP_MAX_MESSAGE_SIZE` sets.
    pub max_message_size: usize,
    /// Bytes of one WebSocket frame payload from a client. Default: the message limit, since a
    /// frame larger than a whole message can never be accepted.
    pub max_frame_size: usize,
    /// Channels named by one HTTP API event. Default 100, as hosted Pusher and the SDKs.
    pub max_channels_per_event: usize,
    /// Events in one `batch_events` request. Default 10, as hosted Pusher.
    pub max_batch_events: usize,
    /// Characters of a channel name, prefix included. Default 164, hosted Pusher's limit.
    pub max_channel_name_len: usize,
    /// Characters of an event name. Default 200, what the Pusher SDKs allow.
    pub max_event_name_len: usize,
    /// Channels one connection may be subscribed to at once. Default 1000: pages subscribe to
    /// a handful; the bound keeps a hostile client from growing the registry without limit.
    pub max_channels_per_connection: usize,
    /// Distinct users in one presence channel. Default 100, hosted Pusher's limit.
    pub max_presence_members: usize,
    /// Bytes of a presence member's `user_info` JSON. Default 1024, hosted Pusher's 1 KB.
    pub max_user_info_bytes: usize,
    /// Characters of a user id. Default 128, hosted Pusher's limit.
    pub max_user_id_len: usize,
    /// Ids in a signed-in user's watchlist. Default 100, hosted Pusher's limit (the rest are
    /// dropped and the client told with 4302).
    pub max_watchlist: usize,
    /// Client events one connection may send per second. Default 10, hosted Pusher's limit
    /// (4301 beyond).
    pub client_events_per_second: u32,
    /// Seconds an HTTP API `auth_timestamp` may differ from the server clock. Default 600, as
    /// hosted Pusher.
    pub auth_timestamp_skew_secs: u64,
    /// Bytes queued for one connection that the socket has not yet accepted. Default 1 MiB:
    /// about a hundred maximum-size events. A consumer that stays above it is closed with 4100
    /// so that one slow reader cannot grow the server's memory.
    pub max_outbound_bytes: usize,
    /// Milliseconds a new connection has to send a complete request head. Default 10,000.
    pub handshake_timeout_ms: u64,
    /// Bytes queued in one worker's inbox from the other workers (publishes, presence and
    /// subscription messages). Default 64 MiB: several seconds of a worker's delivery rate at
    /// 1 KiB events, so a busy moment never refuses anything, while a publisher that is faster
    /// than the workers for longer is told so (the HTTP API answers 503) instead of growing
    /// the server's memory.
    pub max_mesh_bytes: usize,
    /// Bytes the kernel may hold in one connection's send buffer (`SO_SNDBUF`, as `ss -tm`
    /// shows it). Default 64 KiB: hundreds of broadcast frames, so a subscriber that reads
    /// keeps up as before, while one that stops reading holds at most this much of the host's
    /// kernel memory beside its out-queue (`max_outbound_bytes`) before it is closed with 4100,
    /// instead of the megabytes Linux's autotuning would give it.
    pub send_buffer_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_head: 8192,
            max_headers: 64,
            max_request_body: 256 * 1024,
            max_event_data: 10 * 1024,
            max_message_size: 10_000,
            max_frame_size: 10_000,
            max_channels_per_event: 100,
            max_batch_events: 10,
            max_channel_name_len: 164,
            max_event_name_len: 200,
            max_channels_per_connection: 1000,
            max_presence_members: 100,
            max_user_info_bytes: 1024,
            max_user_id_len: 128,
            max_watchlist: 100,
            client_events_per_second: 10,
            auth_timestamp_skew_secs: 600,
            max_outbound_bytes: 1024 * 1024,
            handshake_timeout_ms: 10_000,
            max_mesh_bytes: 64 * 1024 * 1024,
            send_buffer_bytes: 64 * 1024,
        }
    }
}
