//! The per-client reader: one OS thread per connection, named `client-<id>`.
//!
//! This thread reads its socket and nothing else. It blocks
//! in `read()` until the peer sends something, frames the bytes into lines,
//! parses each line (so the dispatcher never has to), and sends the result
//! into the hub's one channel. It never writes to any socket: replies, even
//! `ERR` for its own client, go through the dispatcher, so they stay in order
//! with everything else that client receives.

use std::io::{self, Read};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError};
use log::debug;

use crate::hub::batch_gate::BatchGate;
use crate::hub::budget::{self, Intake, Quota};
use crate::hub::events::Event;
use crate::hub::score::{Slot, State};
use crate::proto::client_line::Refusal;
use crate::proto::framing::{Inbound, LineFramer};
use crate::proto::router::ClientId;
use crate::proto::server_line::ErrorCode;
use crate::support::timeouts::is_timeout;

/// What one reader needs besides its socket and the channel.
#[derive(Debug, Clone)]
pub struct ReaderSettings {
    pub max_line: usize,
    /// `--line-timeout-ms`: how long a started line may stay unfinished.
    pub line_timeout: Option<Duration>,
    /// `--idle-timeout-ms`: how long the client may send nothing at all.
    pub idle_timeout: Option<Duration>,
    /// This client's share of the channel, and the channel's byte budget.
    pub quota: Arc<Quota>,
    pub intake: Arc<Intake>,
    /// This thread's place on the scoreboard (src/hub/score.rs): what it
    /// waits for.
    pub slot: Arc<Slot>,
    /// When the dispatcher's batch ends (src/hub/batch_gate.rs).
    pub gate: Arc<BatchGate>,
}

/// Runs one client's read loop until end of stream, an error, `/quit`, a
/// timeout, or the hub going away. `socket` is shared with the dispatcher:
/// this thread only reads from it, the dispatcher only writes to it.
pub fn run(id: ClientId, socket: Arc<TcpStream>, events: Sender<Event>, settings: ReaderSettings) {
    let mut reader = Reader {
        id,
        framer: LineFramer::new(settings.max_line).telnet(true), // telnet in char mode too
        socket,
        events,
        settings,
        started: false,
        line_since: None,
        read_timeout: None,
        last_read: Instant::now(),
    };
    if let Some(why) = reader.read_loop() {
        reader.closed(why);
    }
    reader.settings.slot.enter(State::Exited);
}

/// One reader thread's state. Kept out of the frame that blocks in
/// `read()`: every byte of stack that frame uses is resident memory, times
/// 10,000 clients (see "What a client costs" in docs/architecture.md).
struct Reader {
    id: ClientId,
    framer: LineFramer,
    socket: Arc<TcpStream>,
    events: Sender<Event>,
    settings: ReaderSettings,
    /// The dispatcher has heard of this client (see [`Quota::start`]).
    started: bool,
    /// When the unfinished line in the framer started arriving.
    line_since: Option<Instant>,
    /// The read timeout now set on the socket (the hub's clocks: idle and
    /// line timeouts are noticed by a read that returns `WouldBlock`).
    read_timeout: Option<Duration>,
    /// When the last bytes arrived (or the client connected).
    last_read: Instant,
}

/// What a reader does after one `read()`.
enum Next {
    Read,
    /// The connection ended: tell the dispatcher why.
    End(String),
    /// `/quit`, or the hub is stopping: nothing more to say.
    Done,
}

impl Reader {
    /// Reads until the connection ends; `Some(why)` to report to the
    /// dispatcher as `Closed`.
    fn read_loop(&mut self) -> Option<String> {
        loop {
            self.set_read_timeout();
            // This is where a client thread spends its life: parked in the
            // kernel until bytes arrive, the peer hangs up, or the
            // dispatcher shuts the socket down. The bytes land in the
            // framer's buffer.
            debug!("blocking in read()");
            self.settings.slot.enter(State::Read);
            let read = (&*self.socket).read(self.framer.spare());
            match self.after_read(read) {
                Next::Read => {}
                Next::End(why) => return Some(why),
                Next::Done => return None,
            }
        }
    }

    /// Tells the dispatcher the connection ended, and why. Its own frame,
    /// not `run`'s: the event is built only here, so the stack of 10,000
    /// idle readers never holds it (in a debug build, 4 kB more per
    /// client when it was inline: tests/capacity.rs).
    #[inline(never)]
    fn closed(&self, why: String) {
        debug!("reader done: {why}");
        // Ignored if the hub is already gone.
        let id = self.id;
        hand_over(&self.events, Event::Closed { id, why }, &self.settings.slot);
    }

