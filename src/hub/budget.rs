//! Fair queueing into the one channel: how much of it one reader may fill.
//!
//! The channel is first come, first served. Without a limit per client, one
//! flooder fills all of it (16 Ki events), and a `/ping` from anyone else
//! waits behind every one of them. So each reader has a small budget of
//! lines and bytes in flight ([`Quota`]): it takes from it before handing a
//! line over, the dispatcher gives it back once the line is applied, and a
//! reader over its budget waits for its own lines to be applied, not for
//! anybody else's. A flooder blocks on its own budget while everyone else's
//! lines still get in, and the channel holds lines from many clients in
//! turn instead of one client's backlog.
//!
//! All readers together are also bounded in bytes ([`Intake`]), so
//! `--max-line` times `--channel-capacity` cannot become a memory bomb.
//!
//! The hot path is three atomic additions per *read* (and three
//! subtractions in the dispatcher), not per line: a reader hands over all
//! the lines of one read at once ([`crate::hub::events::Event::Lines`]).
//! Each of these atomics is a cache line the other core wrote last; per
//! line, with the channel's own, they were part of the hub's 18.3 ns per
//! delivery to 100 subscribers, sustained, against 15.8 ns once they were
//! per read (docs/benchmarks-notes.md, "Closing the gap"). Only a reader
//! over budget waits: `thread::park` for its own
//! quota (the dispatcher unparks exactly that thread), a `Condvar` for the
//! global byte budget (a slow path: the channel is already holding
//! `--channel-bytes`).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::thread::{self, Thread};
use std::time::Duration;

use crate::proto::framing::Inbound;

/// Lines one client may have in the channel at once. Twice
/// [`HAND_OVER_LINES`], which is what one 64 KiB read of short lines
/// holds: a busy publisher's whole read goes in one hand-over, so the
/// dispatcher's batch, and each recipient's `writev`, is as big as a
/// relay's write of one read. With 256 (128 per hand-over), batches were
/// 300 lines and the hub took 17 ns per delivery (sustained 1 x 100)
/// against 11 ns with 2048; the price is fairness: a `/ping` can wait
/// behind 2048 lines of each flooder instead of 256 (how long that takes
/// depends on who the lines go to; not measured at 2048).
pub const CLIENT_LINES: usize = 2048;
/// Bytes one client may have in the channel at once (one line longer than
/// this still goes, alone).
pub const CLIENT_BYTES: usize = 1024 * 1024;

/// Most lines one hand-over carries (1024: a 64 KiB read of 64-byte
/// lines): half the budget, so a reader with one hand-over waiting to be
/// applied can put the next one in the channel (with a whole budget per
/// hand-over it would wait for each to be applied before reading on).
pub const HAND_OVER_LINES: usize = CLIENT_LINES / 2;
/// Most bytes one hand-over carries (a longer line still goes, alone).
pub const HAND_OVER_BYTES: usize = CLIENT_BYTES / 2;

/// What one parsed line costs in the channel, in bytes: the event itself
/// and the text it carries. The reader sums it over a hand-over, and the
/// event carries the sum, so the dispatcher gives back exactly what was
/// taken.
pub fn cost(line: &Inbound) -> usize {
    use crate::proto::client_line::Command;
    let text = match line {
        Inbound::Refused(refusal) => refusal.text.len(),
        Inbound::Command(command) => match command {
            Command::Chat(s) | Command::Nick(s) | Command::Sub(s) | Command::Unsub(s) => s.len(),
            Command::Dm { to, text } => to.len() + text.len(),
            Command::Pub { topic, payload } => topic.len() + payload.len(),
            Command::List | Command::Ping | Command::Quit | Command::Help => 0,
        },
    };
    std::mem::size_of::<Inbound>() + text
}

/// A waiting reader looks again at least this often (a safety net: every
/// release that makes room wakes it at once).
const RECHECK: Duration = Duration::from_millis(100);

/// One client's share of the channel, shared by its reader (takes) and the
/// dispatcher (gives back).
#[derive(Debug, Default)]
pub struct Quota {
    lines: AtomicUsize,
    bytes: AtomicUsize,
    /// The reader is parked waiting for room.
    waiting: AtomicBool,
    /// The client is gone: a waiting reader must stop waiting.
    closed: AtomicBool,
    /// The acceptor has told the dispatcher about this client: its reader
    /// may hand lines over (its first line never overtakes `Connected`).
    started: AtomicBool,
    reader: OnceLock<Thread>,
}

