//! The state core: the rules of channels, presence, cache channels, users and watchlists, as
//! plain data with no I/O.
//!
//! Two halves, each a state machine in the manner of a sans-IO protocol endpoint:
//!
//! - a [`Shard`] is the connection side of one worker: which of its connections exist, which
//!   channels each is subscribed to, who they signed in as, what joins wait for an owner;
//! - an [`Owner`] holds the facts that must have one place in the whole server (a channel's
//!   subscription count, presence members counted per user, a cache channel's last event,
//!   users' online status and their watchers), for the channels and apps it owns.
//!
//! Neither does I/O, holds a clock or reaches the other directly. Inputs go in through
//! methods (`connect`, `handle_text`, `handle_shard_msg`, `leave_all`, `remove` on a shard;
//! `handle` and `tick` on an owner), always with the current time where it matters; what
//! must happen next comes out as [`Effect`]s, taken with `poll_effect` until it returns
//! `None`. The worker (`crate::worker`) is the shell that feeds the inputs and carries out the
//! effects: it writes frames, closes sockets, and moves [`msg`] messages between shards and
//! owners over queues. A message to an owner on the same worker goes through a queue too, so
//! an input is never handled in the middle of another one, whoever owns the fact.
//!
//! The same cores run in one thread under the deterministic harness of the tests
//! (`engine/tests/state_harness.rs`), where the test decides when every message is delivered
//! and what time it is.
//!
//! ## Call order
//! 1. Feed one input.
//! 2. Take every effect with `poll_effect` and carry it out. Carrying out an effect may feed
//!    new inputs (a frame that overflows a connection's queue closes it: `leave_all`); their
//!    effects join the queue and are taken in the same loop.
//! 3. Messages addressed to shards or owners are delivered later, each as a new input.

pub mod delays;
pub mod msg;
pub mod owner;
pub mod registry;
pub mod shard;

pub use owner::Owner;
pub use shard::Shard;

use bytes::Bytes;
use ringcast_protocol::pusher::error::PusherCode;
use ringcast_protocol::pusher::event::ServerEvent;
use ringcast_protocol::ws::close::CloseCode;
use ringcast_protocol::ws::encode;
use ringcast_protocol::ws::frame::Opcode;

use crate::ids::{AppIdx, ConnKey, ShardId};
use crate::webhook::Hook;
use msg::{OwnerMsg, ShardMsg};

/// What the shell must do next.
#[derive(Debug)]
pub enum Effect {
    /// Send a frame to one connection of this shard.
    Send { conn: ConnKey, frame: Bytes },
    /// Start closing one connection of this shard. The shell sends the close frame and then
    /// tells the shard with [`Shard::leave_all`].
    Close { conn: ConnKey, how: Closing },
    /// A message for the owner of a fact; the shell finds the owner from
    /// [`OwnerMsg::address`].
    ToOwner(OwnerMsg),
    /// A message for one shard.
    ToShard(ShardId, ShardMsg),
    /// A message for every shard, this one included: a publish, a frame for a user's
    /// connections, a terminate.
    ToAll(ShardMsg),
    /// An event for the app's webhooks (`crate::webhook`): the shell hands it to the senders.
    Hook(AppIdx, Hook),
}

/// How a connection is to be closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Closing {
    /// The close code.
    pub code: u16,
    /// The close reason.
    pub reason: &'static str,
    /// Send a `pusher:error` with the same code first (pusher-js reads it during connection
    /// set-up; Reverb clients expect it).
    pub pusher_error: bool,
    /// Drop queued frames that have not started (only for a consumer that is too slow: its
    /// queue is what must be freed).
    pub drop_queue: bool,
}

impl Closing {
    /// A close with a Pusher code and its text, with or without a `pusher:error` before it.
    pub fn pusher(code: PusherCode, pusher_error: bool) -> Closing {
        Closing {
            code: code.code(),
            reason: code.message(),
            pusher_error,
            drop_queue: false,
        }
    }

    /// A close for a consumer whose outbound queue overflowed: 4100, and its queue dropped.
    pub fn slow_consumer() -> Closing {
        Closing {
            drop_queue: true,
            ..Closing::pusher(PusherCode::OverCapacity, false)
        }
    }

    /// The frames that end a connection: the `pusher:error` when asked for, then the close
    /// frame (an empty one for [`CloseCode::NO_STATUS`], the answer to a close that carried
    /// no code).
    pub fn frames(&self) -> Vec<Bytes> {
        let mut frames = Vec::with_capacity(2);
        if self.pusher_error {
            frames.push(
                ServerEvent::Error {
                    code: Some(self.code),
                    message: self.reason,
                }
                .to_frame(),
            );
        }
        frames.push(if self.code == CloseCode::NO_STATUS.0 {
            encode::frame(Opcode::Close, &[])
        } else {
            encode::close(self.code, self.reason)
        });
        frames
    }

    /// A close with a WebSocket code and its text.
    pub fn websocket(code: CloseCode) -> Closing {
        Closing {
            code: code.0,
            reason: code.reason(),
            pusher_error: false,
            drop_queue: false,
        }
    }
}
