//! A WebSocket client connection over monoio: connect, upgrade, read messages, write masked
//! frames.
//!
//! One task owns each connection and alternates between reading and writing, so no read is ever
//! raced against a write on the same socket. The read buffer starts at the size the scenario
//! asks for (small for idle connections) and grows only when one frame does not fit.
//!
//! The framing is the protocol crate's, from the client's side: RFC 6455 section 5.1 says "a
//! client MUST mask all frames that it sends to the server" ([`encode::masked`]) and "A client
//! MUST close a connection if it detects a masked frame" (the decoder in client mode, which
//! borrows each message from the read buffer: no copy or allocation per message).

use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::Duration;

use base64::Engine as _;
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

use crate::stream::Stream;
use ringcast_protocol::ws::decoder::{Decoder, DecoderConfig, InPlace, MessageRef};
use ringcast_protocol::ws::encode;
use ringcast_protocol::ws::frame::{FrameHeader, Opcode};
use ringcast_protocol::ws::handshake::accept_key;

use crate::error::BenchError;
use crate::sys;
use crate::target::Target;

/// Socket options for one client connection.
#[derive(Clone, Copy, Debug, Default)]
pub struct SocketOpts {
    /// Source address to bind (with `IP_BIND_ADDRESS_NO_PORT`).
    pub source: Option<Ipv4Addr>,
    /// `SO_RCVBUF` in bytes (the kernel doubles it); a small one makes a client that stops
    /// reading look stalled to the server quickly.
    pub recv_buffer: Option<usize>,
    /// Close with an RST (`SO_LINGER` 0) so the client side keeps no `TIME_WAIT` entry: the
    /// connect scenario opens tens of thousands of short connections.
    pub reset_on_close: bool,
    /// `TCP_NODELAY`.
    pub nodelay: bool,
}

/// Opens a TCP connection to `addr` with `opts`.
pub async fn tcp_connect(addr: SocketAddr, opts: SocketOpts) -> Result<TcpStream, BenchError> {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    if let Some(size) = opts.recv_buffer {
        socket.set_recv_buffer_size(size)?;
    }
    if opts.reset_on_close {
        socket.set_linger(Some(Duration::ZERO))?;
    }
    if opts.nodelay {
        socket.set_nodelay(true)?;
    }
    if let Some(ip) = opts.source {
        sys::set_bind_address_no_port(socket.as_raw_fd())?;
        socket.bind(&SockAddr::from(SocketAddr::from((ip, 0))))?;
    }
    match socket.connect(&SockAddr::from(addr)) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e.into()),
    }
    let stream = TcpStream::from_std(std::net::TcpStream::from(socket))?;
    // The non-blocking connect completes when the socket becomes writable; a refused or reset
    // connect also wakes the poll, and then the socket has no peer.
    stream.writable(false).await?;
    stream.peer_addr()?;
    Ok(stream)
}

/// Largest server frame or message the client accepts.
const MAX_MESSAGE: usize = 1 << 20;

/// What the client accepts from a server: unmasked frames and messages up to [`MAX_MESSAGE`].
const CLIENT: DecoderConfig = DecoderConfig {
    max_frame_size: MAX_MESSAGE,
    max_message_size: MAX_MESSAGE,
    require_mask: false,
};

/// Received bytes and the messages in them, independent of the socket.
#[derive(Debug)]
pub struct Inbox {
    buf: Vec<u8>,
    /// Start of unconsumed bytes in `buf`.
    pos: usize,
    decoder: Decoder,
}

/// An open WebSocket client connection.
pub struct WsConn {
    stream: Stream,
    inbox: Inbox,
    /// xorshift state for masking keys (RFC 6455 only asks that they be unpredictable to
    /// intermediaries, which a load test does not have).
    mask_state: u32,
}

