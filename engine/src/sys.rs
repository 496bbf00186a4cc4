//! The few socket system calls the engine makes itself.
//!
//! monoio owns accepting and readiness (io_uring `PollAdd`, or epoll on the legacy driver). The
//! bytes themselves move with non-blocking `recv` and `sendmsg` calls made right when a socket is
//! ready or when a broadcast is fanned out: a read lands in the worker's one scratch buffer (so an
//! idle connection parks no read buffer at all), and a broadcast is written straight from the
//! shared frame with no copy and no per-recipient future. `MSG_DONTWAIT` makes each call
//! non-blocking whatever mode the descriptor is in; `MSG_NOSIGNAL` turns a write to a reset peer
//! into `EPIPE` instead of a process-killing `SIGPIPE`.
//!
//! This is the only module with `unsafe` code for system calls.
#![allow(unsafe_code)]

use std::io::{self, IoSlice};
use std::os::fd::RawFd;

/// Converts a `-1` return into the thread's `errno`.
fn check(ret: isize) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// Reads what the socket has, without blocking. `Ok(0)` is end of stream.
pub fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a valid, writable region of `buf.len()` bytes for the whole call, and the
    // kernel writes at most that many bytes into it.
    let ret = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
    check(ret)
}

/// Writes as much of `bufs` as the socket accepts now, without blocking, in one call.
pub fn sendv(fd: RawFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    let iovlen = bufs.len().min(libc::UIO_MAXIOV as usize);
    // SAFETY: an all-zero `msghdr` is a valid empty message header (null name and control).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // `IoSlice` is guaranteed ABI-compatible with `iovec` on Unix.
    msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = iovlen as _;
    // SAFETY: `msg` points at `iovlen` valid iovecs borrowed from `bufs`, which outlive the call;
    // the kernel only reads from them.
    let ret = unsafe { libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
    check(ret)
}

/// Shuts down one or both directions of a socket. Shutting down the read side wakes a pending
/// readiness wait with end-of-stream, which is how the engine tells a connection's reader that
/// the connection is over; on a listening socket it wakes a pending `accept` with an error.
pub fn shutdown(fd: RawFd, read: bool, write: bool) {
    let how = match (read, write) {
        (true, true) => libc::SHUT_RDWR,
        (true, false) => libc::SHUT_RD,
        _ => libc::SHUT_WR,
    };
    // SAFETY: `shutdown` takes no pointers; an invalid descriptor only yields an error, which is
    // irrelevant here because the connection is being torn down either way.
    unsafe {
        libc::shutdown(fd, how);
    }
}

/// Gives up on a connection: once its descriptor is closed the kernel sends a reset and frees
/// the socket's buffers at once, instead of keeping unsent data (up to the largest send buffer,
/// megabytes) for a peer that stopped reading, and retrying it for a minute or more after the
/// close. Shutting the read side wakes the connection's reader, which then drops the
/// descriptor.
pub fn abort(fd: RawFd) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    set_option(fd, libc::SOL_SOCKET, libc::SO_LINGER, &linger);
    shutdown(fd, true, false);
}

/// Bytes in the socket's send queue the peer has not acknowledged yet (`SIOCOUTQ`); 0 when the
/// descriptor is not a connected socket.
pub fn unsent(fd: RawFd) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: `SIOCOUTQ` (the same request number as `TIOCOUTQ`) writes one `c_int` through the
    // pointer, which points at a live `c_int`.
    let ret = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut n as *mut libc::c_int) };
    if ret < 0 {
        0
    } else {
        usize::try_from(n).unwrap_or(0)
    }
}

/// Turns off Nagle's algorithm: broadcast frames are small and must leave at once.
pub fn set_nodelay(fd: RawFd) {
    let one: libc::c_int = 1;
    set_option(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, &one);
}

/// Caps the kernel's send buffer of a connection at `bytes`, as `ss -tm` shows it (`tb`).
///
/// Without a cap Linux grows a TCP socket's send buffer on its own up to `tcp_wmem`'s maximum
/// (4 MiB by default), so a subscriber that stops reading could hold megabytes of the host's
/// memory in the kernel before its out-queue even starts to fill. Linux doubles the value
/// given to `SO_SNDBUF` to make room for its own bookkeeping, so half of `bytes` is asked for;
/// it also caps the request at `net.core.wmem_max`. Setting it turns autotuning off for this
/// socket.
pub fn set_send_buffer(fd: RawFd, bytes: usize) {
    let half = libc::c_int::try_from(bytes / 2).unwrap_or(libc::c_int::MAX);
    set_option(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, &half);
}

