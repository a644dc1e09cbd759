//! The receiving side of the bench: the threads that read many
//! connections ([`sweep`]), each connection's [`super::tally::Tally`]
//! fed with what they read.
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
pub use super::tally::{End, Expect, Phase, SYNC_LINE, Tally, UNTIL_TOLD};

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

    /// A fan-out connection past its `PONG`, expecting one line.
    fn counting() -> Tally {
        let mut t = Tally::counting(Expect {
            publishers: 1,
            lines: 1,
            own: None,
            text_len: SIZE - 1,
            raw: false,
        });
        let mut h = Histogram::new();
        t.feed(b"WELCOME guest-9\n", 0, &mut h);
        t.start_sync();
        t.feed(b"PONG\n", 0, &mut h);
        t
    }

    fn delivered(seq: u64) -> Vec<u8> {
        let mut line = b"MSG guest-1 ".to_vec();
        encode_chat(&mut line, 0, seq, 0, SIZE);
        line
    }

    #[test]
    fn a_handover_moves_open_connections_only() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut conns: Vec<Conn> = (0..5)
            .map(|_| Conn::new(TcpStream::connect(addr).unwrap(), counting()))
            .collect();
        // the last connection is complete: it stays where it is
        let (mut h, line) = (Histogram::new(), delivered(0));
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
            .map(|_| Conn::new(TcpStream::connect(addr).unwrap(), counting()))
            .collect();
        let (to, gone) = crossbeam_channel::unbounded();
        drop(gone);
        orders_tx.send(Handover { count: 1, to }).unwrap();
        hand_over(&mut conns, &orders, stage::MEASURE);
        assert_eq!(conns.len(), 2);
    }
}
