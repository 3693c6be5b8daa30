//! The few syscalls that neither socket2 nor monoio expose: CPU affinity queries, shutting down
//! a socket's read side by fd (drain), a read that does not wait (`recv_ready`), the coarse
//! clock, and mimalloc's collect.
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

/// What a read that does not wait found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    /// This many bytes were appended.
    Data(usize),
    /// Nothing has arrived (or the buffer has no room).
    Nothing,
    /// The peer closed its side.
    Eof,
    /// Reset or another socket error.
    Error,
}

/// Appends to `buf`'s spare capacity what the socket already holds, without waiting.
pub fn recv_ready(fd: RawFd, buf: &mut Vec<u8>) -> Ready {
    let spare = buf.spare_capacity_mut();
    if spare.is_empty() {
        return Ready::Nothing;
    }
    // SAFETY: `spare` is writable memory of `spare.len()` bytes owned by `buf`; recv writes
    // at most that many bytes into it and MSG_DONTWAIT makes the call non-blocking.
    let n = unsafe {
        libc::recv(
            fd,
            spare.as_mut_ptr().cast(),
            spare.len(),
            libc::MSG_DONTWAIT,
        )
    };
    match n {
        0 => Ready::Eof,
        n if n > 0 => {
            let n = n as usize;
            // SAFETY: recv initialised the first `n` bytes of the spare capacity, and
            // `n <= spare.len()`, so `len + n` is within the capacity.
            unsafe { buf.set_len(buf.len() + n) };
            Ready::Data(n)
        }
        _ => match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EINTR) => Ready::Nothing,
            _ => Ready::Error,
        },
    }
}

/// What a write that does not wait did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// This many bytes were taken (0: the socket buffer is full).
    Took(usize),
    /// Reset or another socket error.
    Error,
}

/// Sends what of `data` the socket takes now, without waiting (and without SIGPIPE).
pub fn send_ready(fd: RawFd, data: &[u8]) -> Sent {
    if data.is_empty() {
        return Sent::Took(0);
    }
    // SAFETY: `data` is a valid initialised slice of `data.len()` bytes; send reads at most
    // that many, and MSG_DONTWAIT makes the call non-blocking.
    let n = unsafe {
        libc::send(
            fd,
            data.as_ptr().cast(),
            data.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    match n {
        n if n >= 0 => Sent::Took(n as usize),
        _ => match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EINTR) => Sent::Took(0),
            _ => Sent::Error,
        },
    }
}

/// The initialised bytes of a monoio buffer (what a write sends).
pub fn buf_bytes<T: monoio::buf::IoBuf>(buf: &T) -> &[u8] {
    // SAFETY: `IoBuf` promises `read_ptr()` points at `bytes_init()` initialised bytes that
    // live as long as `buf`, which the returned slice borrows.
    unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) }
}

/// Copies as much of `data` as fits into a monoio buffer's writable part and marks it
/// initialised (what a read delivers); returns how many bytes were copied.
pub fn fill_buf<T: monoio::buf::IoBufMut>(buf: &mut T, data: &[u8]) -> usize {
    let n = data.len().min(buf.bytes_total());
    // SAFETY: `IoBufMut` promises `write_ptr()` is valid for `bytes_total()` bytes of writes;
    // `n` is at most that, `data` is a distinct initialised slice, and `set_init(n)` then
    // covers exactly the bytes just written.
    unsafe {
        std::ptr::copy_nonoverlapping(data.as_ptr(), buf.write_ptr(), n);
        buf.set_init(n);
    }
    n
}

/// `CLOCK_MONOTONIC_COARSE`: the monotonic clock as of the last timer tick (1–10 ms old), read
/// from the vDSO without the cycle counter — a few nanoseconds against ≈ 30 for a precise read.
pub fn coarse_monotonic() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant Linux knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    if rc != 0 {
        return std::time::Duration::ZERO;
    }
    std::time::Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

/// Lets this thread's mimalloc heap return the pages freed since the last call (after its
/// purge delay) instead of waiting for its next allocation: a shard whose connections went
/// idle allocates nothing more, and would keep their buffers' memory.
pub fn collect_freed_memory() {
    // SAFETY: mi_collect takes no pointers and may be called from any thread at any time;
    // without mimalloc as the global allocator it only tidies an unused heap.
    unsafe { libmimalloc_sys::mi_collect(false) }
}

/// Copies what of `data` fits into `buf`'s writable part and marks it filled, as a read of
/// that many bytes would (an in-memory stream's read: `h2::pipe`); how many it copied.
pub fn fill<T: monoio::buf::IoBufMut>(buf: &mut T, data: &[u8]) -> usize {
    let n = data.len().min(buf.bytes_total());
    // SAFETY: `write_ptr` is valid for `bytes_total` bytes of writes (the IoBufMut contract)
    // and `n` is at most that; `data` is another allocation (an IoBufMut owns its memory).
    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), buf.write_ptr(), n) };
    // SAFETY: the first `n` bytes from `write_ptr` were just written.
    unsafe { buf.set_init(n) };
    n
}

/// The `n` bytes a finished read put at the start of `buf`'s writable part (`n` as the read
/// returned it; clamped to the buffer).
pub fn filled<T: monoio::buf::IoBufMut>(buf: &mut T, n: usize) -> &[u8] {
    let n = n.min(buf.bytes_total());
    // SAFETY: a read that returned `n` initialised the first `n` bytes at `write_ptr`, which
    // is valid for `bytes_total` bytes; the slice borrows `buf`, so nothing writes meanwhile.
    unsafe { std::slice::from_raw_parts(buf.write_ptr(), n) }
}

/// The initialised bytes of `buf`: what a write of it sends.
pub fn written<T: monoio::buf::IoBuf>(buf: &T) -> &[u8] {
    // SAFETY: `read_ptr` is valid for `bytes_init` initialised bytes (the IoBuf contract); the
    // slice borrows `buf`.
    unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) }
}
