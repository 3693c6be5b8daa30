//! The few syscalls that neither socket2 nor monoio expose: CPU affinity queries, shutting down
//! a socket's read side by fd (drain), and a non-blocking liveness peek on pooled connections.
#![expect(
    unsafe_code,
    reason = "thin, documented libc wrappers; the only unsafe in shardgate"
)]

use std::os::fd::RawFd;

/// CPUs this process may run on (from `sched_getaffinity`), ascending.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; zeroed is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable cpu_set_t of the size passed.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        return (0..n).collect();
    }
    // SAFETY: CPU_ISSET reads the set initialised above; `i` is below CPU_SETSIZE.
    (0..libc::CPU_SETSIZE as usize)
        .filter(|&i| unsafe { libc::CPU_ISSET(i, &set) })
        .collect()
}

/// Shuts down the read side of a socket: a pending accept or read on it returns at once.
pub fn shutdown_read(fd: RawFd) {
    // SAFETY: shutdown on any fd is memory-safe; a stale fd only yields EBADF/ENOTSOCK.
    unsafe {
        libc::shutdown(fd, libc::SHUT_RD);
    }
}

/// True when the upstream has already answered (or closed, or reset) while the request body
/// is still being sent: there are bytes to read that are not a `1xx` interim response.
pub fn upstream_answered_early(fd: RawFd) -> bool {
    let mut peek = [0u8; 10];
    // SAFETY: `peek` is a valid 10-byte buffer; MSG_PEEK leaves the data in the socket and
    // MSG_DONTWAIT makes the call non-blocking.
    let n = unsafe {
        libc::recv(
            fd,
            peek.as_mut_ptr().cast(),
            peek.len(),
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        let err = std::io::Error::last_os_error().raw_os_error();
        return !matches!(err, Some(libc::EAGAIN) | Some(libc::EINTR));
    }
    // "HTTP/1.1 1xx" is an interim answer: the upstream still wants the body
    let interim = n >= 10 && peek.starts_with(b"HTTP/1.") && peek.get(9) == Some(&b'1');
    !interim
}

/// True when an idle pooled connection can no longer be used: the peer closed it (EOF), reset
/// it, or sent bytes nobody asked for.
pub fn idle_connection_unusable(fd: RawFd) -> bool {
    let mut byte = 0u8;
    // SAFETY: `byte` is a valid 1-byte buffer; MSG_PEEK leaves the data in the socket and
    // MSG_DONTWAIT makes the call non-blocking.
    let n = unsafe {
        libc::recv(
            fd,
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        let err = std::io::Error::last_os_error().raw_os_error();
        !matches!(err, Some(libc::EAGAIN) | Some(libc::EINTR))
    } else {
        true
    }
}
