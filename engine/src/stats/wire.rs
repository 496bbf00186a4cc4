//! What a worker's sockets actually took: WebSocket frames written whole, bytes written and
//! write system calls.
//!
//! These are counted where the bytes leave, in the outbound queue (`crate::conn`), for every
//! frame of every connection, on the fan-out path. A connection cannot hold the counters (that
//! would grow every idle connection), and passing a worker's counters down to each write would
//! thread them through every caller; so each worker thread has its own, in a thread-local
//! cell. A count is a plain add to memory only that thread touches: nothing shared, nothing
//! atomic. The worker reads its own cell when it answers a metrics request, on its own thread.

use std::cell::Cell;

/// Write counters of one thread.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Wire {
    /// WebSocket frames the kernel took whole (a frame split over two calls counts once, when
    /// its last byte is taken).
    pub frames: u64,
    /// Bytes the kernel took.
    pub bytes: u64,
    /// `sendmsg` calls made for WebSocket connections, successful or not.
    pub calls: u64,
}

impl Wire {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &Wire) {
        self.frames += other.frames;
        self.bytes += other.bytes;
        self.calls += other.calls;
    }
}

thread_local! {
    static FRAMES: Cell<u64> = const { Cell::new(0) };
    static BYTES: Cell<u64> = const { Cell::new(0) };
    static CALLS: Cell<u64> = const { Cell::new(0) };
}

/// One `sendmsg` call that wrote `bytes` and finished `frames` frames.
#[inline]
pub fn wrote(frames: u64, bytes: u64) {
    CALLS.with(|c| c.set(c.get() + 1));
    if bytes > 0 {
        BYTES.with(|c| c.set(c.get() + bytes));
    }
    if frames > 0 {
        FRAMES.with(|c| c.set(c.get() + frames));
    }
}

/// This thread's counts so far.
pub fn current() -> Wire {
    Wire {
        frames: FRAMES.with(Cell::get),
        bytes: BYTES.with(Cell::get),
        calls: CALLS.with(Cell::get),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_thread_counts_its_own_writes() {
        let before = current();
        wrote(2, 100);
        wrote(0, 0);
        let after = current();
        assert_eq!(after.frames - before.frames, 2);
        assert_eq!(after.bytes - before.bytes, 100);
        assert_eq!(after.calls - before.calls, 2);
        let other = std::thread::spawn(|| {
            wrote(1, 7);
            current()
        })
        .join()
        .unwrap();
        assert_eq!(
            other,
            Wire {
                frames: 1,
                bytes: 7,
                calls: 1
            }
        );
        assert_eq!(
            current(),
            after,
            "another thread's writes are not counted here"
        );
    }
}
