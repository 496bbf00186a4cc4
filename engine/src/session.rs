//! The life of one TCP connection, from accept to close.
//!
//! Every connection starts as HTTP/1.1. The head decides what it becomes: a WebSocket for an
//! app (`/app/{key}`), the conformance echo endpoint (`/echo`, only when enabled), a Pusher
//! HTTP API call (`/apps/{id}/...`, kept alive for the next call), or a health check (`/up`).
//!
//! Reading follows the engine's memory rule: a connection waits for *readiness* (an io_uring
//! `PollAdd`, or epoll), never with a buffer parked in the kernel, and then reads into its
//! worker's scratch buffer. Only bytes that do not yet form a whole frame are copied into a
//! buffer of the connection's own, which is released as soon as it empties.
//!
//! There is exactly one task per socket that reads (this one), so no read is ever cancelled
//! mid-flight; a connection that must end is told so by shutting down its socket, which wakes
//! the reader with end-of-stream.
//!
//! On a TLS port every read and write goes through the connection's [`Transport`]: the TLS
//! handshake happens within the first request's read (its answers are written as they are
//! queued), and the rest is the same as on a plain port.

use std::cell::RefCell;
use std::io::{self, IoSlice};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use monoio::net::{TcpListener, TcpStream};
use ringcast_protocol::api::route::strip_prefix;
use ringcast_protocol::http::{self, Request};
use ringcast_protocol::pusher::error::PusherCode;
use ringcast_protocol::pusher::event::ServerEvent;
use ringcast_protocol::ws::close::CloseCode;
use ringcast_protocol::ws::decoder::{Decoder, DecoderConfig};
use ringcast_protocol::ws::{encode, handshake};

use crate::ids::ConnKey;
use crate::state::Closing;
use crate::stats::ops::HandshakeFailure;
use crate::sys;
use crate::transport::Transport;
use crate::worker::Worker;

/// Seconds an HTTP API connection may sit idle between requests.
const KEEP_ALIVE_IDLE: Duration = Duration::from_secs(120);

/// Most bytes of a refused request's body that are read and discarded so that its client can
/// read the answer (see [`refuse`]): 8 MiB, 32 times the default `max_request_size`. A client
/// still sending more than that is reset; its upload costs more than the answer is worth.
const DRAIN_MAX_BODY: usize = 8 << 20;
/// Bytes discarded beyond the declared body: what a client may send after a request that was
/// refused at its head (a pipelined request, the frames after a refused upgrade).
const DRAIN_SLACK: usize = 64 << 10;
/// Longest a refused connection is drained, in total: nginx's `lingering_timeout`. On the
/// networks between an app and its broadcaster 8 MiB takes well under a second.
const DRAIN_TIME: Duration = Duration::from_secs(5);

