//! Test harness: the real `ringcast` binary on a free port (`server.rs`, shared with the load
//! generator's smoke tests), started with the test app, and a small blocking WebSocket and HTTP
//! client over plain sockets.
#![allow(dead_code)]

pub mod prometheus;
pub mod redis_server;
mod server;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

// Not every test binary that includes this module starts servers on ports of its own.
#[allow(unused_imports)]
pub use server::{Server, free_port};

use ringcast_protocol::api::signature::sign_query;
use ringcast_protocol::ws::decoder::{Decoder, DecoderConfig, InPlace, MessageRef};
use ringcast_protocol::ws::encode;
use ringcast_protocol::ws::frame::Opcode;

pub const APP_ID: &str = "1001";
pub const APP_KEY: &str = "test-key";
pub const APP_SECRET: &str = "test-secret";

impl Server {
    /// Starts the server with the test app and `env` on top (and `args` after `start`).
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Server {
        Self::start_with(args, env, true)
    }

    /// Starts the server with the test app, keeping its stderr lines in `stderr`.
    pub fn start_capturing(args: &[&str], env: &[(&str, &str)]) -> Server {
        Self::start_full(args, env, true, true)
    }

    /// Starts the server; `with_app` false leaves the app unconfigured.
    pub fn start_with(args: &[&str], env: &[(&str, &str)], with_app: bool) -> Server {
        Self::start_full(args, env, with_app, false)
    }

    /// Starts the server (with the test app in its environment or not), keeping its stderr
    /// lines in `stderr` when `capture_stderr`.
    pub fn start_full(
        args: &[&str],
        env: &[(&str, &str)],
        with_app: bool,
        capture_stderr: bool,
    ) -> Server {
        let app = [
            ("REVERB_APP_ID", APP_ID),
            ("REVERB_APP_KEY", APP_KEY),
            ("REVERB_APP_SECRET", APP_SECRET),
        ];
        let app: &[_] = if with_app { &app } else { &[] };
        let bin = Path::new(env!("CARGO_BIN_EXE_ringcast"));
        Server::spawn_with(bin, args, &[app, env].concat(), capture_stderr)
    }

    /// Resident memory of the server process in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap()
    }

    pub fn ws(&self, path: &str) -> Ws {
        Ws::connect(self.port, path)
    }

    /// A connected Pusher client of the test app (after `connection_established`).
    pub fn client(&self) -> (Ws, String) {
        let mut ws = self.ws(&format!(
            "/app/{APP_KEY}?protocol=7&client=js&version=8.6.0&flash=false"
        ));
        let ev = ws.recv_event();
        assert_eq!(ev["event"], "pusher:connection_established", "{ev}");
        let data: serde_json::Value = serde_json::from_str(ev["data"].as_str().unwrap()).unwrap();
        (ws, data["socket_id"].as_str().unwrap().to_string())
    }
}

/// A received WebSocket message.
#[derive(Debug)]
pub enum Frame {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>, String),
}

impl From<MessageRef<'_>> for Frame {
    fn from(m: MessageRef<'_>) -> Frame {
        match m {
            MessageRef::Text(t) => Frame::Text(String::from_utf8(t.to_vec()).expect("UTF-8")),
            MessageRef::Binary(b) => Frame::Binary(b.to_vec()),
            MessageRef::Ping(p) => Frame::Ping(p.to_vec()),
            MessageRef::Pong(p) => Frame::Pong(p.to_vec()),
            MessageRef::Close(None) => Frame::Close(None, String::new()),
            MessageRef::Close(Some(c)) => Frame::Close(Some(c.code.0), c.reason.to_owned()),
        }
    }
}

/// The protocol crate's decoder as a client uses it: server frames must not be masked
/// (anything RFC 6455 forbids fails the test), and any size the server may send is accepted.
fn client_decoder() -> Decoder {
    Decoder::new(DecoderConfig {
        max_frame_size: 1 << 24,
        max_message_size: 1 << 24,
        require_mask: false,
    })
}

/// A blocking WebSocket client.
pub struct Ws {
    pub stream: TcpStream,
    buf: Vec<u8>,
    decoder: Decoder,
}

