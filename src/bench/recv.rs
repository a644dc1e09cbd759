//! The receiving side of the bench: what one connection has seen
//! ([`Tally`]), and the threads that read many connections ([`sweep`]).
//!
//! A fan-out run delivers millions of lines, and a `conns` run makes the
//! server send N² `JOIN` lines: if the bench read them slowly it would
//! measure itself, or get cut off as a slow consumer. So connections are
//! non-blocking and a few sweeper threads visit them in turn, reading up to
//! 256 KiB at a time; a whole read costs one clock reading; a chat line is
//! parsed at fixed offsets without scanning it (see [`super::wire`]); and
//! once a `conns` client has its `WELCOME`, its bytes are not looked at.
//!
//! Without `epoll` (std has none, and the bench has no libc), an idle
//! fan-out sweeper backs off: a few yields, then sleeps of 50 µs, then of
//! 1 ms once nothing has arrived for a while. Latencies therefore include up
//! to about 0.1 ms of the bench's own polling, the same for every server.
//! (See [`Pace`].)

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TryRecvError};

use super::balance::{Gauge, Handover};
use super::stats::Histogram;
use super::wire::{find_newline, msg_text_start, parse_chat_text};

/// Where a connection is in the bench's script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Connected; its first line must be `WELCOME <nick>`.
    AwaitWelcome,
    /// Has its nick; `JOIN` lines of later connections are noise.
    Welcomed,
    /// Sent `/ping`; everything before `PONG` is noise.
    Syncing,
    /// After `PONG`: counting chat lines.
    Counting,
    /// A `conns` client after `WELCOME`: bytes are read and thrown away.
    Discarding,
}

/// How a connection ended early, if it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The server answered `ERR server-full`.
    Refused,
    /// The server closed it, or reading failed.
    Closed(String),
}

/// What the bench expects on one connection.
#[derive(Debug, Clone, Copy)]
pub struct Expect {
    /// Number of publishers (sequence numbers are kept per publisher).
    pub publishers: usize,
    /// Chat lines this connection must receive.
    pub lines: u64,
    /// The index of this connection's own publisher, if it is one: it must
    /// never get its own lines back.
    pub own: Option<usize>,
    /// Bytes of a chat line's text (`--size` minus the `\n`).
    pub text_len: usize,
    /// A raw relay: lines arrive as sent (no `MSG <nick> ` prefix), there
    /// is no `WELCOME`, and a `SYNC` line stands for `PONG`.
    pub raw: bool,
}

/// What a connection expects before the publishers' totals are known (a
/// timed run): never complete until [`Tally::finalize`].
pub const UNTIL_TOLD: u64 = u64::MAX;

/// The line a raw publisher repeats until every subscriber has seen it.
pub const SYNC_LINE: &[u8] = b"SYNC";

/// Everything one connection has seen. Pure bookkeeping, no IO: fed with
/// whatever bytes a read returned.
#[derive(Debug)]
pub struct Tally {
    phase: Phase,
    expect: Option<Expect>,
    partial: Vec<u8>,
    next_seq: Vec<u64>,
    /// The nick from `WELCOME`.
    pub nick: Option<String>,
    /// When `WELCOME` arrived (ns since the bench's epoch).
    pub welcome_ns: Option<u64>,
    /// Chat lines counted (in order or not).
    pub received: u64,
    /// Chat lines that came before an earlier one of the same publisher, or
    /// after a gap (a later one arrived first).
    pub out_of_order: u64,
    /// Lines other than ours while counting (`LEAVE`, say), and our own
    /// lines echoed back to their publisher.
    pub other_lines: u64,
    /// When the last chat line arrived (ns since the bench's epoch).
    pub last_ns: u64,
    /// Latencies are recorded only for lines sent at or after this time
    /// (ns since the bench's epoch): the warm-up is not measured.
    pub record_from_ns: u64,
    /// Set if the connection ended early.
    pub end: Option<End>,
}

/// A partial line longer than this is not ours: it is dropped, not kept.
const MAX_PARTIAL: usize = 1 << 20;

