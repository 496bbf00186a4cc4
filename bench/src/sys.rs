//! The system calls the standard library and socket2 do not wrap, behind safe functions.
//!
//! Two are needed: `CLOCK_MONOTONIC` as a raw number, because a send timestamp written into a
//! payload by one process (the ceiling sender) is compared with the receive time in another,
//! and `IP_BIND_ADDRESS_NO_PORT`, which lets a client socket bind a source address without
//! reserving a port at `bind()` time.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::RawFd;

/// Nanoseconds of `CLOCK_MONOTONIC`: comparable between all processes on this machine.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call, and
    // CLOCK_MONOTONIC is always supported on Linux, so the call only writes `ts`.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    debug_assert_eq!(rc, 0);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Sets `IP_BIND_ADDRESS_NO_PORT` on `fd`: a later `bind()` to port 0 fixes only the source
/// address, and the port is chosen at `connect()` so that it need only be unique per 4-tuple.
pub fn set_bind_address_no_port(fd: RawFd) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: the option value points to a live c_int and its exact size is passed; the kernel
    // only reads it. An invalid fd makes the call fail with EBADF, which is returned.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_clock_moves_forward() {
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(b >= a && a > 0);
    }

    #[test]
    fn bind_address_no_port_is_accepted_by_a_tcp_socket() {
        use std::os::fd::AsRawFd;
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        set_bind_address_no_port(s.as_raw_fd()).unwrap();
        assert!(set_bind_address_no_port(-1).is_err());
    }
}
