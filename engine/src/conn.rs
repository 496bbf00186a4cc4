//! One open WebSocket connection, as its worker's slab holds it.
//!
//! A connection's socket side is what the worker needs to reach it: its socket, its outbound
//! queue and its liveness clock (its subscriptions and sign-in are rules state, kept beside it
//! by the shard core). It deliberately holds no read buffer and no frame decoder state: those
//! belong to the connection's task and are empty while the connection is idle. An idle
//! connection costs this struct, its rules state, its task's small future and its registry
//! entries.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::rc::Rc;

use crate::stats::wire;
use crate::transport::Transport;
use bytes::Bytes;
use monoio::net::TcpStream;

/// The socket side of a connection, kept by the shard core beside the connection's rules
/// state (`crate::state::Shard`).
pub struct Conn {
    /// The socket, shared with the reader and (while one runs) the writer task.
    pub stream: Rc<TcpStream>,
    /// The socket's descriptor and, on a TLS port, its TLS state: what frames are written
    /// through.
    pub io: Transport,
    /// Frames accepted for this connection that the socket has not taken yet.
    pub out: OutQueue,
    /// Worker clock second of the last frame received.
    pub last_seen: u32,
    /// Worker clock second the server pinged it, while waiting for an answer.
    pub pinged_at: Option<u32>,
    /// Set once the server started closing it.
    pub closing: Option<CloseClock>,
    /// Whether a writer task is waiting for the socket to become writable.
    pub writer_active: bool,
}

/// How far a connection being closed has got. Once closing it receives nothing new, so what it
/// still has to take only shrinks while its peer reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloseClock {
    /// Worker clock second of the start of the current grace period.
    pub since: u32,
    /// Bytes still to deliver (queued here plus unsent in the kernel) at that second.
    pub pending: u32,
}

impl Conn {
    /// Whether the connection is being closed (it then receives nothing more).
    pub fn is_closing(&self) -> bool {
        self.closing.is_some()
    }

    /// Bytes still to deliver: the queue here plus what the kernel (and TLS) has not sent yet.
    pub fn pending_bytes(&self) -> u32 {
        u32::try_from(self.out.bytes() + self.io.unsent()).unwrap_or(u32::MAX)
    }
}

/// A connection's bounded outbound queue of shared frames.
///
/// Frames are `Bytes` shared with every other recipient; the queue holds references, and only
/// the unwritten tail of a partly written frame is a new slice of the same buffer.
#[derive(Default)]
pub struct OutQueue {
    frames: VecDeque<Bytes>,
    bytes: usize,
    /// Whether the front frame has been partly written (it must then be finished before anything
    /// else, or the stream would be corrupt).
    partial_front: bool,
}

/// What happened to a frame offered to a connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer {
    /// The socket took all of it.
    Sent,
    /// Some or all of it waits in the queue for the socket to become writable.
    Queued,
    /// The socket failed (reset peer): the connection must go.
    Failed,
}

/// Most iovecs gathered into one `sendmsg`.
const MAX_IOV: usize = 64;

impl OutQueue {
    /// Bytes waiting.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Offers `frame` to the socket: written at once when nothing is queued before it and the
    /// socket takes it, else queued behind what waits. The frame is borrowed: only a frame that
    /// must wait is retained (a reference count, never a copy), so the common case of a healthy
    /// subscriber touches neither the allocator nor the shared buffer's counter.
    ///
    /// Through TLS a frame the socket took may still have records waiting for room; it then
    /// counts as queued (nothing more is kept of it), so that a writer finishes it.
    pub fn offer(&mut self, io: &Transport, frame: &Bytes) -> Offer {
        if !self.frames.is_empty() || io.wants_write() {
            self.push(frame.clone());
            return Offer::Queued;
        }
        let sent = io.sendv(&[IoSlice::new(frame)]);
        match &sent {
            Ok(n) => wire::wrote(u64::from(*n == frame.len()), *n as u64),
            Err(_) => wire::wrote(0, 0),
        }
        match sent {
            Ok(n) if n == frame.len() && io.wants_write() => Offer::Queued,
            Ok(n) if n == frame.len() => Offer::Sent,
            Ok(n) => {
                self.partial_front = n > 0;
                self.push(frame.slice(n..));
                Offer::Queued
            }
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted =>
            {
                self.push(frame.clone());
                Offer::Queued
            }
            Err(_) => Offer::Failed,
        }
    }