impl Quota {
    /// Called by the reader thread once, so the dispatcher can wake it.
    pub fn register_reader(&self) {
        let _ = self.reader.set(thread::current());
    }

    /// The acceptor's side: `Connected` is in the channel. The caller then
    /// unparks the reader thread.
    pub fn start(&self) {
        self.started.store(true, Ordering::Release);
    }

    /// The reader's side, before its first line: waits until
    /// [`Quota::start`] (true) or [`Quota::close`] (false). Almost always
    /// returns at once; an idle reader never calls it, so its thread never
    /// touches the stack that parking takes.
    pub fn wait_for_start(&self) -> bool {
        loop {
            if self.closed.load(Ordering::Acquire) {
                return false;
            }
            if self.started.load(Ordering::Acquire) {
                return true;
            }
            thread::park_timeout(RECHECK);
        }
    }

    fn has_room(&self, lines: usize, bytes: usize) -> bool {
        let held_lines = self.lines.load(Ordering::Acquire);
        let held = self.bytes.load(Ordering::Acquire);
        held_lines == 0 || (held_lines + lines <= CLIENT_LINES && held + bytes <= CLIENT_BYTES)
    }

    /// Half the budget or less in the channel: a reader that had to wait
    /// goes on only then, so it is woken once per half budget, not once
    /// per line (a context switch per line would be the flooder's
    /// throughput).
    fn half_empty(&self) -> bool {
        self.lines.load(Ordering::Acquire) <= CLIENT_LINES / 2
            && self.bytes.load(Ordering::Acquire) <= CLIENT_BYTES / 2
    }

    /// Wakes the reader and makes it stop waiting for good.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.wake();
    }

    fn wake(&self) {
        if self.waiting.load(Ordering::Acquire)
            && (self.half_empty() || self.closed.load(Ordering::Acquire))
            && let Some(reader) = self.reader.get()
        {
            reader.unpark();
        }
    }
}

/// The channel's byte budget, all readers together.
#[derive(Debug)]
pub struct Intake {
    max_bytes: usize,
    bytes: AtomicUsize,
    waiters: AtomicUsize,
    lock: Mutex<()>,
    room: Condvar,
}

impl Intake {
    pub fn new(max_bytes: usize) -> Self {
        Intake {
            max_bytes,
            bytes: AtomicUsize::new(0),
            waiters: AtomicUsize::new(0),
            lock: Mutex::new(()),
            room: Condvar::new(),
        }
    }

    /// Bytes of lines now in the channel.
    pub fn held(&self) -> usize {
        self.bytes.load(Ordering::Acquire)
    }

    fn has_room(&self, bytes: usize) -> bool {
        let held = self.bytes.load(Ordering::Acquire);
        held == 0 || held + bytes <= self.max_bytes
    }

    /// The reader's side: waits until `quota` and the channel have room for
    /// `lines` lines of `bytes` in all (one read's, at most
    /// [`HAND_OVER_LINES`]), then takes them. Returns false if the client
    /// was closed meanwhile (the reader should stop).
    pub fn take(&self, quota: &Quota, lines: usize, bytes: usize) -> bool {
        // Its own budget first: a flooder waits here, alone, until half
        // of its lines in the channel are applied.
        if !quota.has_room(lines, bytes) {
            // The thread that waits is the one to unpark: registered here,
            // on the slow path, so no caller can forget (a reader that never
            // registered slept the whole RECHECK each time: a flooder or a
            // fast publisher held to about half its budget per 100 ms).
            quota.register_reader();
            quota.waiting.store(true, Ordering::Release);
            // Look again after saying so: a release in between has seen
            // `waiting` and unparked us, so park returns at once.
            while !quota.half_empty() && !quota.closed.load(Ordering::Acquire) {
                thread::park_timeout(RECHECK);
            }
            quota.waiting.store(false, Ordering::Release);
        }
        if quota.closed.load(Ordering::Acquire) {
            return false;
        }
        if !self.has_room(bytes) {
            self.waiters.fetch_add(1, Ordering::AcqRel);
            let mut guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            while !self.has_room(bytes) && !quota.closed.load(Ordering::Acquire) {
                guard = match self.room.wait_timeout(guard, RECHECK) {
                    Ok((guard, _)) => guard,
                    Err(e) => e.into_inner().0,
                };
            }
            drop(guard);
            self.waiters.fetch_sub(1, Ordering::AcqRel);
        }
        if quota.closed.load(Ordering::Acquire) {
            return false;
        }
        quota.lines.fetch_add(lines, Ordering::AcqRel);
        quota.bytes.fetch_add(bytes, Ordering::AcqRel);
        self.bytes.fetch_add(bytes, Ordering::AcqRel);
        true
    }

