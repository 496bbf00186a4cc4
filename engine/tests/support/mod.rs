//! Test harness: the real `ringcast` binary on a free port, and a small blocking WebSocket and
//! HTTP client over plain sockets.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ringcast_protocol::api::signature::sign_query;

pub const APP_ID: &str = "1001";
pub const APP_KEY: &str = "test-key";
pub const APP_SECRET: &str = "test-secret";

/// A running server, killed on drop.
pub struct Server {
    pub port: u16,
    pub child: Child,
    pub stdout: mpsc::Receiver<String>,
    /// Its stderr lines, when started with [`Server::start_capturing`] (otherwise stderr is
    /// the test's).
    pub stderr: Option<mpsc::Receiver<String>>,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

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
        let port = free_port();
        let port_s = port.to_string();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringcast"));
        cmd.arg("start")
            .args(["--host", "127.0.0.1", "--port", &port_s])
            .args(args)
            .current_dir(std::env::temp_dir())
            .env("RINGCAST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(if capture_stderr {
                Stdio::piped()
            } else {
                Stdio::inherit()
            });
        if with_app {
            cmd.env("REVERB_APP_ID", APP_ID)
                .env("REVERB_APP_KEY", APP_KEY)
                .env("REVERB_APP_SECRET", APP_SECRET);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn ringcast");
        let stderr = child.stderr.take().map(|err| {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            rx
        });
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.starts_with("ringcast listening on") => break,
                Ok(_) => continue,
                Err(_) => panic!("ringcast did not start"),
            }
        }
        Server {
            port,
            child,
            stdout: rx,
            stderr,
        }
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

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        // SAFETY: `kill` takes no pointers; the pid is our own child's, valid until waited.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        self.child.wait().unwrap()
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
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A received WebSocket frame.
#[derive(Debug)]
pub enum Frame {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>, String),
}

/// A blocking WebSocket client.
pub struct Ws {
    pub stream: TcpStream,
    buf: Vec<u8>,
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
        let mut tmp = [0u8; 65536];
        let n = self.stream.read(&mut tmp).expect("read");
        self.buf.extend_from_slice(&tmp[..n]);
        n
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
            if let Some((frame, used)) = parse_frame(&self.buf) {
                self.buf.drain(..used);
                return Some(frame);
            }
            if self.fill() == 0 {
                return None;
            }
        }
    }

    /// Reads one frame, or `None` when the read timeout passes first.
    pub fn try_recv_timeout(&mut self) -> Option<Frame> {
        loop {
            if let Some((frame, used)) = parse_frame(&self.buf) {
                self.buf.drain(..used);
                return Some(frame);
            }
            let mut tmp = [0u8; 65536];
            match self.stream.read(&mut tmp) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
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

    /// Asserts nothing arrives within `wait`.
    pub fn expect_silence(&mut self, wait: Duration) {
        self.stream.set_read_timeout(Some(wait)).unwrap();
        let mut tmp = [0u8; 1024];
        match self.stream.read(&mut tmp) {
            Ok(0) => panic!("connection closed"),
            Ok(n) => panic!("unexpected bytes: {:?}", String::from_utf8_lossy(&tmp[..n])),
            Err(_) => {}
        }
        self.stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
    }
}

pub fn masked_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![(if fin { 0x80 } else { 0 }) | opcode];
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= 65535 {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    let mask = [0x12, 0x34, 0x56, 0x78];
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

fn parse_frame(buf: &[u8]) -> Option<(Frame, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let opcode = buf[0] & 0x0f;
    let mut len = (buf[1] & 0x7f) as usize;
    let mut off = 2;
    if len == 126 {
        if buf.len() < 4 {
            return None;
        }
        len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
        off = 4;
    } else if len == 127 {
        if buf.len() < 10 {
            return None;
        }
        len = u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize;
        off = 10;
    }
    assert_eq!(buf[1] & 0x80, 0, "server frames are never masked");
    if buf.len() < off + len {
        return None;
    }
    let p = buf[off..off + len].to_vec();
    let frame = match opcode {
        1 => Frame::Text(String::from_utf8(p).expect("server text is UTF-8")),
        2 => Frame::Binary(p),
        8 => {
            let code = (p.len() >= 2).then(|| u16::from_be_bytes([p[0], p[1]]));
            let reason = String::from_utf8_lossy(p.get(2..).unwrap_or(&[])).into_owned();
            Frame::Close(code, reason)
        }
        9 => Frame::Ping(p),
        10 => Frame::Pong(p),
        other => panic!("unexpected opcode {other}"),
    };
    Some((frame, off + len))
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
        let head = format!(
            "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let mut req = head.into_bytes();
        req.extend_from_slice(body);
        self.stream.write_all(&req).unwrap();
        self.read_response()
    }

    pub fn raw(&mut self, bytes: &[u8]) -> Response {
        self.stream.write_all(bytes).unwrap();
        self.read_response()
    }

    fn read_response(&mut self) -> Response {
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
                    return Response { status, head, body };
                }
            }
            let n = self.stream.read(&mut tmp).expect("read response");
            assert!(n > 0, "connection closed before a full response");
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
        let query = signed_query(method, path, params, body, APP_KEY, APP_SECRET, now());
        self.request(method, &format!("{path}?{query}"), body.as_bytes())
    }

    /// Triggers `event` with `data` on `channels` (the SDKs' `trigger`).
    pub fn trigger(
        &mut self,
        channels: &[&str],
        event: &str,
        data: &str,
        socket_id: Option<&str>,
    ) -> Response {
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
        self.signed("POST", &path, &[], &body.to_string())
    }
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