impl Tally {
    /// A connection of a fan-out run, which counts chat lines after `PONG`.
    pub fn counting(expect: Expect) -> Self {
        Tally {
            phase: if expect.raw {
                Phase::Syncing
            } else {
                Phase::AwaitWelcome
            },
            next_seq: vec![0; expect.publishers],
            expect: Some(expect),
            ..Tally::discarding()
        }
    }

    /// A connection of a `conns` run: only its `WELCOME` matters.
    pub fn discarding() -> Self {
        Tally {
            phase: Phase::AwaitWelcome,
            expect: None,
            partial: Vec::new(),
            next_seq: Vec::new(),
            nick: None,
            welcome_ns: None,
            received: 0,
            out_of_order: 0,
            other_lines: 0,
            last_ns: 0,
            record_from_ns: 0,
            end: None,
        }
    }

    /// A timed run is over: publisher `p` sent `sent[p]` lines. From now on
    /// this connection expects all of them but its own publisher's.
    pub fn finalize(&mut self, sent: &[u64]) {
        if let Some(e) = &mut self.expect
            && e.lines == UNTIL_TOLD
        {
            e.lines = sent
                .iter()
                .enumerate()
                .filter(|&(p, _)| Some(p) != e.own)
                .map(|(_, n)| n)
                .sum();
        }
    }

    /// True on a raw relay's connection.
    pub fn is_raw(&self) -> bool {
        self.expect.is_some_and(|e| e.raw)
    }

    /// Where this connection is.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Chat lines this connection must receive (0 for a `conns` client).
    pub fn expected(&self) -> u64 {
        self.expect.map_or(0, |e| e.lines)
    }