    #[inline(never)]
    fn set_read_timeout(&mut self) {
        let s = &self.settings;
        let wanted = wait_at_most(self.line_since, s.line_timeout, s.idle_timeout);
        if needs_update(self.read_timeout, wanted) {
            let _ = self.socket.set_read_timeout(wanted);
            self.read_timeout = wanted;
        }
    }

    #[inline(never)]
    fn after_read(&mut self, read: io::Result<usize>) -> Next {
        let (line_timeout, idle_timeout) = (self.settings.line_timeout, self.settings.idle_timeout);
        let n = match read {
            Ok(0) => return Next::End("end of stream".to_string()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Next::Read,
            Err(e) if is_timeout(&e) => {
                let idle = idle_timeout.filter(|&limit| self.last_read.elapsed() >= limit);
                return match expired(self.line_since, line_timeout, idle) {
                    Some((code, why)) => self.kick(code, why),
                    None => Next::Read,
                };
            }
            Err(e) => return Next::End(format!("read error: {e}")),
        };
        debug!("read() returned {n} bytes");
        self.took(n);
        if !self.hand_over_lines() {
            debug!("reader done (quit or hub stopping)");
            return Next::Done;
        }
        self.line_since = match self.line_since {
            _ if !self.framer.in_line() => None,
            None => Some(self.last_read),
            since => since,
        };
        match expired(self.line_since, line_timeout, None) {
            Some((code, why)) => self.kick(code, why),
            None => Next::Read,
        }
    }

    /// Every complete line of this read, parsed, into the channel: all in
    /// one hand-over, unless the read held more than
    /// [`budget::HAND_OVER_LINES`] (a busy publisher's 64 KiB read holds
    /// about 1,000). False once the client said `/quit` (lines after it in
    /// the same read are ignored, as the contract says) or the hub is gone.
    fn hand_over_lines(&mut self) -> bool {
        let Some(first) = self.framer.next_inbound() else {
            return true;
        };
        if self.settings.gate.busy() {
            self.wait_for_next_batch();
        }
        let mut bytes = 0;
        let mut lines = Vec::new();
        let mut next = Some(first);
        while let Some(line) = next.take().or_else(|| self.framer.next_inbound()) {
            let quit = line.is_quit();
            bytes += budget::cost(&line);
            lines.push(line);
            if quit {
                self.send(lines, bytes);
                return false;
            }
            if lines.len() >= budget::HAND_OVER_LINES || bytes >= budget::HAND_OVER_BYTES {
                if !self.send(std::mem::take(&mut lines), bytes) {
                    return false;
                }
                bytes = 0;
            }
        }
        lines.is_empty() || self.send(lines, bytes)
    }

    /// The dispatcher is writing a batch: lines handed over now could not
    /// be routed before it ends anyway. So wait for its end
    /// (src/hub/batch_gate.rs), then take what else came meanwhile without
    /// waiting for more, and hand it all over at once.
    #[inline(never)]
    fn wait_for_next_batch(&mut self) {
        self.settings.slot.enter(State::NextBatch);
        self.settings.gate.wait();
        self.settings.slot.enter(State::HandOver);
        // Nothing more there, the end of the stream or an error: the
        // blocking read that comes next says so again.
        if let Ok(n @ 1..) = recv_now(&self.socket, self.framer.spare()) {
            self.took(n);
        }
    }

    /// `n` bytes arrived in the framer's spare room: counted for the live
    /// view, the idle clock restarted, the framer told.
    fn took(&mut self, n: usize) {
        self.settings.slot.read_returned(n);
        self.last_read = Instant::now();
        self.framer.filled(n);
    }

    /// Lines into the channel, within this client's budget (waits while it
    /// has too many lines in the channel). False if the hub is gone.
    fn send(&mut self, lines: Vec<Inbound>, bytes: usize) -> bool {
        let s = &self.settings;
        if !self.started {
            // The acceptor spawned this thread, then sent `Connected`: a
            // line must not overtake it.
            if !s.quota.wait_for_start() {
                return false;
            }
            self.started = true;
        }
        s.slot.lines_in(lines.len());
        let id = self.id;
        s.intake.take(&s.quota, lines.len(), bytes)
            && hand_over(&self.events, Event::Lines { id, lines, bytes }, &s.slot)
    }

    /// `ERR <code>` to the client, then the end of its connection.
    fn kick(&mut self, code: ErrorCode, why: String) -> Next {
        let refusal = Inbound::Refused(Refusal::new(code, why.clone()));
        let bytes = budget::cost(&refusal);
        self.send(vec![refusal], bytes);
        Next::End(format!("{code}: {why}"))
    }
}

/// The read timeout to set: until the unfinished line's deadline, or the
/// idle deadline (a read starts now, so a whole idle period), or none.
fn wait_at_most(
    line_since: Option<Instant>,
    line_timeout: Option<Duration>,
    idle_timeout: Option<Duration>,
) -> Option<Duration> {
    let line_left = line_since
        .zip(line_timeout)
        .map(|(since, limit)| limit.saturating_sub(since.elapsed()));
    let wait = match (line_left, idle_timeout) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    // A timeout of 0 would mean "no timeout" to the kernel.
    wait.map(|w| w.max(Duration::from_millis(1)))
}

/// Change the socket's read timeout only when it matters: to none, to a
/// longer one, or to one much shorter (not on every read of a long line).
fn needs_update(set: Option<Duration>, wanted: Option<Duration>) -> bool {
    match (set, wanted) {
        (Some(set), Some(wanted)) => set < wanted || set > wanted + wanted / 16,
        (set, wanted) => set != wanted,
    }
}

/// Which timeout has passed, if one has; `idle` is the idle timeout if the
/// client has sent nothing for that long.
fn expired(
    line_since: Option<Instant>,
    line_timeout: Option<Duration>,
    idle: Option<Duration>,
) -> Option<(ErrorCode, String)> {
    if let (Some(since), Some(limit)) = (line_since, line_timeout)
        && since.elapsed() >= limit
    {
        let ms = limit.as_millis();
        return Some((
            ErrorCode::LineTimeout,
            format!("a line must arrive within {ms} ms"),
        ));
    }
    if let Some(limit) = idle {
        let ms = limit.as_millis();
        return Some((
            ErrorCode::IdleTimeout,
            format!("nothing received for {ms} ms"),
        ));
    }
    None
}

/// The moment lines leave their client thread: one event (a read's parsed
/// lines) into the hub's channel. Returns false if the dispatcher is gone (shutting down).
///
/// Blocks while the channel is full: the dispatcher is behind, so this
/// client waits, stops reading its socket, and TCP slows its sender down.
/// (Its own budget, [`Intake::take`], was checked just before.)
/// A function of its own so a debugger can stop exactly here:
/// `break tcphub::hub::reader::hand_over` (docs/debugging.md).
///
/// It tries first without waiting, so the scoreboard can show a thread
/// `blocked on full channel` only when it really is (docs/live-view.md).
#[inline(never)]
pub fn hand_over(events: &Sender<Event>, event: Event, slot: &Slot) -> bool {
    match events.try_send(event) {
        Ok(()) => true,
        Err(TrySendError::Full(event)) => {
            slot.enter(State::ChannelFull);
            events.send(event).is_ok()
        }
        Err(TrySendError::Disconnected(_)) => false,
    }
}

/// `recv(2)` with `MSG_DONTWAIT`: what the socket holds now, without
/// waiting (`Ok(0)` also when it holds nothing). The socket stays blocking
/// for this thread's `read()`; only this one call does not wait (the same
/// trick as the dispatcher's `send_now`, src/hub/outbox.rs).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn recv_now(socket: &TcpStream, buffer: &mut [u8]) -> io::Result<usize> {
    use std::ffi::{c_int, c_void};
    use std::os::fd::AsRawFd;
    unsafe extern "C" {
        fn recv(fd: c_int, buf: *mut c_void, len: usize, flags: c_int) -> isize;
    }
    const MSG_DONTWAIT: c_int = 0x40;
    // SAFETY: `buffer` is valid for writes of its length for the duration
    // of the call, the kernel writes at most `len` bytes into it, and the
    // descriptor is open (the `TcpStream` is borrowed).
    let rc = unsafe {
        recv(
            socket.as_raw_fd(),
            buffer.as_mut_ptr().cast(),
            buffer.len(),
            MSG_DONTWAIT,
        )
    };
    match rc {
        0.. => Ok(rc as usize),
        _ => match io::Error::last_os_error() {
            e if is_timeout(&e) => Ok(0),
            e => Err(e),
        },
    }
}

/// Elsewhere: no read without waiting; the next `read()` takes the rest.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn recv_now(_socket: &TcpStream, _buffer: &mut [u8]) -> io::Result<usize> {
    Ok(0)
}
