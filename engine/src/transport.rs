//! How a connection's bytes reach its socket: as they are, or through TLS.
//!
//! The engine moves bytes with its own non-blocking `recv` and `sendmsg` calls ([`sys`]), made
//! when a socket is ready or when a broadcast is fanned out, so that an idle connection parks
//! no buffer and a broadcast is written from the shared frame. TLS keeps that shape: a
//! [`Transport`] is the socket's descriptor and, on a TLS port, the connection's rustls state,
//! and it offers the same two calls. [`Transport::recv`] reads ciphertext into the worker's
//! scratch buffer, has rustls process the records there and appends the plaintext to the
//! caller's buffer; [`Transport::sendv`] encrypts as much of the frames as one batch holds,
//! right when the socket takes bytes, and writes the records.
//!
//! rustls's unbuffered connection is what makes this fit the engine's memory rule: it works on
//! the buffers it is handed and owns none for reading, so an idle TLS connection parks no read
//! buffer (rustls's buffered connection keeps 4 KiB for every connection once it has read).
//! Only the start of a record whose end has not arrived yet is copied into a buffer of the
//! connection's own, freed as soon as the record is complete.
//!
//! What a socket did not take of an encrypted batch waits in the connection's own buffer (at
//! most one batch, [`TLS_BATCH`], plus record overhead); every other frame waits unencrypted in
//! the connection's out-queue as a reference to the shared frame, as on a plain connection.
//! So a slow TLS consumer holds what a plain one holds plus one batch, and the out-queue bound
//! and its 4100 apply unchanged. Encrypting is the one per-recipient cost TLS adds: a frame is
//! still encoded once, and encrypted once per recipient, which TLS cannot avoid.
//!
//! The rustls state is shared (`Rc<RefCell<_>>`) between the connection's reader task and the
//! worker's slab entry, which writes to it; both run on the worker's one thread, and neither
//! holds the borrow across an await.

use std::cell::RefCell;
use std::io::{self, IoSlice};
use std::os::fd::RawFd;
use std::rc::Rc;

use bytes::BytesMut;
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};

use crate::sys;

/// Most plaintext bytes encrypted for one write: what may wait in a TLS connection's own
/// buffer when its socket is full. Four full records.
pub const TLS_BATCH: usize = 64 * 1024;

/// A connection's TLS side: the rustls state, the part of a record that has arrived, and the
/// records the socket has not taken yet. rustls's unbuffered API reads from the buffer it is
/// given, so an idle connection holds neither buffer (both are freed once empty).
pub struct TlsSession {
    conn: UnbufferedServerConnection,
    /// The start of a record whose end has not arrived yet.
    incoming: Vec<u8>,
    /// Encrypted bytes waiting for room in the socket.
    unsent: Vec<u8>,
    /// Where `unsent` starts (bytes before it were written).
    sent: usize,
    /// The peer sent its `close_notify`.
    peer_closed: bool,
}