    /// Expected lines that never came.
    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.received)
    }

    /// True once every expected line is in (counting phase only).
    pub fn is_complete(&self) -> bool {
        self.phase == Phase::Counting && self.received >= self.expected()
    }

    /// The bench sent `/ping`: from now on wait for `PONG`.
    pub fn start_sync(&mut self) {
        if self.phase == Phase::Welcomed {
            self.phase = Phase::Syncing;
        }
    }

    /// Feeds the bytes of one read, received at `now_ns`; latencies of chat
    /// lines go into `latency`.
    pub fn feed(&mut self, mut bytes: &[u8], now_ns: u64, latency: &mut Histogram) {
        if self.phase == Phase::Discarding {
            return;
        }
        if !self.partial.is_empty() {
            match find_newline(bytes) {
                None => {
                    self.keep_partial(bytes);
                    return;
                }
                Some(i) => {
                    let mut line = std::mem::take(&mut self.partial);
                    line.extend_from_slice(&bytes[..i]);
                    self.line(&line, now_ns, latency);
                    line.clear();
                    self.partial = line;
                    bytes = &bytes[i + 1..];
                }
            }
        }
        while !bytes.is_empty() && self.phase != Phase::Discarding {
            if self.phase == Phase::Counting
                && let Some(used) = self.fast_chat(bytes, now_ns, latency)
            {
                bytes = &bytes[used..];
                continue;
            }
            match find_newline(bytes) {
                Some(i) => {
                    self.line(&bytes[..i], now_ns, latency);
                    bytes = &bytes[i + 1..];
                }
                None => {
                    self.keep_partial(bytes);
                    return;
                }
            }
        }
    }

    fn keep_partial(&mut self, bytes: &[u8]) {
        if self.partial.len() + bytes.len() > MAX_PARTIAL {
            self.partial.clear();
            self.other_lines += 1;
        } else {
            self.partial.extend_from_slice(bytes);
        }
    }

    /// The common case while counting: a whole `MSG <nick> <our text>\n` at
    /// the start of `bytes`, parsed without scanning. Returns the bytes used.
    fn fast_chat(&mut self, bytes: &[u8], now_ns: u64, latency: &mut Histogram) -> Option<usize> {
        let expect = self.expect?;
        let text_len = expect.text_len;
        let start = if expect.raw {
            0
        } else {
            msg_text_start(bytes)?
        };
        let end = start + text_len;
        if bytes.get(end) != Some(&b'\n') {
            return None;
        }
        let chat = parse_chat_text(&bytes[start..end])?;
        self.count(chat.publisher, chat.seq, chat.sent_ns, now_ns, latency);
        Some(end + 1)
    }

    /// One whole line (without its `\n`).
    fn line(&mut self, line: &[u8], now_ns: u64, latency: &mut Histogram) {
        match self.phase {
            Phase::AwaitWelcome => {
                if let Some(nick) = line.strip_prefix(b"WELCOME ") {
                    self.nick = Some(String::from_utf8_lossy(nick).into_owned());
                    self.welcome_ns = Some(now_ns);
                    self.phase = if self.expect.is_some() {
                        Phase::Welcomed
                    } else {
                        Phase::Discarding
                    };
                } else if line.starts_with(b"ERR server-full") {
                    self.end = Some(End::Refused);
                } else {
                    self.other_lines += 1;
                }
            }
            Phase::Welcomed | Phase::Discarding => {}
            Phase::Syncing => {
                let sync: &[u8] = if self.is_raw() { SYNC_LINE } else { b"PONG" };
                if line == sync {
                    self.phase = Phase::Counting;
                }
            }
            // A raw publisher may repeat SYNC a few times before it sees
            // everyone synced: those are not noise.
            Phase::Counting if self.is_raw() && line == SYNC_LINE => {}
            Phase::Counting => {
                let start = if self.is_raw() {
                    Some(0)
                } else {
                    msg_text_start(line)
                };
                let chat = start.and_then(|s| parse_chat_text(&line[s..]));
                match chat {
                    Some(c) => self.count(c.publisher, c.seq, c.sent_ns, now_ns, latency),
                    None => self.other_lines += 1,
                }
            }
        }
    }

    fn count(
        &mut self,
        publisher: usize,
        seq: u64,
        sent_ns: u64,
        now_ns: u64,
        latency: &mut Histogram,
    ) {
        if self.expect.and_then(|e| e.own) == Some(publisher) {
            self.other_lines += 1;
            return;
        }
        let Some(next) = self.next_seq.get_mut(publisher) else {
            self.other_lines += 1;
            return;
        };
        if seq == *next {
            *next += 1;
        } else {
            self.out_of_order += 1;
            if seq > *next {
                *next = seq + 1;
            }
        }
        self.received += 1;
        self.last_ns = now_ns;
        if sent_ns >= self.record_from_ns {
            latency.record(now_ns.saturating_sub(sent_ns));
        }
    }
}

/// The script's stage, shared by the main thread and every reader.
pub mod stage {
    /// Connecting; readers wait for `WELCOME`s.
    pub const CONNECT: u8 = 0;
    /// Every connection is welcomed: send `/ping`, wait for `PONG`.
    pub const SYNC: u8 = 1;
    /// Publishers are sending; readers count.
    pub const MEASURE: u8 = 2;
    /// Over (done or timed out): readers return what they have.
    pub const STOP: u8 = 3;
}

/// Counters the main thread watches (progress, "is everyone there yet?").
#[derive(Debug)]
pub struct Shared {
    /// The bench's clock: every timestamp is nanoseconds since this.
    pub epoch: Instant,
    stage: AtomicU8,
    /// Connections that got `WELCOME`.
    pub welcomed: AtomicUsize,
    /// Connections that got `PONG` after their `/ping`.
    pub synced: AtomicUsize,
    /// Connections that received every expected line.
    pub complete: AtomicUsize,
    /// Connections that ended early (refused, closed, read error).
    pub ended: AtomicUsize,
    /// Chat lines received so far, over all connections.
    pub received: AtomicU64,
    /// Bytes read so far, over all connections.
    pub bytes: AtomicU64,
    /// Set by a reader that found a failure worth stopping for.
    pub failed: AtomicBool,
    /// Latencies count for lines sent from this time on (ns since the
    /// epoch; `u64::MAX` during a warm-up).
    pub record_from_ns: AtomicU64,
    /// A timed run's lines per publisher, once the publishers have stopped.
    pub sent: OnceLock<Vec<u64>>,
}