/// The socket's send buffer size as the kernel keeps it (`SO_SNDBUF`); 0 on error.
pub fn send_buffer(fd: RawFd) -> usize {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are live locals; `len` says `value`'s size, and the kernel
    // writes at most that many bytes through the first pointer and the actual size through
    // the second.
    let ret = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if ret < 0 {
        0
    } else {
        usize::try_from(value).unwrap_or(0)
    }
}

/// Sets one socket option. Errors are ignored: every caller's option is an optimisation or
/// concerns a connection that is being dropped, and an invalid descriptor only yields one.
fn set_option<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, value: &T) {
    // SAFETY: `value` points at a live `T` whose size is passed alongside it, and the kernel
    // only reads that many bytes from it.
    unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        );
    }
}

/// Returns the allocator's free pages to the kernel.
///
/// A burst of handshakes leaves kilobytes of freed request state behind the connections it
/// opened, and a slow consumer's dropped queue leaves its list of thousands of frame
/// references. jemalloc (the `ringcast` binary's allocator) hands dirty pages back on its own
/// only as further allocations advance its decay clock, so a worker that goes quiet after
/// either would keep them resident. Called from the sweep after either, this purges every
/// arena at once and brings the resident size back to what the open connections use.
pub fn release_free_memory() {
    // SAFETY: `arena.<MALLCTL_ARENAS_ALL>.purge` is a void control: jemalloc requires exactly
    // null `oldp`, `oldlenp` and `newp` with `newlen` 0, which is what is passed, and the name
    // is a NUL-terminated static string. It only releases pages no allocation uses.
    let _ = unsafe {
        tikv_jemalloc_sys::mallctl(
            c"arena.4096.purge".as_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        )
    };
}

