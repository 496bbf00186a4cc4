//! The Pusher Channels protocol (version 7), as a server speaks it.
//!
//! Clients send JSON text messages ([`message`]) and receive JSON events ([`event`]) whose
//! `data` is a JSON document encoded a second time as a string. Channel names carry their
//! type in a prefix ([`channel`]); private, presence and user sign-in requests are proved by
//! HMAC signatures made by the application ([`auth`]) over connection ids the server hands out
//! ([`socket_id`]) and over member data it then reads ([`member`]). Failures are reported with
//! Pusher's numeric codes, whose ranges tell a client whether to reconnect ([`error`]).
//! [`json`] holds the escaping and re-serialization every encoder shares.
//!
//! Nothing here keeps state between messages: subscriptions, members and rate limits live in
//! the engine, which calls these functions with the bytes it received and the limits it was
//! configured with.

pub mod auth;
pub mod channel;
pub mod error;
pub mod event;
pub mod json;
pub mod member;
pub mod message;
pub mod socket_id;

pub use auth::AuthError;
pub use channel::{ChannelError, ChannelKind, ChannelName};
pub use error::{PusherCode, Reconnect};
pub use event::ServerEvent;
pub use member::{MemberError, PresenceMember, UserData};
pub use message::{ClientMessage, MessageError, parse_client_message};
pub use socket_id::{SocketId, SocketIdError};