/// A connection's way to its socket.
#[derive(Clone)]
pub struct Transport {
    /// The socket's descriptor, for the direct system calls (shutdown, reset, readiness).
    pub fd: RawFd,
    tls: Option<Rc<RefCell<TlsSession>>>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("fd", &self.fd)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// A TLS failure as the I/O error the callers see.
fn tls_error(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

impl Transport {
    /// Bytes as they are.
    pub fn plain(fd: RawFd) -> Transport {
        Transport { fd, tls: None }
    }

    /// Through TLS, with `conn` a new server connection (its handshake not yet begun).
    pub fn tls(fd: RawFd, conn: UnbufferedServerConnection) -> Transport {
        Transport {
            fd,
            tls: Some(Rc::new(RefCell::new(TlsSession {
                conn,
                incoming: Vec::new(),
                unsent: Vec::new(),
                sent: 0,
                peer_closed: false,
            }))),
        }
    }

    /// Whether the connection runs TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Reads what the socket has into `scratch` and appends the plaintext to `out`. `Ok(0)` is
    /// the end of the stream (a TLS peer's `close_notify` too); `WouldBlock` means nothing for
    /// the caller yet (no bytes, or only TLS handshake records, whose answer is queued: see
    /// [`Transport::wants_write`]). A TLS error is `InvalidData`, after the alert that tells
    /// the peer is queued.
    pub fn recv(&self, scratch: &mut [u8], out: &mut BytesMut) -> io::Result<usize> {
        let n = sys::recv(self.fd, scratch)?;
        let Some(tls) = &self.tls else {
            out.extend_from_slice(&scratch[..n]);
            return Ok(n);
        };
        if n == 0 {
            return Ok(0);
        }
        let mut t = tls.borrow_mut();
        let t = &mut *t;
        let before = out.len();
        let result = if t.incoming.is_empty() {
            // The usual case: whole records, processed where they were read.
            let buf = &mut scratch[..n];
            let r = t.process(buf, out, self.fd);
            if let Ok(used) = r {
                t.incoming = buf[used..].to_vec();
            }
            r.map(|_| ())
        } else {
            let mut buf = std::mem::take(&mut t.incoming);
            buf.extend_from_slice(&scratch[..n]);
            let r = t.process(&mut buf, out, self.fd);
            if let Ok(used) = r {
                buf.drain(..used);
                t.incoming = if buf.is_empty() { Vec::new() } else { buf };
            }
            r.map(|_| ())
        };
        result?;
        let got = out.len() - before;
        if got > 0 {
            Ok(got)
        } else if t.peer_closed {
            Ok(0)
        } else {
            Err(io::ErrorKind::WouldBlock.into())
        }
    }

    /// Writes as much of `bufs` as the socket takes now, without blocking; returns how many of
    /// their bytes were taken. Through TLS, the bytes taken are encrypted (at most
    /// [`TLS_BATCH`]), and what the socket did not take of the records waits here: the call is
    /// `WouldBlock` until it has gone.
    pub fn sendv(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let Some(tls) = &self.tls else {
            return sys::sendv(self.fd, bufs);
        };
        let mut t = tls.borrow_mut();
        if !t.write_unsent(self.fd)? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut taken = 0;
        for b in bufs {
            let n = b.len().min(TLS_BATCH - taken);
            if n == 0 {
                break;
            }
            t.encrypt(&b[..n])?;
            taken += n;
        }
        t.write_unsent(self.fd)?;
        Ok(taken)
    }

    /// Writes what waits of the TLS records; `Ok(true)` when nothing waits any more (always
    /// on a plain connection).
    pub fn flush(&self) -> io::Result<bool> {
        match &self.tls {
            None => Ok(true),
            Some(tls) => tls.borrow_mut().write_unsent(self.fd),
        }
    }

    /// Whether TLS records wait for room in the socket.
    pub fn wants_write(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| {
            let t = t.borrow();
            t.sent < t.unsent.len()
        })
    }

    /// Bytes not yet delivered: the socket's unsent bytes and the TLS records waiting here.
    pub fn unsent(&self) -> usize {
        let waiting = self.tls.as_ref().map_or(0, |t| {
            let t = t.borrow();
            t.unsent.len() - t.sent
        });
        sys::unsent(self.fd) + waiting
    }

    /// Ends the sending side: a TLS connection first sends its `close_notify` (as far as the
    /// socket takes it), then the socket's write side is shut down.
    pub fn shutdown_write(&self) {
        if let Some(tls) = &self.tls {
            let mut t = tls.borrow_mut();
            if t.close_notify().is_ok() {
                let _ = t.write_unsent(self.fd);
            }
        }
        sys::shutdown(self.fd, false, true);
    }
}

/// Appends to `buf` what `write` writes into a slice of the size it asks for.
fn append<E>(
    buf: &mut Vec<u8>,
    mut write: impl FnMut(&mut [u8]) -> Result<usize, E>,
    needs: impl Fn(&E) -> Option<usize>,
) -> Result<(), E> {
    let at = buf.len();
    let mut room = 256;
    loop {
        buf.resize(at + room, 0);
        match write(&mut buf[at..]) {
            Ok(n) => {
                buf.truncate(at + n);
                return Ok(());
            }
            Err(e) => match needs(&e) {
                Some(size) if size > room => room = size,
                _ => {
                    buf.truncate(at);
                    return Err(e);
                }
            },
        }
    }
}

fn encode_needs(e: &EncodeError) -> Option<usize> {
    match e {
        EncodeError::InsufficientSize(s) => Some(s.required_size),
        _ => None,
    }
}

fn encrypt_needs(e: &EncryptError) -> Option<usize> {
    match e {
        EncryptError::InsufficientSize(s) => Some(s.required_size),
        _ => None,
    }
}

impl TlsSession {
    /// Runs rustls over the records in `buf`: plaintext goes to `out`, handshake answers to
    /// `unsent` (and towards the socket). Returns how many bytes of `buf` were used; the rest
    /// is the start of a record.
    fn process(&mut self, buf: &mut [u8], out: &mut BytesMut, fd: RawFd) -> io::Result<usize> {
        let mut used = 0;
        loop {
            let UnbufferedStatus { discard, state } =
                self.conn.process_tls_records(&mut buf[used..]);
            let state = match state {
                Ok(s) => s,
                Err(e) => {
                    self.queue_alert();
                    return Err(tls_error(e));
                }
            };
            let more = match state {
                ConnectionState::ReadTraffic(mut r) => {
                    while let Some(rec) = r.next_record() {
                        out.extend_from_slice(rec.map_err(tls_error)?.payload);
                    }
                    true
                }
                ConnectionState::EncodeTlsData(mut e) => {
                    append(&mut self.unsent, |b| e.encode(b), encode_needs).map_err(tls_error)?;
                    true
                }
                ConnectionState::TransmitTlsData(t) => {
                    // The records stay in `unsent` until the socket takes them.
                    t.done();
                    true
                }
                ConnectionState::PeerClosed => {
                    self.peer_closed = true;
                    true
                }
                ConnectionState::Closed => {
                    self.peer_closed = true;
                    false
                }
                // Needs more bytes, or nothing more to read: done with this buffer.
                _ => false,
            };
            used += discard;
            if !more {
                let _ = self.write_unsent(fd);
                return Ok(used);
            }
        }
    }