/// Spawns `cmd` as the successor of this process for a restart (`crate::restart`): with
/// `ready` as its descriptor 3 (the one it reports readiness on), and no other descriptor of
/// this process.
///
/// The engine's sockets are not all close-on-exec: io_uring's `accept` creates descriptors
/// without the flag, and a successor that inherited a client's socket would keep it open
/// after this process closed it, so the client would never see the end of its connection.
/// So in the child, between `fork` and `exec`, every descriptor above 3 is marked
/// close-on-exec (`close_range` with `CLOSE_RANGE_CLOEXEC`, or one `fcntl` each on kernels
/// before 5.11). The child is also told `SIGTERM` if this thread ends (`PR_SET_PDEATHSIG`),
/// so it never outlives the process that supervises it, and gets a process group of its own,
/// so that a terminal's Ctrl-C reaches only the supervisor, which relays it once.
pub fn spawn_successor(
    cmd: &mut std::process::Command,
    ready: RawFd,
) -> io::Result<std::process::Child> {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0);
    // SAFETY: the closure runs in the forked child before `exec`, where only
    // async-signal-safe calls are allowed: `dup2`, `fcntl`, `prctl`, `syscall` and
    // `getrlimit` are system calls that take no locks and allocate nothing; the closure
    // captures only a descriptor number.
    unsafe {
        cmd.pre_exec(move || {
            if ready == 3 {
                if libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
            } else if libc::dup2(ready, 3) < 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGTERM as libc::c_ulong,
                0,
                0,
                0,
            ) < 0
            {
                return Err(io::Error::last_os_error());
            }
            let marked = libc::syscall(
                libc::SYS_close_range,
                4 as libc::c_uint,
                libc::c_uint::MAX,
                libc::CLOSE_RANGE_CLOEXEC as libc::c_uint,
            );
            if marked < 0 {
                let mut lim = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                let max = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
                    lim.rlim_cur.min(1 << 20) as libc::c_int
                } else {
                    1 << 16
                };
                for fd in 4..max {
                    libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                }
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// The descriptor a parent handed this process as its descriptor `fd`, as a Unix stream,
/// if it is one.
pub fn inherited_stream(fd: RawFd) -> Option<std::os::unix::net::UnixStream> {
    use std::os::fd::FromRawFd;
    // SAFETY: `fcntl(F_GETFD)` takes no pointers and only reports whether `fd` is open.
    let open = unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0;
    if !open {
        return None;
    }
    // SAFETY: `fd` is open and was handed to this process for this use alone (the restart
    // protocol's descriptor 3); nothing else in the process owns it, so the stream may own
    // and close it.
    let stream = unsafe { std::os::unix::net::UnixStream::from_raw_fd(fd) };
    let is_unix_stream = stream.local_addr().is_ok();
    if is_unix_stream {
        Some(stream)
    } else {
        std::mem::forget(stream);
        None
    }
}

/// Closes every TCP socket this process still has open, for a process that served, handed
/// over to a successor and goes on as its supervisor (`crate::restart`).
///
/// When a worker's runtime ends, the tasks still on it are not run again, and a kept-alive
/// HTTP connection that was waiting for its next request (a publisher's) keeps its socket
/// open in this process with nobody reading it: its next request would wait for ever instead
/// of failing over to the new process. Closing these sockets sends the peer the end of the
/// connection, and its client retries on a new one. Must be called only once every thread
/// that served has ended, when nothing will use or close these descriptors again.
pub fn close_inet_sockets() -> usize {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    let fds: Vec<RawFd> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    let mut closed = 0;
    for fd in fds {
        let mut domain: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `domain` and `len` are live locals of the sizes passed; on a descriptor that
        // is not a socket (or no longer open) the call only fails.
        let ret = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_DOMAIN,
                (&mut domain as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        if ret == 0 && (domain == libc::AF_INET || domain == libc::AF_INET6) {
            // SAFETY: the caller guarantees that no thread or object of this process uses or
            // closes this descriptor any more (every thread that served has ended).
            unsafe {
                libc::close(fd);
            }
            closed += 1;
        }
    }
    closed
}

/// Sends signal `sig` to process `pid`.
pub fn kill(pid: u32, sig: libc::c_int) -> io::Result<()> {
    let pid =
        libc::pid_t::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `kill` takes no pointers; a wrong pid only yields an error.
    if unsafe { libc::kill(pid, sig) } < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    #[test]
    fn the_send_buffer_is_capped_at_what_is_asked_for() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let fd = server.as_raw_fd();
        set_send_buffer(fd, 64 * 1024);
        assert_eq!(send_buffer(fd), 64 * 1024);
        set_send_buffer(fd, 16 * 1024);
        assert_eq!(send_buffer(fd), 16 * 1024);
    }

    #[test]
    fn sendv_and_recv_move_bytes_without_blocking() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let mut buf = [0u8; 16];
        let err = recv(server.as_raw_fd(), &mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        client.write_all(b"ping").unwrap();
        client.flush().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(recv(server.as_raw_fd(), &mut buf).unwrap(), 4);
        assert_eq!(&buf[..4], b"ping");
        let n = sendv(
            server.as_raw_fd(),
            &[IoSlice::new(b"po"), IoSlice::new(b"ng")],
        )
        .unwrap();
        assert_eq!(n, 4);
        let mut got = [0u8; 4];
        client.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"pong");
        shutdown(server.as_raw_fd(), true, true);
        assert_eq!(client.read(&mut got).unwrap(), 0);
    }

    #[test]
    fn unsent_counts_what_the_peer_has_not_taken_and_abort_resets() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        assert_eq!(unsent(server.as_raw_fd()), 0);
        // The client reads nothing: what does not fit its receive buffer stays unsent.
        let chunk = vec![b'x'; 1 << 16];
        let mut written = 0;
        while let Ok(n) = sendv(server.as_raw_fd(), &[IoSlice::new(&chunk)]) {
            written += n;
        }
        let pending = unsent(server.as_raw_fd());
        assert!(pending > 0 && pending <= written, "{pending} of {written}");
        abort(server.as_raw_fd());
        drop(server);
        let mut buf = vec![0u8; 1 << 16];
        let err = loop {
            match client.read(&mut buf) {
                Ok(0) => panic!("a clean end of stream instead of a reset"),
                Ok(_) => {}
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        assert_eq!(unsent(-1), 0);
    }
}