impl WsConn {
    /// Connects and performs the opening handshake (RFC 6455 section 4.1) to `path`.
    pub async fn open(
        target: &Target,
        path: &str,
        opts: SocketOpts,
        read_buffer: usize,
        seed: u32,
    ) -> Result<Self, BenchError> {
        let stream = crate::stream::connect(&target.ws, target.tls.as_ref(), opts).await?;
        let mut conn = Self::from_stream(stream, read_buffer, seed);
        let mut nonce = [0u8; 16];
        for chunk in nonce.chunks_mut(4) {
            chunk.copy_from_slice(&conn.next_key());
        }
        let key = base64::engine::general_purpose::STANDARD.encode(nonce);
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n",
            target.ws.host_header
        );
        conn.write_raw(request.into_bytes()).await?;
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            let parsed = response
                .parse(conn.inbox.unread())
                .map_err(|e| BenchError::Handshake(e.to_string()))?;
            if let httparse::Status::Complete(head_len) = parsed {
                if response.code != Some(101) {
                    return Err(BenchError::Handshake(format!(
                        "status {:?}: {}",
                        response.code,
                        String::from_utf8_lossy(&conn.inbox.unread()[head_len..])
                    )));
                }
                // Section 4.1: the client MUST fail the connection if the
                // |Sec-WebSocket-Accept| value is not the base64 SHA-1 of the key and the GUID.
                let accept = response
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-accept"))
                    .map(|h| h.value)
                    .ok_or_else(|| BenchError::Handshake("no Sec-WebSocket-Accept".into()))?;
                if accept != accept_key(&key).as_bytes() {
                    return Err(BenchError::Handshake("wrong Sec-WebSocket-Accept".into()));
                }
                conn.inbox.consume(head_len);
                return Ok(conn);
            }
            if conn.inbox.unread().len() > 16 * 1024 {
                return Err(BenchError::Handshake("response head too long".into()));
            }
            conn.fill().await?;
        }
    }

    /// Wraps a connected stream (for raw frame streams, as from the ceiling sender).
    pub fn from_stream(stream: impl Into<Stream>, read_buffer: usize, seed: u32) -> Self {
        Self {
            stream: stream.into(),
            inbox: Inbox::with_capacity(read_buffer),
            mask_state: seed | 1,
        }
    }

    fn next_key(&mut self) -> [u8; 4] {
        let mut x = self.mask_state;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.mask_state = x;
        x.to_le_bytes()
    }

    /// Writes bytes as they are.
    pub async fn write_raw(&mut self, bytes: Vec<u8>) -> Result<(), BenchError> {
        let (res, _) = self.stream.write_all(bytes).await;
        res?;
        Ok(())
    }

    /// Sends a masked frame.
    pub async fn send(&mut self, opcode: Opcode, payload: &[u8]) -> Result<(), BenchError> {
        let key = self.next_key();
        self.write_raw(encode::masked(opcode, payload, key)).await
    }

    /// Sends a masked text frame.
    pub async fn send_text(&mut self, payload: &[u8]) -> Result<(), BenchError> {
        self.send(Opcode::Text, payload).await
    }

    /// Reads more bytes from the socket into the buffer. EOF is an error
    /// ([`BenchError::Closed`] without a code).
    pub async fn fill(&mut self) -> Result<(), BenchError> {
        let (buf, len, cap) = self.inbox.take_for_read();
        let (res, slice) = self.stream.read(buf.slice_mut(len..cap)).await;
        self.inbox.buf = slice.into_inner();
        match res? {
            0 => Err(BenchError::Closed(None)),
            _ => Ok(()),
        }
    }

    /// Like [`fill`](Self::fill), failing after `timeout`. A timed-out connection should be
    /// dropped: the cancelled read may have taken bytes with it.
    pub async fn fill_timeout(&mut self, timeout: Duration) -> Result<(), BenchError> {
        match monoio::time::timeout(timeout, self.fill()).await {
            Ok(r) => r,
            Err(_) => Err(BenchError::Timeout("read")),
        }
    }

    /// The next complete message received; `Ok(None)`: call [`fill`](Self::fill).
    pub fn next_message(&mut self) -> Result<Option<MessageRef<'_>>, BenchError> {
        self.inbox.next_message()
    }
}

