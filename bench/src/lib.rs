//! # ringcast-bench
//!
//! The load generator that measures ringcast, and any other Pusher-protocol server, with one
//! tool: it needs only a WebSocket URL, an HTTP API URL and the app's id, key and secret.
//!
//! ## Why it is built this way
//! - **Same runtime as the server.** One pinned thread per core, each with its own monoio
//!   (io_uring) event loop, one task per client socket. The load generator and the server share
//!   the machine's cores, so a generator that spent more CPU per message than the server would
//!   measure itself; every per-message step here is a scan of bytes, not a JSON parse.
//! - **Small clients.** A client socket costs a task, a read buffer sized per scenario and a
//!   sequence tracker, so one process can hold about 19,000 sockets under a 20,000 open-file
//!   limit. Client sockets can be bound to 127.0.0.2, 127.0.0.3, ... with
//!   `IP_BIND_ADDRESS_NO_PORT` to get past one source address's ephemeral ports.
//! - **Self-checking payloads.** Every published payload carries its channel, a per-channel
//!   sequence number and a send timestamp (`CLOCK_MONOTONIC`, shared by every process on the
//!   machine), so each subscriber counts lost, duplicated and out-of-order messages and the
//!   end-to-end latency of each delivery.
//! - **A physical reference.** The `ceiling` scenario replaces the server with a process that
//!   writes one pre-encoded frame per broadcast to the same number of loopback sockets with plain
//!   `send()`, read by the same client code; fan-out results are a fraction of it.
//! - **Bounded.** Every scenario stops by itself after its duration or count.
//!
//! ## Layout
//! - [`sys`]: the few system calls the standard library does not wrap.
//! - [`ws`], [`client`], [`http`]: the client side of RFC 6455 (with the protocol crate's
//!   framing and handshake key), Pusher and the API.
//! - [`payload`], [`track`]: the self-checking payload and the per-subscriber checker.
//! - [`stats`], [`procfs`], [`runner`]: counters, histograms, `/proc` samples, threads.
//! - [`report`], [`svg`]: the table, the JSON document and the chart.
//! - [`scenario`]: one file per scenario.
#![deny(unsafe_code)]

pub mod cli;
pub mod client;
pub mod error;
pub mod http;
pub mod payload;
pub mod procfs;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod stats;
pub mod stream;
pub mod svg;
pub mod sys;
pub mod target;
pub mod track;
pub mod ws;

pub use error::BenchError;