impl Shared {
    /// Fresh counters; the epoch is now.
    pub fn new() -> Self {
        Shared {
            epoch: Instant::now(),
            stage: AtomicU8::new(stage::CONNECT),
            welcomed: AtomicUsize::new(0),
            synced: AtomicUsize::new(0),
            complete: AtomicUsize::new(0),
            ended: AtomicUsize::new(0),
            received: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            failed: AtomicBool::new(false),
            record_from_ns: AtomicU64::new(0),
            sent: OnceLock::new(),
        }
    }

    /// Nanoseconds since the epoch.
    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// The current stage (see [`stage`]).
    pub fn stage(&self) -> u8 {
        self.stage.load(Ordering::Acquire)
    }

    /// Moves everyone to `stage`.
    pub fn set_stage(&self, stage: u8) {
        self.stage.store(stage, Ordering::Release);
    }
}

impl Default for Shared {
    fn default() -> Self {
        Self::new()
    }
}

/// One connection in a reader's care.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    /// What it has seen.
    pub tally: Tally,
    ping_sent: usize,
    counted_welcome: bool,
    counted_sync: bool,
    counted_complete: bool,
    counted_end: bool,
}

impl Conn {
    /// Wraps a connected stream (blocking or not, as the reader wants).
    pub fn new(stream: TcpStream, tally: Tally) -> Self {
        Conn {
            stream,
            tally,
            ping_sent: 0,
            counted_welcome: false,
            counted_sync: false,
            counted_complete: false,
            counted_end: false,
        }
    }

    fn done(&self, stage: u8) -> bool {
        self.tally.end.is_some() || (stage >= stage::MEASURE && self.tally.is_complete())
    }

    /// Sends (the rest of) `/ping` once the stage says so; never blocks long.
    fn maybe_ping(&mut self, stage: u8) {
        const PING: &[u8] = b"/ping\n";
        if stage < stage::SYNC || self.tally.phase() == Phase::AwaitWelcome || self.tally.is_raw() {
            return;
        }
        self.tally.start_sync();
        while self.ping_sent < PING.len() {
            match self.stream.write(&PING[self.ping_sent..]) {
                Ok(0) => {
                    self.tally.end = Some(End::Closed("write returned 0".into()));
                    return;
                }
                Ok(n) => self.ping_sent += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_would_block(&e) => return,
                Err(e) => {
                    self.tally.end = Some(End::Closed(format!("write failed: {e}")));
                    return;
                }
            }
        }
    }