impl Inbox {
    /// An empty inbox whose buffer starts at `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            buf: Vec::with_capacity(capacity.max(64)),
            pos: 0,
            decoder: Decoder::new(CLIENT),
        }
    }

    /// Bytes received and not yet consumed.
    pub fn unread(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Marks `n` unread bytes as consumed.
    pub fn consume(&mut self, n: usize) {
        self.pos += n;
    }

    /// Appends received bytes (for tests and non-socket sources).
    pub fn push(&mut self, bytes: &[u8]) {
        self.compact();
        self.buf.extend_from_slice(bytes);
    }

    fn compact(&mut self) {
        if self.pos > 0 {
            self.buf.copy_within(self.pos.., 0);
            self.buf.truncate(self.buf.len() - self.pos);
            self.pos = 0;
        }
    }

    /// Compacts, makes room for the frame being received, and lends the buffer out for a read
    /// into `len..cap`; the caller puts it back in `self.buf`.
    fn take_for_read(&mut self) -> (Vec<u8>, usize, usize) {
        self.compact();
        // The whole frame at the front, once its header is here (a header error surfaces from
        // `next_message`); else room for the longest header.
        let need = match FrameHeader::parse(&self.buf) {
            Ok(Some(h)) => h.header_len + h.payload_len.min(MAX_MESSAGE as u64) as usize,
            _ => self.buf.len() + 14,
        };
        if need > self.buf.capacity() {
            self.buf.reserve(need - self.buf.len());
        } else if self.buf.len() == self.buf.capacity() {
            self.buf.reserve(self.buf.capacity());
        }
        let (len, cap) = (self.buf.len(), self.buf.capacity());
        (std::mem::take(&mut self.buf), len, cap)
    }

    /// The next complete message in the buffer; `Ok(None)`: more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<MessageRef<'_>>, BenchError> {
        let unread = self.buf.get_mut(self.pos..).unwrap_or_default();
        let InPlace { consumed, message } = self.decoder.decode_in_place(unread)?;
        self.pos += consumed;
        Ok(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use ringcast_protocol::ws::decoder::Message;

    #[test]
    fn inbox_yields_messages_split_at_every_byte() {
        let mut wire = Vec::new();
        wire.extend_from_slice(&encode::text(b"hello"));
        wire.extend_from_slice(&encode::frame(Opcode::Ping, b"p"));
        // A fragmented text message with a ping between its fragments.
        wire.extend_from_slice(&[0x01, 3, b'a', b'b', b'c']);
        wire.extend_from_slice(&encode::frame(Opcode::Ping, b""));
        wire.extend_from_slice(&[0x80, 2, b'd', b'e']);
        wire.extend_from_slice(&encode::text(&[b'x'; 300]));
        wire.extend_from_slice(&encode::close(4100, "bye"));
        for split in 1..wire.len() {
            let mut inbox = Inbox::with_capacity(8);
            let mut got = Vec::new();
            for chunk in wire.chunks(split) {
                inbox.push(chunk);
                while let Some(m) = inbox.next_message().unwrap() {
                    got.push(m.to_message());
                }
            }
            assert_eq!(got.len(), 6, "split {split}: {got:?}");
            assert_eq!(got[0], Message::Text(b"hello".to_vec()));
            assert_eq!(got[2], Message::Ping(Vec::new()));
            assert_eq!(got[3], Message::Text(b"abcde".to_vec()));
            assert_eq!(got[4], Message::Text(vec![b'x'; 300]));
            let Message::Close(Some(close)) = &got[5] else {
                panic!("{:?}", got[5]);
            };
            assert_eq!((close.code.0, close.reason.as_str()), (4100, "bye"));
        }
    }

    #[test]
    fn a_read_makes_room_for_the_whole_frame_at_the_front() {
        let frame = encode::text(&[b'y'; 5000]);
        let mut inbox = Inbox::with_capacity(64);
        inbox.push(&frame[..10]);
        assert_eq!(inbox.next_message().unwrap(), None);
        let (buf, len, cap) = inbox.take_for_read();
        assert_eq!(len, 10);
        assert!(cap >= frame.len(), "{cap}");
        inbox.buf = buf;
    }

    #[test]
    fn server_frame_errors_fail_the_client() {
        for (bytes, what) in [
            (&[0x81, 0x85, 0, 0, 0, 0, b'h'][..], "masked"),
            (&[0xC1, 0x00], "rsv1"),
            (&[0x83, 0x00], "opcode 3"),
            (&[0x09, 0x00], "fragmented ping"),
            (&[0x81, 127, 0, 0, 0, 0, 0, 0x10, 0, 1], "too large"),
            (&[0x81, 1, 0xff], "not UTF-8"),
        ] {
            let mut inbox = Inbox::with_capacity(64);
            inbox.push(bytes);
            assert!(
                matches!(inbox.next_message(), Err(BenchError::Frame(_))),
                "{what}"
            );
        }
    }
}
