//! # ringcast engine
//!
//! The server: a Pusher Channels protocol WebSocket server that Laravel Echo, pusher-js and the
//! Pusher server SDKs use unchanged, built as one pinned thread per core, each with its own
//! io_uring event loop.
//!
//! ## Invariants
//!
//! 1. **One thread per core, nothing mutable shared.** Each worker is an OS thread pinned with
//!    `core_affinity`, running its own monoio runtime (io_uring through `FusionDriver`, or epoll
//!    where io_uring is unavailable or `MONOIO_FORCE_LEGACY_DRIVER=1`; the start-up line names
//!    the driver). A worker's state is an `Rc<RefCell<Worker>>` that only its thread touches.
//!    The one path between workers is the [`mesh`] of crossbeam-channel queues, bounded in
//!    bytes. The one exception is each app's atomic connection counter ([`app`]), which
//!    enforces `max_connections` at the instant a connection opens. Statistics are no
//!    exception: they are each worker's own integers, read by asking the worker over the mesh
//!    ([`stats`]).
//! 2. **Own listener, own slab, own registry.** Each worker binds its own `SO_REUSEPORT`
//!    listener, keeps its connections in a [`slab::Slab`] whose keys carry a generation
//!    ([`ids::ConnKey`]) so a reused slot is never mistaken for its former occupant, and keeps
//!    its own registry of channel subscriptions (`state::registry`).
//! 3. **Encode once.** A server frame is unmasked and therefore identical for every recipient:
//!    a broadcast is encoded into one `bytes::Bytes`, and that buffer (by reference count) is
//!    what every subscriber on every worker is sent.
//! 4. **Bounded everything.** Request heads, bodies, frames and messages are bounded by
//!    `ringcast_protocol::Limits`; each connection's outbound queue is bounded in bytes, and a
//!    consumer that exceeds it is closed with 4100 and its queue freed; a closing connection
//!    whose peer takes nothing for a whole grace period is reset, so the kernel frees its
//!    buffers too.
//! 5. **Small idle connections.** An idle connection holds no read buffer: its reader waits for
//!    readiness and reads into the worker's scratch buffer ([`session`]). Liveness is one
//!    sweep per worker per second, not a timer per connection.
//! 6. **Rules as a sans-IO core.** The rules of channels, presence, cache channels, users and
//!    the owner facts are plain state machines ([`state`]): inputs in, effects out, time as an
//!    argument, no I/O. A [`worker`] is the I/O shell around them. A message to an owner goes
//!    through a queue even when the owner is the same worker, so an input is never handled in
//!    the middle of another, and the same cores run under a deterministic test harness.
//! 7. **One owner per cluster-wide fact** ([`owner`] has the table). Connections per app: the
//!    app's atomic counter. A channel's subscription count, presence members and cached event:
//!    the channel's owner worker, chosen by hashing the channel name. Users' online status and
//!    watchers: the app's user owner. Local subscribers and signed-in connections: each worker
//!    for its own; a publish is resolved by every worker against its own registry. In a cluster
//!    of nodes ([`cluster`]) the owner of every one of these facts is Redis: each decision is
//!    one Lua script, and what follows from it reaches each node through its one ordered inbox
//!    stream, this node's own publishes included. What a node contributes is recorded under
//!    its id and lives with its lease: a survivor reaps a dead node in one script, and a node
//!    that Redis forgot puts its share back from what its connections hold. Workers reach
//!    Redis only through the cluster link's bounded queue and its threads, never directly
//!    and never waiting for it. Webhooks ([`webhook`]) are decided by the same steps that
//!    decide these facts (in a cluster, the scripts, the reaper's included), and leave a
//!    worker or a cluster thread only through a bounded queue per webhook (`try_send`,
//!    overflow counted) to a sender thread of its own: nothing ever waits for an app's
//!    receiver.
//! 8. **Time and randomness enter the protocol crate as arguments**, so its tests are
//!    deterministic.
//!
//! ## Operating it
//! [`metrics`] serves Prometheus metrics from a thread of its own: a scrape asks every worker
//! for its counters over the mesh ([`stats`]) and adds them up, so the fan-out path writes
//! nothing shared for them. [`logging`] writes text or JSON lines and, with `--debug`, every
//! message with its signatures redacted. [`restart`] starts a new process on the same port
//! and drains this one once the new one serves; [`reload`] applies a changed configuration
//! to the workers between two of their inputs. [`tls`] terminates TLS on the server's own
//! port with rustls, through [`transport`], which keeps the engine's direct reads and writes.
//!
//! ## Data flow of a broadcast
//! `POST /apps/{id}/events` → [`api`] verifies the signature and parses the body → the frame is
//! encoded once → the mesh carries the same `Bytes` to every other worker → each worker writes
//! it to its subscribers with non-blocking `sendmsg` ([`sys`]), queueing only what a full socket
//! did not take, and a writer task flushes several queued frames per system call. In a cluster
//! the frame goes to Redis once instead, and every interested node's inbox thread (this node's
//! too) hands it to its workers in the order Redis ran the publishes.

#![deny(unsafe_code)]

pub mod api;
pub mod app;
pub mod cluster;
pub mod config;
pub mod conn;
pub mod dashboard;
pub mod ids;
pub mod logging;
pub mod mesh;
pub mod metrics;
pub mod owner;
pub mod reload;
pub mod restart;
pub mod server;
pub mod session;
pub mod state;
pub mod stats;
pub mod sys;
pub mod tls;
pub mod transport;
pub mod webhook;
pub mod worker;