    /// Publishes this connection's transitions to the shared counters.
    fn report(&mut self, shared: &Shared) {
        if !self.counted_welcome && self.tally.welcome_ns.is_some() {
            self.counted_welcome = true;
            shared.welcomed.fetch_add(1, Ordering::Relaxed);
        }
        if !self.counted_sync && self.tally.phase() == Phase::Counting {
            self.counted_sync = true;
            shared.synced.fetch_add(1, Ordering::Relaxed);
        }
        if !self.counted_complete && self.tally.is_complete() {
            self.counted_complete = true;
            shared.complete.fetch_add(1, Ordering::Relaxed);
        }
        if !self.counted_end && self.tally.end.is_some() {
            self.counted_end = true;
            shared.ended.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn is_would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// What a reader hands back when it is done.
#[derive(Debug)]
pub struct Swept {
    /// Every connection's tally, in the order the reader got them.
    pub tallies: Vec<Tally>,
    /// Latencies of every chat line this reader counted.
    pub latency: Histogram,
    /// The connections, still open: the caller closes them once every
    /// reader is done, so no client sees another's `LEAVE` mid-run.
    pub streams: Vec<TcpStream>,
}

/// Largest single read.
const READ_BUFFER: usize = 256 * 1024;
/// Reads per connection per sweep, so one busy connection cannot starve
/// the others.
const READS_PER_VISIT: usize = 4;

/// How a reader waits between sweeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// One blocking connection with a short read timeout (a publisher's):
    /// wait in `read()` itself.
    Blocking,
    /// Fan-out: sweep again at once while data flows; back off only when
    /// idle (latency is being measured).
    Eager,
    /// Idle clients (`conns`): pause 2 ms after every sweep. They receive
    /// only `JOIN` lines, far less than their socket buffers hold, so
    /// reading often would only take CPU from the server under test.
    Lazy,
}

/// A reader thread's life: take connections from `incoming` (until it is
/// closed), and read all of them in turn until each is done (fan-out); it
/// returns once the stage is [`stage::STOP`].
pub fn sweep(incoming: Receiver<Conn>, shared: Arc<Shared>, pace: Pace) -> Swept {
    sweep_balanced(incoming, None, shared, pace)
}

/// [`sweep`], for a receiver that [`super::balance::Receivers`] watches:
/// it publishes its thread id and open connections in the gauge, and hands
/// connections over when ordered to.
pub fn sweep_balanced(
    incoming: Receiver<Conn>,
    control: Option<(Receiver<Handover>, Arc<Gauge>)>,
    shared: Arc<Shared>,
    pace: Pace,
) -> Swept {
    if let Some((_, gauge)) = &control {
        gauge
            .tid
            .store(super::cpu::my_tid().unwrap_or(0), Ordering::Relaxed);
    }
    let mut buffer = vec![0u8; READ_BUFFER];
    let mut conns: Vec<Conn> = Vec::new();
    let mut latency = Histogram::new();
    let mut more_coming = true;
    let mut idle_sweeps: u32 = 0;
    let mut last_told = (0, false, 0);
    loop {
        while more_coming {
            match incoming.try_recv() {
                Ok(conn) => conns.push(conn),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => more_coming = false,
            }
        }
        let stage = shared.stage();
        if stage == stage::STOP {
            break;
        }
        tell(&mut conns, &shared, &mut last_told);
        if let Some((orders, gauge)) = &control {
            hand_over(&mut conns, orders, stage);
            gauge.open.store(
                conns.iter().filter(|c| !c.done(stage)).count(),
                Ordering::Relaxed,
            );
        }
        let (mut got, mut chats, mut open) = (0u64, 0u64, 0usize);
        for conn in &mut conns {
            if conn.done(stage) {
                continue;
            }
            open += 1;
            conn.maybe_ping(stage);
            let (bytes, lines) = read_conn(conn, &mut buffer, &shared, &mut latency);
            got += bytes;
            chats += lines;
            conn.report(&shared);
        }
        if got > 0 {
            shared.bytes.fetch_add(got, Ordering::Relaxed);
            shared.received.fetch_add(chats, Ordering::Relaxed);
        }
        // Done with every connection, the thread stays until STOP: the
        // window's end sample must still find it in /proc/self/task, or
        // its CPU time would be missing from the report.
        if !more_coming && open == 0 && stage >= stage::MEASURE {
            thread::sleep(Duration::from_millis(1));
            continue;
        }
        pause(pace, got > 0, &mut idle_sweeps);
    }
    let (streams, tallies) = conns.into_iter().map(|c| (c.stream, c.tally)).unzip();
    Swept {
        tallies,
        latency,
        streams,
    }
}

/// Carries out any [`Handover`] ordered: the last `count` connections not
/// done yet go to the other receiver, whole (tally and all).
fn hand_over(conns: &mut Vec<Conn>, orders: &Receiver<Handover>, stage: u8) {
    while let Ok(order) = orders.try_recv() {
        let mut given = 0;
        let mut i = conns.len();
        while i > 0 && given < order.count {
            i -= 1;
            if conns[i].done(stage) {
                continue;
            }
            let conn = conns.swap_remove(i);
            if let Err(back) = order.to.send(conn) {
                // The other receiver is gone: keep it.
                conns.push(back.into_inner());
                return;
            }
            given += 1;
        }
    }
}

/// Tells the connections about a warm-up's end, or a timed run's totals,
/// once (and again if new connections came).
fn tell(conns: &mut [Conn], shared: &Shared, last_told: &mut (u64, bool, usize)) {
    let told = (
        shared.record_from_ns.load(Ordering::Relaxed),
        shared.sent.get().is_some(),
        conns.len(),
    );
    if told == *last_told {
        return;
    }
    for conn in conns.iter_mut() {
        conn.tally.record_from_ns = told.0;
        if let Some(sent) = shared.sent.get() {
            conn.tally.finalize(sent);
        }
        // It may be complete already, with nothing more to read.
        conn.report(shared);
    }
    *last_told = told;
}

/// Up to [`READS_PER_VISIT`] reads of one connection: (bytes, chat lines).
fn read_conn(
    conn: &mut Conn,
    buffer: &mut [u8],
    shared: &Shared,
    latency: &mut Histogram,
) -> (u64, u64) {
    let (mut got, mut chats) = (0u64, 0u64);
    for _ in 0..READS_PER_VISIT {
        match conn.stream.read(buffer) {
            Ok(0) => {
                conn.tally.end = Some(End::Closed("closed by the server".into()));
                break;
            }
            Ok(n) => {
                got += n as u64;
                let before = conn.tally.received;
                conn.tally.feed(&buffer[..n], shared.now_ns(), latency);
                chats += conn.tally.received - before;
                if n < buffer.len() {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_would_block(&e) => break,
            Err(e) => {
                conn.tally.end = Some(End::Closed(format!("read failed: {e}")));
                break;
            }
        }
    }
    (got, chats)
}

/// Waits between sweeps as `pace` says (see [`Pace`]).
fn pause(pace: Pace, got_some: bool, idle_sweeps: &mut u32) {
    match pace {
        Pace::Blocking => return,
        Pace::Lazy => {
            thread::sleep(Duration::from_millis(if got_some { 2 } else { 10 }));
            return;
        }
        Pace::Eager if got_some => {
            *idle_sweeps = 0;
            return;
        }
        Pace::Eager => {}
    }
    *idle_sweeps = idle_sweeps.saturating_add(1);
    if *idle_sweeps <= 3 {
        thread::yield_now();
    } else if *idle_sweeps <= 200 {
        thread::sleep(Duration::from_micros(50));
    } else {
        thread::sleep(Duration::from_millis(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::wire::encode_chat;

    const SIZE: usize = 64;

    fn expect(publishers: usize, lines: u64, own: Option<usize>) -> Expect {
        Expect {
            publishers,
            lines,
            own,
            text_len: SIZE - 1,
            raw: false,
        }
    }

    fn raw_line(seq: u64, sent_ns: u64) -> Vec<u8> {
        let mut text = Vec::new();
        encode_chat(&mut text, 0, seq, sent_ns, SIZE);
        text
    }

    #[test]
    fn raw_lines_count_after_sync_and_gaps_are_lost() {
        let mut h = Histogram::new();
        let mut t = Tally::counting(Expect {
            raw: true,
            ..expect(1, 4, None)
        });
        assert_eq!(t.phase(), Phase::Syncing);
        t.feed(b"SYNC\nSYNC\n", 0, &mut h);
        assert_eq!(t.phase(), Phase::Counting);
        let mut stream = b"SYNC\n".to_vec();
        for seq in [0, 1, 3] {
            stream.extend(raw_line(seq, 5));
        }
        // in two reads, cut mid-line
        t.feed(&stream[..70], 10, &mut h);
        t.feed(&stream[70..], 10, &mut h);
        assert_eq!((t.received, t.other_lines), (3, 0));
        assert_eq!(t.lost(), 1);
        assert_eq!(t.out_of_order, 1);
        assert_eq!(h.count(), 3);
    }

    #[test]
    fn a_timed_run_expects_what_was_sent_and_skips_the_warm_up() {
        let mut h = Histogram::new();
        let mut t = Tally::counting(expect(2, UNTIL_TOLD, Some(1)));
        t.feed(b"WELCOME guest-2\n", 0, &mut h);
        t.start_sync();
        t.feed(b"PONG\n", 0, &mut h);
        t.record_from_ns = 100;
        t.feed(&delivered(0, 0, 50), 60, &mut h); // warm-up: not recorded
        t.feed(&delivered(0, 1, 150), 160, &mut h);
        assert_eq!(h.count(), 1);
        assert!(!t.is_complete());
        t.finalize(&[2, 7]);
        assert_eq!(t.expected(), 2); // its own publisher's 7 are not for it
        assert!(t.is_complete());
        t.finalize(&[9, 9]); // once told, it stays
        assert_eq!(t.expected(), 2);
    }

    /// The server's line for a chat line: `MSG <nick> <text>`.
    fn delivered(publisher: usize, seq: u64, sent_ns: u64) -> Vec<u8> {
        let mut text = Vec::new();
        encode_chat(&mut text, publisher, seq, sent_ns, SIZE);
        let mut line = format!("MSG guest-{} ", publisher + 1).into_bytes();
        line.extend_from_slice(&text);
        line
    }

    fn synced(publishers: usize, lines: u64) -> (Tally, Histogram) {
        let mut t = Tally::counting(expect(publishers, lines, None));
        let mut h = Histogram::new();
        t.feed(b"WELCOME guest-9\nJOIN guest-10\nJO", 5, &mut h);
        assert_eq!(t.phase(), Phase::Welcomed);
        assert_eq!(t.nick.as_deref(), Some("guest-9"));
        assert_eq!(t.welcome_ns, Some(5));
        t.start_sync();
        t.feed(b"IN guest-11\nPONG\n", 6, &mut h);
        assert_eq!(t.phase(), Phase::Counting);
        (t, h)
    }

    #[test]
    fn counts_in_order_lines_and_their_latency() {
        let (mut t, mut h) = synced(2, 4);
        let mut bytes = Vec::new();
        for (p, s) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
            bytes.extend(delivered(p, s, 1_000));
        }
        t.feed(&bytes, 3_000, &mut h);
        assert_eq!(t.received, 4);
        assert_eq!(t.out_of_order, 0);
        assert_eq!(t.lost(), 0);
        assert!(t.is_complete());
        assert_eq!(t.last_ns, 3_000);
        assert_eq!(h.count(), 4);
        assert_eq!(h.max(), 2_000);
    }

    #[test]
    fn any_split_of_the_stream_counts_the_same() {
        let mut stream = Vec::new();
        for s in 0..5 {
            stream.extend(delivered(0, s, 10));
        }
        stream.extend_from_slice(b"LEAVE guest-3\n");
        for cut in 0..stream.len() {
            let (mut t, mut h) = synced(1, 5);
            t.feed(&stream[..cut], 20, &mut h);
            t.feed(&stream[cut..], 20, &mut h);
            assert_eq!(
                (t.received, t.out_of_order, t.other_lines),
                (5, 0, 1),
                "cut {cut}"
            );
        }
        let (mut t, mut h) = synced(1, 5);
        for byte in &stream {
            t.feed(std::slice::from_ref(byte), 20, &mut h);
        }
        assert_eq!((t.received, t.out_of_order, t.other_lines), (5, 0, 1));
    }

    #[test]
    fn gaps_and_reordering_are_detected() {
        let (mut t, mut h) = synced(1, 4);
        for s in [0, 2, 1, 3] {
            t.feed(&delivered(0, s, 0), 1, &mut h);
        }
        assert_eq!(t.received, 4);
        assert_eq!(t.out_of_order, 2); // 2 came early, 1 came late
        assert_eq!(t.lost(), 0);

        let (mut t, mut h) = synced(1, 4);
        for s in [0, 1, 3] {
            t.feed(&delivered(0, s, 0), 1, &mut h);
        }
        assert_eq!(t.received, 3);
        assert_eq!(t.lost(), 1);
        assert_eq!(t.out_of_order, 1);
        assert!(!t.is_complete());
    }

    #[test]
    fn duplicates_and_own_lines_are_flagged() {
        let (mut t, mut h) = synced(1, 2);
        for s in [0, 0, 1] {
            t.feed(&delivered(0, s, 0), 1, &mut h);
        }
        assert_eq!(t.out_of_order, 1);

        let mut t = Tally::counting(expect(2, 1, Some(0)));
        t.feed(b"WELCOME guest-1\n", 0, &mut h);
        t.start_sync();
        t.feed(b"PONG\n", 0, &mut h);
        t.feed(&delivered(0, 0, 0), 1, &mut h);
        assert_eq!((t.received, t.other_lines), (0, 1));
        t.feed(&delivered(1, 0, 0), 1, &mut h);
        assert!(t.is_complete());
    }

    #[test]
    fn lines_with_another_size_still_count() {
        let (mut t, mut h) = synced(1, 1);
        let mut text = Vec::new();
        encode_chat(&mut text, 0, 0, 0, SIZE + 10);
        let mut line = b"MSG a ".to_vec();
        line.extend(text);
        t.feed(&line, 1, &mut h);
        assert_eq!(t.received, 1);
    }

    #[test]
    fn refusal_and_discarding() {
        let mut h = Histogram::new();
        let mut t = Tally::discarding();
        t.feed(b"ERR server-full go away\n", 0, &mut h);
        assert_eq!(t.end, Some(End::Refused));

        let mut t = Tally::discarding();
        t.feed(b"WELCOME guest-1\nJOIN guest-2\n", 7, &mut h);
        assert_eq!(t.phase(), Phase::Discarding);
        assert_eq!(t.welcome_ns, Some(7));
        t.feed(b"anything at all", 8, &mut h);
        assert_eq!(t.other_lines, 0);
    }

    #[test]
    fn a_handover_moves_open_connections_only() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut conns: Vec<Conn> = (0..5)
            .map(|_| Conn::new(TcpStream::connect(addr).unwrap(), synced(1, 1).0))
            .collect();
        // the last connection is complete: it stays where it is
        let (mut h, line) = (Histogram::new(), delivered(0, 0, 0));
        conns[4].tally.feed(&line, 1, &mut h);
        assert!(conns[4].done(stage::MEASURE));
        let (orders_tx, orders) = crossbeam_channel::unbounded();
        let (to, moved) = crossbeam_channel::unbounded();
        orders_tx.send(Handover { count: 2, to }).unwrap();
        hand_over(&mut conns, &orders, stage::MEASURE);
        assert_eq!(moved.len(), 2);
        assert_eq!(conns.len(), 3);
        assert!(conns.iter().any(|c| c.done(stage::MEASURE)));
        // asked for more than it has open: gives what it has
        let (to, moved) = crossbeam_channel::unbounded();
        orders_tx.send(Handover { count: 10, to }).unwrap();
        hand_over(&mut conns, &orders, stage::MEASURE);
        assert_eq!((moved.len(), conns.len()), (2, 1));
        // a receiver that is gone gets nothing, and nothing is lost
        let mut conns: Vec<Conn> = (0..2)
            .map(|_| Conn::new(TcpStream::connect(addr).unwrap(), synced(1, 1).0))
            .collect();
        let (to, gone) = crossbeam_channel::unbounded();
        drop(gone);
        orders_tx.send(Handover { count: 1, to }).unwrap();
        hand_over(&mut conns, &orders, stage::MEASURE);
        assert_eq!(conns.len(), 2);
    }

    #[test]
    fn a_huge_partial_line_is_dropped_not_kept() {
        let (mut t, mut h) = synced(1, 1);
        let junk = vec![b'x'; 64 * 1024];
        for _ in 0..20 {
            t.feed(&junk, 0, &mut h);
        }
        assert!(t.partial.len() <= MAX_PARTIAL);
        assert!(t.other_lines >= 1);
    }
}
