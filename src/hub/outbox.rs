//! One client's write side, as the dispatcher keeps it: the socket, and the
//! bytes the kernel has not taken yet.
//!
//! The dispatcher is the only writer, so it must never wait on one socket
//! for long. [`Outbox::deliver`] hands the kernel what it takes *right now*
//! (a send that does not wait, see [`send_now`]); what is left is copied into
//! this client's `pending` buffer, and the dispatcher moves on to the next
//! recipient. On its next round (the next batch, or a retry a few
//! milliseconds later if nothing else happens) it tries again, older bytes
//! first, so the order of lines never changes.
//!
//! This is the user-space buffer that Node's `socket.write` keeps for you,
//! with the bounds Node leaves to you: `--max-pending` bytes at once,
//! `--soft-pending` bytes for `--soft-pending-ms`
//! ([`crate::proto::pending_limit`]), and `--write-timeout-ms` with no
//! byte taken at all. A client past any is cut off (see
//! [`Outbox::overdue`], [`Outbox::over_limit`]).

use std::io::{self, IoSlice, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::hub::score::ClientSlot;
use crate::proto::pending_limit::{OverSoft, PendingLimits};
use crate::support::timeouts::is_timeout;

/// One admitted client's socket and what is waiting for it.
#[derive(Debug)]
pub struct Outbox {
    pub socket: Arc<TcpStream>,
    pub peer: SocketAddr,
    /// Bytes not yet taken by the kernel are `pending[head..]`.
    pending: Vec<u8>,
    head: usize,
    /// Bytes the kernel has taken, ever.
    written: u64,
    /// While bytes are pending: since when the kernel has taken none of
    /// them (since they began to wait, or since its last progress). A
    /// client that takes nothing for the write timeout has stopped
    /// reading; one that is merely behind keeps making progress, and the
    /// pending limits decide how far behind it may be.
    since: Option<Instant>,
    /// Since when more than `--soft-pending` bytes have waited.
    over_soft: OverSoft,
    /// The router is done with this client: close it once drained.
    pub closing: bool,
}

impl Outbox {
    pub fn new(socket: Arc<TcpStream>, peer: SocketAddr) -> Self {
        Outbox {
            socket,
            peer,
            pending: Vec::new(),
            head: 0,
            written: 0,
            since: None,
            over_soft: OverSoft::default(),
            closing: false,
        }
    }

    /// Bytes the kernel has taken, ever.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Bytes waiting for the kernel to take them.
    pub fn pending(&self) -> usize {
        self.pending.len() - self.head
    }

    /// Sends `chunks` after whatever is already pending, without waiting:
    /// what the kernel does not take now is kept. `Err` if keeping it would
    /// pass the hard limit, if it has been over the soft limit for too
    /// long at `now_ms` (any clock, in milliseconds), or the socket failed.
    pub fn deliver(
        &mut self,
        chunks: &[IoSlice<'_>],
        limits: &PendingLimits,
        now_ms: u64,
    ) -> Result<(), String> {
        self.drain()?;
        let mut chunks = chunks.iter();
        if self.pending() == 0 {
            // Nothing older waits: straight to the kernel, no copy, one
            // syscall for the whole share.
            let mut n = send_vectored_now(&self.socket, chunks.as_slice()).map_err(write_error)?;
            self.written += n as u64;
            for chunk in chunks.by_ref() {
                if n < chunk.len() {
                    self.keep(&chunk[n..], limits)?;
                    break;
                }
                n -= chunk.len();
            }
        }
        for chunk in chunks {
            self.keep(chunk, limits)?;
        }
        match self.over_limit(limits, now_ms) {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }

    /// Why this client must be cut off for what it has pending at `now_ms`
    /// (over the soft limit too long), if it must; starts or stops its
    /// soft-limit clock. The dispatcher asks this of every client behind
    /// now and then, since one that gets nothing new is never delivered to.
    pub fn over_limit(&mut self, limits: &PendingLimits, now_ms: u64) -> Option<String> {
        let pending = self.pending();
        limits
            .check(&mut self.over_soft, pending, now_ms)
            .map(|breach| breach.to_string())
    }

    /// Hands the kernel as much of the pending bytes as it takes now.
    /// Returns `Ok(true)` once nothing is pending.
    pub fn drain(&mut self) -> Result<bool, String> {
        let before = self.written;
        while self.pending() > 0 {
            let n = send_now(&self.socket, &self.pending[self.head..]).map_err(write_error)?;
            if n == 0 {
                break;
            }
            self.head += n;
            self.written += n as u64;
        }
        if self.pending() == 0 {
            // Nothing kept once drained: 10,000 clients that were each
            // briefly behind in a join storm must not keep 10,000 buffers.
            self.pending = Vec::new();
            self.head = 0;
            self.since = None;
            self.over_soft = OverSoft::default();
            return Ok(true);
        }
        // Progress: the write timeout counts from here again.
        if self.written > before {
            self.since = Some(Instant::now());
        }
        Ok(false)
    }

    /// Why this client must be cut off, if the kernel has taken none of
    /// its pending bytes for `timeout` or more.
    pub fn overdue(&self, now: Instant, timeout: Duration) -> Option<String> {
        let since = self.since?;
        (now.duration_since(since) >= timeout).then(|| {
            format!(
                "not reading: {} bytes pending, none taken for {} ms",
                self.pending(),
                timeout.as_millis()
            )
        })
    }

    /// Since when its pending bytes have waited with no progress (`None`:
    /// none wait): what [`Outbox::overdue`] compares with the timeout.
    pub fn waiting_since(&self) -> Option<Instant> {
        self.since
    }

    /// Forgets what is pending (the client is being cut off).
    pub fn discard(&mut self) {
        self.pending = Vec::new();
        self.head = 0;
        self.since = None;
        self.over_soft = OverSoft::default();
    }

    fn keep(&mut self, bytes: &[u8], limits: &PendingLimits) -> Result<(), String> {
        if let Some(breach) = limits.over_hard(self.pending() + bytes.len()) {
            return Err(breach.to_string());
        }
        if self.head > 0 && self.head >= self.pending.len() / 2 {
            // Reuse the front of the buffer instead of growing it.
            self.pending.drain(..self.head);
            self.head = 0;
        }
        if self.since.is_none() {
            self.since = Some(Instant::now());
        }
        self.pending.extend_from_slice(bytes);
        Ok(())
    }
}

fn write_error(e: io::Error) -> String {
    format!("write error: {e}")
}

/// `send(2)` with `MSG_DONTWAIT`: whatever the kernel takes without
/// waiting, maybe 0 bytes. The socket stays a blocking socket for its
/// reader thread (`set_nonblocking` would change it for both threads,
/// since they share one descriptor); only this one call does not wait.
///
/// std has no such call, so this and [`send_vectored_now`] are two of the
/// hub's other `unsafe` blocks (one raises the listen backlog, in
/// `hub/mod.rs`; the reader's `recv_now`, in `hub/reader.rs`, is this
/// call's twin for reading).
#[cfg(unix)]
pub fn send_now(socket: &TcpStream, bytes: &[u8]) -> io::Result<usize> {
    use std::ffi::{c_int, c_void};
    use std::os::fd::AsRawFd;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    const MSG_DONTWAIT: c_int = 0x40;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    const MSG_DONTWAIT: c_int = 0x80;
    // A peer gone does not raise SIGPIPE (Rust programs ignore it anyway).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    const MSG_NOSIGNAL: c_int = 0x4000;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    const MSG_NOSIGNAL: c_int = 0;
    unsafe extern "C" {
        fn send(fd: c_int, buf: *const c_void, len: usize, flags: c_int) -> isize;
    }
    if bytes.is_empty() {
        return Ok(0);
    }
    loop {
        // SAFETY: `bytes` is a valid slice for the duration of the call, the
        // kernel only reads `len` bytes from it, and the descriptor is open
        // (the `TcpStream` is borrowed).
        let rc = unsafe {
            send(
                socket.as_raw_fd(),
                bytes.as_ptr().cast(),
                bytes.len(),
                MSG_DONTWAIT | MSG_NOSIGNAL,
            )
        };
        if rc >= 0 {
            return Ok(rc as usize);
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => continue,
            _ if is_timeout(&e) => return Ok(0),
            _ => return Err(e),
        }
    }
}

/// [`send_now`] for several slices at once: `sendmsg(2)` with
/// `MSG_DONTWAIT`, the non-waiting twin of `writev` (one syscall per
/// recipient; strace shows `sendmsg`).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn send_vectored_now(socket: &TcpStream, chunks: &[IoSlice<'_>]) -> io::Result<usize> {
    use std::ffi::{c_int, c_void};
    use std::os::fd::AsRawFd;
    /// `struct msghdr` as Linux lays it out on 64- and 32-bit targets.
    #[repr(C)]
    struct MsgHdr {
        name: *mut c_void,
        name_len: u32,
        iov: *const IoSlice<'static>,
        iov_len: usize,
        control: *mut c_void,
        control_len: usize,
        flags: c_int,
    }
    unsafe extern "C" {
        fn sendmsg(fd: c_int, msg: *const MsgHdr, flags: c_int) -> isize;
    }
    const MSG_DONTWAIT: c_int = 0x40;
    const MSG_NOSIGNAL: c_int = 0x4000;
    if chunks.is_empty() {
        return Ok(0);
    }
    let msg = MsgHdr {
        name: std::ptr::null_mut(),
        name_len: 0,
        iov: chunks.as_ptr().cast(),
        iov_len: chunks.len().min(1024),
        control: std::ptr::null_mut(),
        control_len: 0,
        flags: 0,
    };
    loop {
        // SAFETY: `IoSlice` is ABI-compatible with `struct iovec` on Unix
        // (std guarantees it); `msg` points at `chunks`, which outlive the
        // call; the kernel only reads them. The descriptor is open (the
        // `TcpStream` is borrowed).
        let rc = unsafe { sendmsg(socket.as_raw_fd(), &msg, MSG_DONTWAIT | MSG_NOSIGNAL) };
        if rc >= 0 {
            return Ok(rc as usize);
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => continue,
            _ if is_timeout(&e) => return Ok(0),
            _ => return Err(e),
        }
    }
}

/// Elsewhere: one [`send_now`] per slice, stopping at the first short one.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn send_vectored_now(socket: &TcpStream, chunks: &[IoSlice<'_>]) -> io::Result<usize> {
    let mut total = 0;
    for chunk in chunks {
        let n = send_now(socket, chunk)?;
        total += n;
        if n < chunk.len() {
            break;
        }
    }
    Ok(total)
}

/// Elsewhere: a write bounded by the socket's (short) write timeout.
#[cfg(not(unix))]
pub fn send_now(mut socket: &TcpStream, bytes: &[u8]) -> io::Result<usize> {
    match socket.write(bytes) {
        Ok(n) => Ok(n),
        Err(e) if is_timeout(&e) => Ok(0),
        Err(e) => Err(e),
    }
}

/// The old way, for `--blocking-writes`: writes all `chunks`, giving up once
/// `timeout` has passed in total.
///
/// The socket's own write timeout (`SO_SNDTIMEO`, set by the acceptor) ends a
/// write that makes no progress at all. A client that reads a trickle makes
/// some progress on every write, so the total time is checked here as well.
/// `start` is when the write began; `client` is where the bytes still held
/// for this client, and those written, are counted for the live view.
pub fn write_all_within(
    mut socket: &TcpStream,
    mut chunks: &mut [IoSlice<'_>],
    timeout: Duration,
    start: Instant,
    client: Option<&ClientSlot>,
) -> io::Result<()> {
    let mut shortened = false;
    let mut left_to_write: usize = chunks.iter().map(|c| c.len()).sum();
    if let Some(c) = client {
        c.set_pending(left_to_write);
    }
    let result = loop {
        if chunks.is_empty() {
            break Ok(());
        }
        // Blocks while the client's kernel buffer is full.
        match socket.write_vectored(chunks) {
            Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                if let Some(c) = client {
                    c.wrote_bytes(n);
                    left_to_write -= n;
                    c.set_pending(left_to_write);
                }
                IoSlice::advance_slices(&mut chunks, n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
        if chunks.is_empty() {
            break Ok(());
        }
        // A partial write: the buffer is full. Wait at most what is left.
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            break Err(io::ErrorKind::TimedOut.into());
        }
        shortened = true;
        socket.set_write_timeout(Some(left))?;
    };
    if shortened {
        let _ = socket.set_write_timeout(Some(timeout));
    }
    result
}