/// Accepts connections until the worker shuts down.
pub async fn accept_loop(worker: Rc<RefCell<Worker>>, listener: TcpListener) {
    loop {
        let accepted = listener.accept().await;
        if worker.borrow().shutting_down {
            // Accepted just as the worker stopped: answered rather than dropped (a 4200, a 503
            // or a 503 health check), so that its client moves on at once.
            if let Ok((stream, _)) = accepted
                && let Some(io) = transport(&worker, &stream)
            {
                monoio::spawn(connection(worker.clone(), Rc::new(stream), io));
            }
            return;
        }
        match accepted {
            Ok((stream, _)) => {
                sys::set_nodelay(stream.as_raw_fd());
                let send_buffer = worker.borrow().shared.config.limits.send_buffer_bytes;
                sys::set_send_buffer(stream.as_raw_fd(), send_buffer);
                if let Some(io) = transport(&worker, &stream) {
                    monoio::spawn(connection(worker.clone(), Rc::new(stream), io));
                }
            }
            Err(e) => {
                // Out of descriptors or memory: the listener stays, the backlog waits.
                tracing::warn!(error = %e, "accept failed");
                monoio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// The transport of a connection just accepted: TLS when the server has a certificate.
fn transport(worker: &Rc<RefCell<Worker>>, stream: &TcpStream) -> Option<Transport> {
    let fd = stream.as_raw_fd();
    let tls = worker.borrow().shared.tls.clone();
    match tls {
        None => Some(Transport::plain(fd)),
        Some(tls) => match tls.accept() {
            Ok(conn) => Some(Transport::tls(fd, conn)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start a TLS connection");
                None
            }
        },
    }
}

/// What the request head asked for.
enum Target {
    Health,
    Dashboard(String),
    Api(String),
    Echo,
    App(String),
    PathNotFound,
    NotFound,
}

fn target(worker: &Worker, req: &Request) -> Target {
    let cfg = &worker.shared.config;
    let rel = strip_prefix(&req.path, &cfg.path_prefix);
    if req.path == "/up" || rel == Some("/up") {
        return Target::Health;
    }
    let upgrade = handshake::is_upgrade_request(req);
    match rel {
        Some(p) if cfg.dashboard && crate::dashboard::http::is_dashboard_path(p) => {
            Target::Dashboard(p.to_string())
        }
        Some(p) if p.starts_with("/apps/") => Target::Api(p.to_string()),
        Some("/echo") if cfg.echo => Target::Echo,
        Some(p) if p.starts_with("/app/") && p.len() > 5 && !p[5..].contains('/') => {
            Target::App(p[5..].to_string())
        }
        _ if upgrade => Target::PathNotFound,
        _ => Target::NotFound,
    }
}

/// Serves one accepted connection: its HTTP requests, then, once upgraded, its frames until
/// it closes.
///
/// The task is allocated when the connection is accepted and lives as long as it. Its own
/// state is only what reading frames needs; the HTTP side (request heads, API requests, the
/// upgrade), kilobytes while it runs, lives in a box that is freed before reading starts. So
/// a burst of handshakes leaves its transient allocations after the long-lived tasks in the
/// heap, not between them, and the freed space is reused by the next burst.
async fn connection(worker: Rc<RefCell<Worker>>, stream: Rc<TcpStream>, io: Transport) {
    let served = Box::pin(serve_http(worker.clone(), stream.clone(), io.clone())).await;
    if let Some(upgraded) = served {
        read_frames(worker, stream, io, upgraded).await;
    }
}

/// What an upgraded connection's reader starts with: its key, its message limit and the bytes
/// that followed the upgrade request.
type Upgraded = (ConnKey, usize, BytesMut);

/// Serves HTTP requests until the connection upgrades (returning what its reader needs) or
/// ends.
async fn serve_http(
    worker: Rc<RefCell<Worker>>,
    stream: Rc<TcpStream>,
    io: Transport,
) -> Option<Upgraded> {
    let link = Link {
        stream: &stream,
        io: &io,
    };
    let shared = worker.borrow().shared.clone();
    let handshake_timeout = Duration::from_millis(shared.config.limits.handshake_timeout_ms);
    let wt = shared.config.write_timeout;
    let mut buf = BytesMut::new();
    // The whole head of the first request must arrive within the handshake timeout (a client
    // trickling bytes does not extend it); later requests on a kept-alive API connection get
    // the idle allowance for theirs.
    let mut allowance = handshake_timeout;
    loop {
        let deadline = Instant::now() + allowance;
        let req = loop {
            match http::parse_request(&buf, &shared.config.limits) {
                Ok(Some(req)) => break req,
                Ok(None) => {}
                Err(e) => {
                    let unread = match e {
                        http::HttpError::BodyTooLarge { length, .. } => {
                            let length = usize::try_from(length).unwrap_or(usize::MAX);
                            length.saturating_sub(body_bytes_in(&buf))
                        }
                        _ => 0,
                    };
                    Box::pin(refuse(&worker, link, &e.response(), unread, wt)).await;
                    return None;
                }
            }
            match read_more(&worker, link, &mut buf, deadline).await {
                Ok(true) => {}
                Ok(false) if !buf.is_empty() => {
                    let resp = http::json_error(408, "Request timed out", false);
                    Box::pin(refuse(&worker, link, &resp, 0, wt)).await;
                    return None;
                }
                _ => return None,
            }
        };
        let _ = buf.split_to(req.head_len);
        let what = target(&worker.borrow(), &req);
        match what {
            Target::Health => {
                // A draining server answers 503, so that a load balancer takes it out first.
                let resp = if worker.borrow().shutting_down {
                    http::json_error(503, "Draining", false)
                } else {
                    http::json_ok(br#"{"health":"OK"}"#, req.keep_alive)
                };
                if write_all(link, &resp, wt).await.is_err()
                    || !req.keep_alive
                    || worker.borrow().shutting_down
                {
                    return None;
                }
            }
            Target::Dashboard(path) => {
                let resp = crate::dashboard::http::serve(&req, &path);
                let more = req.keep_alive && req.content_length == 0;
                if write_all(link, &resp, wt).await.is_err() || !more {
                    return None;
                }
            }
            Target::NotFound => {
                let resp = http::json_error(404, "Not found", false);
                let unread = req.content_length.saturating_sub(buf.len());
                Box::pin(refuse(&worker, link, &resp, unread, wt)).await;
                return None;
            }
            Target::Api(path) => {
                let deadline = Instant::now() + handshake_timeout;
                while buf.len() < req.content_length {
                    match read_more(&worker, link, &mut buf, deadline).await {
                        Ok(true) => {}
                        _ => return None,
                    }
                }
                let body = buf.split_to(req.content_length).to_vec();
                // A draining server's answers close the connection, so that the publisher's
                // next request goes to a server that is not stopping.
                let req = if worker.borrow().shutting_down {
                    Request {
                        keep_alive: false,
                        ..req
                    }
                } else {
                    req
                };
                // Boxed: the API's state is large and only exists while a request is served.
                let started = Instant::now();
                let resp = Box::pin(crate::api::serve(&worker, &req, &path, body)).await;
                let took = started.elapsed();
                (worker.borrow_mut().stats).api_request(&req.method, &path, &resp, took);
                if worker.borrow().debug_messages() {
                    let status = crate::stats::ops::status_of(&resp);
                    crate::logging::log_api(&req.method, &path, &req.query, status);
                }
                if write_all(link, &resp, wt).await.is_err() || !req.keep_alive {
                    return None;
                }
            }
            Target::Echo | Target::App(_) | Target::PathNotFound => {
                // Boxed, so that the many connections in a burst of handshakes each hold a
                // small future while they wait for their request head.
                return Box::pin(websocket(
                    worker,
                    stream.clone(),
                    io.clone(),
                    req,
                    what,
                    buf,
                ))
                .await;
            }
        }
        allowance = KEEP_ALIVE_IDLE;
    }
}

/// A connection before it is in the slab: its socket, for readiness, and its transport.
#[derive(Clone, Copy)]
struct Link<'a> {
    stream: &'a TcpStream,
    io: &'a Transport,
}

/// Waits until `deadline` for bytes and appends them to `buf`; `Ok(false)` on timeout or end
/// of stream. Through TLS, handshake records are read here too, and the answers rustls
/// queues are written before the next wait.
async fn read_more(
    worker: &Rc<RefCell<Worker>>,
    link: Link<'_>,
    buf: &mut BytesMut,
    deadline: Instant,
) -> io::Result<bool> {
    loop {
        let wait = deadline.saturating_duration_since(Instant::now());
        if wait.is_zero() {
            return Ok(false);
        }
        match monoio::time::timeout(wait, link.stream.readable(false)).await {
            Err(_) => return Ok(false),
            Ok(r) => r?,
        }
        let got = {
            let mut w = worker.borrow_mut();
            link.io.recv(&mut w.scratch, buf)
        };
        if link.io.wants_write() {
            finish_writes(link, deadline.saturating_duration_since(Instant::now())).await?;
        }
        match got {
            Ok(0) => return Ok(false),
            Ok(_) => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                if link.io.is_tls() && e.kind() == io::ErrorKind::InvalidData {
                    (worker.borrow_mut().stats).handshake_failed(HandshakeFailure::Tls);
                }
                return Err(e);
            }
        }
    }
}

/// Writes the TLS records that wait, waiting for room at most `timeout` each time.
async fn finish_writes(link: Link<'_>, timeout: Duration) -> io::Result<()> {
    while !link.io.flush()? {
        match monoio::time::timeout(timeout, link.stream.writable(false)).await {
            Ok(ready) => ready?,
            Err(_) => {
                sys::abort(link.io.fd);
                return Err(io::ErrorKind::TimedOut.into());
            }
        }
    }
    Ok(())
}

/// The bytes after the end of the request head in `buf` (none while the head is incomplete).
fn body_bytes_in(buf: &[u8]) -> usize {
    buf.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(0, |end| buf.len() - end - 4)
}

/// Writes `answer` to a request that is refused and ends the connection so that the client can
/// read the answer, as nginx's lingering close does.
///
/// A request refused at its head (413, 404, a bad upgrade) is answered while its client may
/// still be sending the body, and closing a socket with unread bytes makes the kernel send a
/// reset, which destroys the answer at the client before it reads it (or breaks its pipe while
/// it still writes). So after the answer the write side is shut down (the client sees the end
/// of the answer), and what the client still sends is read and thrown away, into the worker's
/// scratch buffer, until it closes its side, for at most the `unread` body bytes it declared
/// (capped at [`DRAIN_MAX_BODY`]) plus [`DRAIN_SLACK`], and for at most [`DRAIN_TIME`]. Then
/// the socket is closed, with nothing unread in the usual case.
async fn refuse(
    worker: &Rc<RefCell<Worker>>,
    link: Link<'_>,
    answer: &[u8],
    unread: usize,
    write_timeout: Duration,
) {
    if write_all(link, answer, write_timeout).await.is_err() {
        return;
    }
    // What the client still sends is thrown away undecrypted.
    let (stream, fd) = (link.stream, link.io.fd);
    link.io.shutdown_write();
    let mut budget = unread.min(DRAIN_MAX_BODY) + DRAIN_SLACK;
    let deadline = Instant::now() + DRAIN_TIME;
    while budget > 0 {
        let wait = deadline.saturating_duration_since(Instant::now());
        match monoio::time::timeout(wait, stream.readable(false)).await {
            Ok(Ok(())) => {}
            _ => return,
        }
        let mut w = worker.borrow_mut();
        match sys::recv(fd, &mut w.scratch) {
            Ok(0) => return,
            Ok(n) => budget = budget.saturating_sub(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// Writes all of `data`, waiting for writability when the socket is full. Used before a
/// connection is in the slab (HTTP responses, the upgrade).
///
/// Each wait for room lasts at most `timeout` (the `write_timeout_ms` setting). The wait
/// restarts whenever the client takes bytes, as nginx's `send_timeout`: a large answer still
/// reaches a slow reader, and a client that stops reading is given up on instead of holding
/// this task for ever. Giving up resets the connection ([`sys::abort`]), so that the kernel
/// frees the unsent bytes at once rather than retrying them for minutes; the error is
/// `TimedOut`.
async fn write_all(link: Link<'_>, mut data: &[u8], timeout: Duration) -> io::Result<()> {
    while !data.is_empty() {
        match link.io.sendv(&[IoSlice::new(data)]) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                match monoio::time::timeout(timeout, link.stream.writable(false)).await {
                    Ok(ready) => ready?,
                    Err(_) => {
                        sys::abort(link.io.fd);
                        return Err(io::ErrorKind::TimedOut.into());
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    finish_writes(link, timeout).await
}

/// Completes the upgrade: returns what the connection's reader needs, or `None` when the
/// upgrade was refused or failed.
async fn websocket(
    worker: Rc<RefCell<Worker>>,
    stream: Rc<TcpStream>,
    io: Transport,
    req: Request,
    what: Target,
    leftover: BytesMut,
) -> Option<Upgraded> {
    let wt = worker.borrow().shared.config.write_timeout;
    let link = Link {
        stream: &stream,
        io: &io,
    };
    let up = match handshake::validate_upgrade(&req) {
        Ok(up) => up,
        Err(e) => {
            (worker.borrow_mut().stats).handshake_failed(HandshakeFailure::BadRequest);
            let unread = req.content_length.saturating_sub(leftover.len());
            Box::pin(refuse(&worker, link, &e.response(), unread, wt)).await;
            return None;
        }
    };
    let mut out = handshake::response_101(&up);
    let dashboard = worker.borrow().shared.config.dashboard
        && crate::dashboard::same_origin(up.origin.as_deref(), req.header("host"));
    let admitted = {
        let mut w = worker.borrow_mut();
        admit(&mut w, &stream, &io, &up, what, dashboard)
    };
    // Nothing of the request is needed any more: an idle connection must not keep its headers.
    drop(up);
    drop(req);
    let (key, max_message) = match admitted {
        Ok((key, max, hello)) => {
            out.extend_from_slice(&hello);
            (key, max)
        }
        Err(refusal) => {
            (worker.borrow_mut().stats).handshake_failed(HandshakeFailure::of_refusal(refusal));
            out.extend_from_slice(
                &ServerEvent::Error {
                    code: Some(refusal.code()),
                    message: refusal.message(),
                }
                .to_frame(),
            );
            out.extend_from_slice(&encode::close(refusal.code(), refusal.message()));
            Box::pin(refuse(&worker, link, &out, 0, wt)).await;
            return None;
        }
    };
    let written = write_all(link, &out, wt).await;
    drop(out);
    if written.is_err() {
        (worker.borrow_mut().stats).handshake_failed(HandshakeFailure::WriteFailed);
        worker.borrow_mut().remove(key);
        return None;
    }
    Some((key, max_message, leftover))
}

/// Decides whether an upgrade may become a connection, and adds it: returns its key, its
/// message limit and the first frame to send (`connection_established`), or the Pusher code it
/// is refused with (sent as a `pusher:error` and as the close frame, with the code's text).
/// `own_page` is set when the dashboard is on and the upgrade comes from a page this server
/// served (same origin), which `allowed_origins` does not need to list.
fn admit(
    w: &mut Worker,
    stream: &Rc<TcpStream>,
    io: &Transport,
    up: &handshake::Upgrade,
    what: Target,
    own_page: bool,
) -> Result<(ConnKey, usize, bytes::Bytes), PusherCode> {
    // pusher-js reconnects at once on 4200, and by then another server (or this one,
    // restarted) takes the connection.
    if w.shutting_down {
        return Err(PusherCode::Reconnect);
    }
    let shared = w.shared.clone();
    let app_key = match what {
        Target::Echo => {
            let sid = w.new_socket_id();
            let key = w.insert(stream.clone(), io.clone(), None, sid);
            return Ok((
                key,
                shared.config.limits.max_message_size,
                bytes::Bytes::new(),
            ));
        }
        Target::App(k) => k,
        _ => return Err(PusherCode::PathNotFound),
    };
    let Some(app) = shared.apps.by_key(&app_key) else {
        return Err(PusherCode::AppNotFound);
    };
    if !app.cfg.enabled {
        return Err(PusherCode::AppDisabled);
    }
    if !own_page && !app.origin_allowed(up.origin.as_deref()) {
        return Err(PusherCode::Unauthorized);
    }
    let protocol = query_param(&up.query, "protocol");
    match protocol.as_deref() {
        None | Some("") => return Err(PusherCode::NoProtocol),
        Some(v) => match v.parse::<u32>() {
            Ok(5..=7) => {}
            Ok(_) => return Err(PusherCode::UnsupportedProtocol),
            Err(_) => return Err(PusherCode::InvalidVersion),
        },
    }
    if !app.try_connect() {
        return Err(PusherCode::OverQuota);
    }
    let sid = w.new_socket_id();
    let key = w.insert(stream.clone(), io.clone(), Some(app.idx), sid);
    let hello = ServerEvent::ConnectionEstablished {
        socket_id: &sid,
        activity_timeout: app.cfg.activity_timeout,
    }
    .to_frame();
    Ok((key, app.cfg.max_message_size, hello))
}

/// The raw value of `name` in a query string (the Pusher URL's values are plain digits and
/// words, so no decoding is needed to read `protocol`).
fn query_param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Reads and decodes frames until the connection ends.
async fn read_frames(
    worker: Rc<RefCell<Worker>>,
    stream: Rc<TcpStream>,
    io: Transport,
    (key, max_message, mut pending): Upgraded,
) {
    read_until_closed(&worker, &stream, &io, key, max_message, &mut pending).await;
    worker.borrow_mut().remove(key);
}

async fn read_until_closed(
    worker: &Rc<RefCell<Worker>>,
    stream: &TcpStream,
    io: &Transport,
    key: ConnKey,
    max_message: usize,
    pending: &mut BytesMut,
) {
    let mut decoder = Decoder::new(DecoderConfig {
        max_frame_size: max_message,
        max_message_size: max_message,
        require_mask: true,
    });
    let fd = io.fd;
    let mut closing = false;
    loop {
        // A peer worker that is behind on its inbox: take no more client frames until it has
        // caught up, so that the clients' TCP windows absorb the excess (see `crate::mesh`).
        if !closing && worker.borrow().congested() {
            // Boxed: the wait's timer lives only while a peer is congested, not in every idle
            // connection's task.
            Box::pin(wait_uncongested(worker)).await;
        }
        while !closing && !pending.is_empty() {
            match decoder.decode(pending) {
                Ok(Some(msg)) => {
                    let mut w = worker.borrow_mut();
                    w.on_message(key, msg);
                    closing = w.get(key).is_none_or(|c| c.is_closing());
                }
                Ok(None) => break,
                Err(e) => {
                    let code = CloseCode(e.close_code());
                    worker.borrow_mut().close(key, Closing::websocket(code));
                    closing = true;
                }
            }
        }
        if closing || pending.is_empty() {
            *pending = BytesMut::new();
        }
        if stream.readable(false).await.is_err() {
            return;
        }
        let mut w = worker.borrow_mut();
        let w = &mut *w;
        // A closing connection's bytes are thrown away, undecrypted.
        let got = if closing {
            sys::recv(fd, &mut w.scratch)
        } else {
            io.recv(&mut w.scratch, pending)
        };
        if io.wants_write() {
            w.flush_tls(key);
        }
        match got {
            Ok(0) => return,
            Ok(_) => {
                if !closing {
                    w.touch(key);
                } else if w.get(key).is_none() {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
        if !closing {
            closing = w.get(key).is_none_or(|c| c.is_closing());
        }
    }
}

/// Waits until no peer worker's inbox is over its bound.
async fn wait_uncongested(worker: &Rc<RefCell<Worker>>) {
    while worker.borrow().congested() {
        monoio::time::sleep(Duration::from_millis(1)).await;
    }
}

impl Worker {
    /// Acts on one complete WebSocket message from `key`.
    pub fn on_message(&mut self, key: ConnKey, msg: ringcast_protocol::ws::decoder::Message) {
        use ringcast_protocol::ws::decoder::Message;
        use ringcast_protocol::ws::frame::Opcode;
        let Some((app, _)) = self.shard.identity(key) else {
            return;
        };
        match msg {
            Message::Ping(payload) => self.send(key, encode::frame(Opcode::Pong, &payload)),
            Message::Pong(_) => {}
            Message::Close(frame) => {
                // RFC 6455 section 5.5.1: "the endpoint typically echos the status code it
                // received"; a close without a code is answered without one.
                let code = frame.as_ref().map_or(CloseCode::NO_STATUS, |f| f.code);
                self.close(
                    key,
                    Closing {
                        reason: "",
                        ..Closing::websocket(code)
                    },
                );
            }
            Message::Text(text) => match app {
                None => self.send(key, encode::text(&text)),
                Some(_) => self.on_text(key, text),
            },
            Message::Binary(data) => match app {
                None => self.send(key, encode::frame(Opcode::Binary, &data)),
                Some(_) => self.close(key, Closing::websocket(CloseCode::UNSUPPORTED_DATA)),
            },
        }
    }
}