    /// The dispatcher's side: `lines` lines of `bytes` in all (one
    /// hand-over) have been applied. Gives them back to their client's
    /// quota (`None` once the client is gone: its reader is not waiting any
    /// more) and to the channel, and wakes whoever waits for that room.
    pub fn give_back(&self, quota: Option<&Quota>, lines: usize, bytes: usize) {
        if let Some(quota) = quota {
            quota.lines.fetch_sub(lines, Ordering::AcqRel);
            quota.bytes.fetch_sub(bytes, Ordering::AcqRel);
            quota.wake();
        }
        self.bytes.fetch_sub(bytes, Ordering::AcqRel);
        if self.waiters.load(Ordering::Acquire) > 0 {
            let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.room.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn a_reader_that_waits_can_be_woken_without_registering_first() {
        let intake = Arc::new(Intake::new(1 << 20));
        let quota = Arc::new(Quota::default());
        for _ in 0..CLIENT_LINES {
            assert!(intake.take(&quota, 1, 10));
        }
        let (i, q) = (intake.clone(), quota.clone());
        // This thread never calls register_reader, as the hub's readers
        // did not: waiting must register it, or give_back cannot wake it.
        let reader = thread::spawn(move || {
            assert!(i.take(&q, 1, 10));
            thread::current().id()
        });
        while !quota.waiting.load(Ordering::Acquire) && !reader.is_finished() {
            thread::yield_now();
        }
        for _ in 0..CLIENT_LINES {
            intake.give_back(Some(&quota), 1, 10);
        }
        let id = reader.join().unwrap();
        assert_eq!(quota.reader.get().map(Thread::id), Some(id));
    }

    #[test]
    fn a_reader_over_its_quota_waits_until_its_lines_are_applied() {
        let intake = Arc::new(Intake::new(1 << 20));
        let quota = Arc::new(Quota::default());
        for _ in 0..CLIENT_LINES {
            assert!(intake.take(&quota, 1, 10));
        }
        let (i, q) = (intake.clone(), quota.clone());
        let reader = thread::spawn(move || {
            q.register_reader();
            let start = Instant::now();
            assert!(i.take(&q, 1, 10));
            start.elapsed()
        });
        thread::sleep(Duration::from_millis(50));
        // It goes on once half of its lines are applied, not after each.
        for _ in 0..CLIENT_LINES / 2 {
            intake.give_back(Some(&quota), 1, 10);
        }
        let waited = reader.join().unwrap();
        assert!(waited >= Duration::from_millis(40), "{waited:?}");
        assert_eq!(intake.held(), (CLIENT_LINES / 2 + 1) * 10);
    }

    #[test]
    fn one_long_line_passes_alone_and_closing_frees_a_waiter() {
        let intake = Intake::new(100);
        let quota = Quota::default();
        assert!(intake.take(&quota, 1, 1000), "alone, a line always passes");
        intake.give_back(Some(&quota), 1, 1000);
        assert_eq!(intake.held(), 0);
        let quota = Arc::new(Quota::default());
        let other = Quota::default();
        assert!(intake.take(&other, 1, 90));
        let intake = Arc::new(intake);
        let (i, q) = (intake.clone(), quota.clone());
        let reader = thread::spawn(move || i.take(&q, 1, 50));
        thread::sleep(Duration::from_millis(20));
        quota.close();
        assert!(!reader.join().unwrap(), "a closed client stops waiting");
    }
}