impl Ws {
    pub fn connect(port: u16, path: &str) -> Ws {
        let (ws, status, _) = Self::try_connect(port, path, &[]);
        assert_eq!(status, 101, "upgrade refused");
        ws
    }

    /// Sends an upgrade with extra headers; returns the client, the status and the head.
    pub fn try_connect(port: u16, path: &str, headers: &[(&str, &str)]) -> (Ws, u16, String) {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut req = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        stream.write_all(req.as_bytes()).unwrap();
        let mut ws = Ws {
            stream,
            buf: Vec::new(),
            decoder: client_decoder(),
        };
        let head = ws.read_head();
        let status = head[9..12].parse().unwrap();
        (ws, status, head)
    }

    /// Sends the upgrade request for `path` on a connected stream and reads the 101.
    pub fn from_upgrade(mut stream: TcpStream, port: u16, path: &str) -> Ws {
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(req.as_bytes()).unwrap();
        Ws::from_stream(stream)
    }

    /// A client on a stream whose upgrade request was already written.
    pub fn from_stream(stream: TcpStream) -> Ws {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut ws = Ws {
            stream,
            buf: Vec::new(),
            decoder: client_decoder(),
        };
        let head = ws.read_head();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        ws
    }

    fn read_head(&mut self) -> String {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8(self.buf[..end + 4].to_vec()).unwrap();
                self.buf.drain(..end + 4);
                return head;
            }
            self.fill();
        }
    }

    fn fill(&mut self) -> usize {
        self.read_some().expect("read")
    }

    /// One read from the socket into the buffer (at most 64 KiB): the number of bytes, 0 at
    /// the end of the stream.
    pub fn read_some(&mut self) -> std::io::Result<usize> {
        let mut tmp = [0u8; 65536];
        let n = self.stream.read(&mut tmp)?;
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(n)
    }

    /// One read of at most `n` bytes into the buffer: a client that reads, but slowly.
    pub fn read_at_most(&mut self, n: usize) -> std::io::Result<usize> {
        let mut tmp = vec![0u8; n];
        let got = self.stream.read(&mut tmp)?;
        self.buf.extend_from_slice(&tmp[..got]);
        Ok(got)
    }

    /// The next message already received, if the buffer holds the whole of it.
    pub fn buffered(&mut self) -> Option<Frame> {
        let InPlace { consumed, message } = self
            .decoder
            .decode_in_place(&mut self.buf)
            .unwrap_or_else(|e| panic!("the server broke RFC 6455: {e}"));
        let frame = message.map(Frame::from);
        self.buf.drain(..consumed);
        frame
    }

    /// Bytes received and not yet taken as messages.
    pub fn buffered_len(&self) -> usize {
        self.buf.len()
    }

    /// Sends a masked frame.
    pub fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        let bytes = masked_frame(fin, opcode, payload);
        self.stream.write_all(&bytes).unwrap();
    }

    pub fn send_text(&mut self, text: &str) {
        self.send_frame(true, 1, text.as_bytes());
    }

    pub fn send_json(&mut self, v: serde_json::Value) {
        self.send_text(&v.to_string());
    }

    /// Reads one frame; `None` at end of stream.
    pub fn try_recv(&mut self) -> Option<Frame> {
        loop {
            if let Some(frame) = self.buffered() {
                return Some(frame);
            }
            if self.fill() == 0 {
                return None;
            }
        }
    }

    /// Reads one frame, or `None` when the read timeout passes first. The end of the stream or
    /// any other read error is a failure, not a timeout.
    pub fn try_recv_timeout(&mut self) -> Option<Frame> {
        loop {
            if let Some(frame) = self.buffered() {
                return Some(frame);
            }
            match self.read_some() {
                Ok(0) => panic!("connection ended while waiting for a frame"),
                Ok(_) => {}
                Err(e) if is_timeout(&e) => return None,
                Err(e) => panic!("read failed while waiting for a frame: {e}"),
            }
        }
    }

    pub fn recv(&mut self) -> Frame {
        self.try_recv().expect("connection ended")
    }

    /// Reads frames until a text frame and parses it as JSON.
    pub fn recv_event(&mut self) -> serde_json::Value {
        loop {
            match self.recv() {
                Frame::Text(t) => return serde_json::from_str(&t).unwrap(),
                Frame::Ping(p) => self.send_frame(true, 0xA, &p),
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Reads until a close frame (skipping others) and returns its code.
    pub fn recv_close(&mut self) -> Option<u16> {
        loop {
            match self.try_recv() {
                Some(Frame::Close(code, _)) => return code,
                Some(_) => continue,
                None => panic!("connection ended without a close frame"),
            }
        }
    }

    pub fn subscribe(&mut self, channel: &str) {
        self.send_json(
            serde_json::json!({"event":"pusher:subscribe","data":{"auth":"","channel":channel}}),
        );
        let ev = self.recv_event();
        assert_eq!(
            ev["event"], "pusher_internal:subscription_succeeded",
            "{ev}"
        );
        assert_eq!(ev["channel"], channel);
    }

    /// Asserts that nothing more has arrived and nothing arrives within `wait`, the connection
    /// staying open: bytes already read but not yet taken as frames (a duplicate that came in
    /// the same read as the frame before it) fail it, as do the end of the stream and any read
    /// error other than the timeout.
    pub fn expect_silence(&mut self, wait: Duration) {
        assert!(
            self.buf.is_empty(),
            "unexpected bytes already received: {:?}",
            self.buffered_frames()
        );
        self.stream.set_read_timeout(Some(wait)).unwrap();
        let mut tmp = [0u8; 1024];
        match self.stream.read(&mut tmp) {
            Ok(0) => panic!("connection closed while expecting silence"),
            Ok(n) => panic!("unexpected bytes: {:?}", String::from_utf8_lossy(&tmp[..n])),
            Err(e) if is_timeout(&e) => {}
            Err(e) => panic!("read failed while expecting silence: {e}"),
        }
        self.stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
    }

    /// The messages in the read buffer, and any incomplete rest, for a failure message.
    fn buffered_frames(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(frame) = self.buffered() {
            out.push(format!("{frame:?}"));
        }
        if !self.buf.is_empty() {
            out.push(format!("{} bytes of an incomplete frame", self.buf.len()));
        }
        out
    }
}

/// Whether a read error is the socket's read timeout passing (`WouldBlock` on Linux,
/// `TimedOut` on some other systems), as opposed to a reset or another failure.
fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// A client's masked frame with the protocol crate's encoder; `opcode` is the wire value of a
/// defined opcode (a reserved one is written by overwriting the first byte).
pub fn masked_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let opcode = Opcode::from_u8(opcode).expect("a defined opcode");
    let mut out = Vec::new();
    encode::write_masked(&mut out, fin, opcode, payload, [0x12, 0x34, 0x56, 0x78]);
    out
}

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// A keep-alive HTTP/1.1 client connection.
pub struct Http {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Http {
    pub fn connect(port: u16) -> Http {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Http {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn request(&mut self, method: &str, target: &str, body: &[u8]) -> Response {
        self.try_request(method, target, body)
            .unwrap_or_else(|e| panic!("{method} {target}: {e}"))
    }

    /// Sends a request and reads its response; an I/O error, or the end of the stream before a
    /// whole response (`UnexpectedEof`), is returned rather than a panic.
    pub fn try_request(
        &mut self,
        method: &str,
        target: &str,
        body: &[u8],
    ) -> std::io::Result<Response> {
        let head = format!(
            "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let mut req = head.into_bytes();
        req.extend_from_slice(body);
        self.stream.write_all(&req)?;
        self.read_response()
    }

    pub fn raw(&mut self, bytes: &[u8]) -> Response {
        self.stream.write_all(bytes).unwrap();
        self.read_response().expect("read response")
    }

    fn read_response(&mut self) -> std::io::Result<Response> {
        let mut tmp = [0u8; 65536];
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8(self.buf[..end + 4].to_vec()).unwrap();
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                if self.buf.len() >= end + 4 + len {
                    let body =
                        String::from_utf8(self.buf[end + 4..end + 4 + len].to_vec()).unwrap();
                    self.buf.drain(..end + 4 + len);
                    let status = head[9..12].parse().unwrap();
                    return Ok(Response { status, head, body });
                }
            }
            let n = self.stream.read(&mut tmp)?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "connection closed before a full response",
                ));
            }
            self.buf.extend_from_slice(&tmp[..n]);
        }
    }

    /// A signed API request, as the Pusher SDKs send it.
    pub fn signed(
        &mut self,
        method: &str,
        path: &str,
        params: &[(&str, &str)],
        body: &str,
    ) -> Response {
        self.try_signed(method, path, params, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// [`signed`](Self::signed), returning an I/O error instead of panicking.
    pub fn try_signed(
        &mut self,
        method: &str,
        path: &str,
        params: &[(&str, &str)],
        body: &str,
    ) -> std::io::Result<Response> {
        let query = signed_query(method, path, params, body, APP_KEY, APP_SECRET, now());
        self.try_request(method, &format!("{path}?{query}"), body.as_bytes())
    }

    /// Triggers `event` with `data` on `channels` (the SDKs' `trigger`).
    pub fn trigger(
        &mut self,
        channels: &[&str],
        event: &str,
        data: &str,
        socket_id: Option<&str>,
    ) -> Response {
        self.try_trigger(channels, event, data, socket_id)
            .unwrap_or_else(|e| panic!("trigger {event}: {e}"))
    }

    /// [`trigger`](Self::trigger), returning an I/O error instead of panicking.
    pub fn try_trigger(
        &mut self,
        channels: &[&str],
        event: &str,
        data: &str,
        socket_id: Option<&str>,
    ) -> std::io::Result<Response> {
        let mut body = serde_json::json!({"name": event, "data": data});
        if channels.len() == 1 {
            body["channel"] = channels[0].into();
        } else {
            body["channels"] = channels.into();
        }
        if let Some(s) = socket_id {
            body["socket_id"] = s.into();
        }
        let path = format!("/apps/{APP_ID}/events");
        self.try_signed("POST", &path, &[], &body.to_string())
    }
}

/// The server socket's send queue (server `port` to the client's `client_port`) and the
/// client socket's receive queue, in bytes, from `/proc/net/tcp`.
pub fn kernel_queues(port: u16, client_port: u16) -> (u64, u64) {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let local = |p: u16| format!("0100007F:{p:04X}");
    let (mut tx, mut rx) = (0, 0);
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (t, r) = f[4].split_once(':').unwrap();
        if f[1] == local(port) && f[2] == local(client_port) {
            tx = u64::from_str_radix(t, 16).unwrap();
        } else if f[1] == local(client_port) && f[2] == local(port) {
            rx = u64::from_str_radix(r, 16).unwrap();
        }
    }
    (tx, rx)
}

/// A Pusher client whose socket has a 4 KiB receive buffer, so that what the server sends it
/// fills the kernel quickly once it stops reading.
pub fn small_window_client(port: u16) -> (Ws, String) {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    sock.connect(&addr.into()).unwrap();
    let mut stream: std::net::TcpStream = sock.into();
    let path = format!("/app/{APP_KEY}?protocol=7&client=js&version=8.6.0&flash=false");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut ws = Ws::from_stream(stream);
    let ev = ws.recv_event();
    assert_eq!(ev["event"], "pusher:connection_established", "{ev}");
    let data: serde_json::Value = serde_json::from_str(ev["data"].as_str().unwrap()).unwrap();
    (ws, data["socket_id"].as_str().unwrap().to_string())
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The query string of a signed API request.
pub fn signed_query(
    method: &str,
    path: &str,
    params: &[(&str, &str)],
    body: &str,
    key: &str,
    secret: &str,
    timestamp: u64,
) -> String {
    let ts = timestamp.to_string();
    let md5 = format!("{:x}", md5_hex(body.as_bytes()));
    let mut all: Vec<(&str, &str)> = vec![
        ("auth_key", key),
        ("auth_timestamp", &ts),
        ("auth_version", "1.0"),
    ];
    if !body.is_empty() {
        all.push(("body_md5", &md5));
    }
    all.extend_from_slice(params);
    sign_query(method, path, &all, secret)
}

struct Md5Hex([u8; 16]);
impl std::fmt::LowerHex for Md5Hex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}
fn md5_hex(data: &[u8]) -> Md5Hex {
    use md5::Digest;
    Md5Hex(md5::Md5::digest(data).into())
}