    /// Queues the alert rustls prepared for a failure, if it did.
    fn queue_alert(&mut self) {
        let status = self.conn.process_tls_records(&mut []);
        if let Ok(ConnectionState::EncodeTlsData(mut e)) = status.state {
            let _ = append(&mut self.unsent, |b| e.encode(b), encode_needs);
        }
    }

    /// Encrypts `plain` into `unsent`, first encoding any handshake record rustls has queued
    /// (a key update).
    fn encrypt(&mut self, plain: &[u8]) -> io::Result<()> {
        loop {
            let status = self.conn.process_tls_records(&mut []);
            match status.state.map_err(tls_error)? {
                ConnectionState::WriteTraffic(mut w) => {
                    return append(&mut self.unsent, |b| w.encrypt(plain, b), encrypt_needs)
                        .map_err(|e| tls_error(format!("{e:?}")));
                }
                ConnectionState::EncodeTlsData(mut e) => {
                    append(&mut self.unsent, |b| e.encode(b), encode_needs).map_err(tls_error)?;
                }
                ConnectionState::TransmitTlsData(t) => t.done(),
                other => {
                    return Err(tls_error(format!(
                        "cannot send application data in state {other:?}"
                    )));
                }
            }
        }
    }

    /// Queues the `close_notify` alert.
    fn close_notify(&mut self) -> io::Result<()> {
        let status = self.conn.process_tls_records(&mut []);
        match status.state.map_err(tls_error)? {
            ConnectionState::WriteTraffic(mut w) => {
                append(&mut self.unsent, |b| w.queue_close_notify(b), encrypt_needs)
                    .map_err(|e| tls_error(format!("{e:?}")))
            }
            _ => Ok(()),
        }
    }