    fn push(&mut self, frame: Bytes) {
        self.bytes += frame.len();
        self.frames.push_back(frame);
    }

    /// Writes as much as the socket takes, several frames per system call. `Ok(true)` when
    /// the queue is empty afterwards (and no TLS record waits).
    pub fn flush(&mut self, io: &Transport) -> io::Result<bool> {
        if !io.flush()? {
            return Ok(false);
        }
        while !self.frames.is_empty() {
            let mut iov = [IoSlice::new(&[]); MAX_IOV];
            let mut count = 0;
            let mut total = 0;
            for (slot, frame) in iov.iter_mut().zip(self.frames.iter()) {
                *slot = IoSlice::new(frame);
                total += frame.len();
                count += 1;
            }
            let written = match io.sendv(&iov[..count]) {
                Ok(n) => n,
                Err(e) => {
                    wire::wrote(0, 0);
                    match e.kind() {
                        io::ErrorKind::WouldBlock => return Ok(false),
                        io::ErrorKind::Interrupted => continue,
                        _ => return Err(e),
                    }
                }
            };
            let finished = self.consume(written);
            wire::wrote(finished, written as u64);
            if written < total || io.wants_write() {
                return Ok(false);
            }
        }
        self.frames = VecDeque::new();
        Ok(true)
    }

    /// Takes `n` written bytes off the front; returns the number of frames finished.
    fn consume(&mut self, mut n: usize) -> u64 {
        self.bytes -= n;
        let mut finished = 0;
        while n > 0 {
            let front = self.frames.front_mut().expect("consumed more than queued");
            if n >= front.len() {
                n -= front.len();
                self.frames.pop_front();
                self.partial_front = false;
                finished += 1;
            } else {
                *front = front.slice(n..);
                self.partial_front = true;
                n = 0;
            }
        }
        finished
    }

    /// Drops every queued frame except the unwritten rest of a partly written one, which must
    /// still go out before a close frame can follow it.
    pub fn drop_unstarted(&mut self) {
        let keep = if self.partial_front {
            self.frames.pop_front()
        } else {
            None
        };
        // A new deque, not `clear`: a slow consumer's can have grown to thousands of entries.
        self.frames = VecDeque::new();
        self.bytes = 0;
        if let Some(f) = keep {
            self.push(f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    #[test]
    fn a_full_socket_queues_and_flush_preserves_order() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let fd = &Transport::plain(server.as_raw_fd());
        let mut q = OutQueue::default();
        let frame = Bytes::from(vec![0xAB; 64 * 1024]);
        let mut sent = 0usize;
        let mut queued = false;
        for _ in 0..200 {
            match q.offer(fd, &frame) {
                Offer::Sent => sent += frame.len(),
                Offer::Queued => queued = true,
                Offer::Failed => panic!("socket failed"),
            }
        }
        assert!(queued, "the peer never reads, so the socket must fill up");
        let total = 200 * frame.len();
        assert!(sent + q.bytes() <= total);
        let reader = std::thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 16];
            let mut got = 0;
            while got < total {
                let n = client.read(&mut buf).unwrap();
                assert!(buf[..n].iter().all(|b| *b == 0xAB));
                got += n;
            }
            got
        });
        while !q.flush(fd).unwrap() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(reader.join().unwrap(), total);
        assert_eq!(q.bytes(), 0);
    }

    #[test]
    fn drop_unstarted_keeps_a_partly_written_front() {
        let mut q = OutQueue::default();
        q.push(Bytes::from_static(b"abcdef"));
        q.push(Bytes::from_static(b"ghij"));
        q.consume(2);
        q.drop_unstarted();
        assert_eq!(q.bytes(), 4);
        assert_eq!(&q.frames[0][..], b"cdef");
        let mut q = OutQueue::default();
        q.push(Bytes::from_static(b"abcdef"));
        q.drop_unstarted();
        assert!(q.is_empty());
    }
}