    /// Writes `unsent` to the socket; `Ok(true)` once all of it has gone.
    fn write_unsent(&mut self, fd: RawFd) -> io::Result<bool> {
        while self.sent < self.unsent.len() {
            match sys::sendv(fd, &[IoSlice::new(&self.unsent[self.sent..])]) {
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        // Freed once empty: an idle connection keeps no record buffer.
        self.unsent = Vec::new();
        self.sent = 0;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    use std::sync::Arc;

    /// A server `Transport` over a socket pair and a rustls client driven by hand: the lowest
    /// layer that sees records go both ways and a full socket hold them.
    #[test]
    fn records_go_both_ways_and_a_full_socket_keeps_at_most_one_batch() {
        let certified = self_signed();
        let server_cfg = crate::tls::server_config_for(certified.0.clone());
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let server = Transport::tls(
            a.as_raw_fd(),
            UnbufferedServerConnection::new(server_cfg).unwrap(),
        );
        let mut roots = rustls::RootCertStore::empty();
        roots.add(certified.1).unwrap();
        let client_cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut client =
            rustls::ClientConnection::new(Arc::new(client_cfg), "localhost".try_into().unwrap())
                .unwrap();
        let mut b = b;
        let mut scratch = vec![0u8; 16 * 1024];
        let mut got = BytesMut::new();
        // The handshake, driven until the client can send.
        for _ in 0..10 {
            while client.wants_write() {
                client.write_tls(&mut b).unwrap();
            }
            match server.recv(&mut scratch, &mut got) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
            assert!(server.flush().unwrap());
            b.set_nonblocking(true).unwrap();
            if let Ok(n) = b.read(&mut scratch) {
                let mut input = &scratch[..n];
                while !input.is_empty() {
                    client.read_tls(&mut input).unwrap();
                    client.process_new_packets().unwrap();
                }
            }
            b.set_nonblocking(false).unwrap();
            if !client.is_handshaking() {
                break;
            }
        }
        assert!(!client.is_handshaking());
        client
            .writer()
            .write_all(b"GET / HTTP/1.1\r\n\r\n")
            .unwrap();
        while client.wants_write() {
            client.write_tls(&mut b).unwrap();
        }
        let mut n = Err(io::ErrorKind::WouldBlock.into());
        for _ in 0..10 {
            n = server.recv(&mut scratch, &mut got);
            if n.is_ok() {
                break;
            }
        }
        assert_eq!(n.unwrap(), 18);
        assert_eq!(&got[..], b"GET / HTTP/1.1\r\n\r\n");

        // Records larger than one read: each read ends inside a record, whose start waits in
        // the connection's own buffer, which is empty again once the last record is complete.
        let big: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        client.writer().write_all(&big).unwrap();
        while client.wants_write() {
            client.write_tls(&mut b).unwrap();
        }
        let mut small = vec![0u8; 1000];
        let mut plain = BytesMut::new();
        while plain.len() < big.len() {
            match server.recv(&mut small, &mut plain) {
                Ok(n) => assert!(n > 0),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(&plain[..], &big[..]);
        assert_eq!(server.tls.as_ref().unwrap().borrow().incoming.capacity(), 0);

        // The client stops reading: the socket fills, and what waits here stays under a batch.
        let frame = vec![7u8; 10_000];
        let mut taken = 0;
        let mut blocked = false;
        for _ in 0..1000 {
            match server.sendv(&[IoSlice::new(&frame)]) {
                Ok(n) => taken += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    blocked = true;
                    break;
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert!(blocked, "a socket nobody reads fills up");
        assert!(server.wants_write());
        let waiting = server.tls.as_ref().map(|t| {
            let t = t.borrow();
            t.unsent.len() - t.sent
        });
        assert!(waiting.unwrap() <= TLS_BATCH + 4 * 64, "{waiting:?}");
        // The client reads everything: every byte taken arrives, in order.
        let reader = std::thread::spawn(move || {
            let mut plain = Vec::new();
            let mut buf = vec![0u8; 64 * 1024];
            while plain.len() < taken {
                let n = b.read(&mut buf).unwrap();
                let mut input = &buf[..n];
                while !input.is_empty() {
                    client.read_tls(&mut input).unwrap();
                    let s = client.process_new_packets().unwrap();
                    let at = plain.len();
                    plain.resize(at + s.plaintext_bytes_to_read(), 0);
                    client.reader().read_exact(&mut plain[at..]).unwrap();
                }
            }
            plain
        });
        while !server.flush().unwrap() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let plain = reader.join().unwrap();
        assert_eq!(plain.len(), taken);
        assert!(plain.iter().all(|b| *b == 7));
        assert!(!server.wants_write());
    }

    /// A self-signed certificate for `localhost`, and its DER for the client's roots.
    fn self_signed() -> (
        Arc<rustls::sign::CertifiedKey>,
        rustls::pki_types::CertificateDer<'static>,
    ) {
        let (cert, key) = crate::tls::tests::self_signed();
        let certified = crate::tls::load_pem(cert.as_bytes(), key.as_bytes()).unwrap();
        let der = certified.cert[0].clone();
        (Arc::new(certified), der)
    }
}
