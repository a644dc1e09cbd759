//! Readers hand over once per batch: a reader whose dispatcher is busy
//! waits for the batch to end, then reads everything that came meanwhile.
//!
//! Why: while the dispatcher writes a batch (one `writev` per recipient:
//! 100 subscribers, 100 syscalls), nothing a reader hands over can be
//! routed; it waits in the channel for the next batch. A reader that went
//! straight back to `read()` was woken for every couple of lines anyway: a
//! publisher at 50,000 lines/s to 100 subscribers was read 46,000 times in
//! 2.5 s (2.6 lines a read), and those wake-ups were a quarter of the hub's
//! CPU (`perf`, docs/architecture.md). A relay that reads and writes on
//! one thread gets this for free: it is busy writing while lines pile up,
//! so its next read takes them all (38 lines a read at the same rate).
//!
//! So after a read, a reader that finds the dispatcher busy waits here
//! ([`BatchGate::wait`]) with its lines still in hand. When the dispatcher
//! has written the batch ([`BatchGate::end`]) it wakes every reader that
//! waits, and each takes whatever else its socket holds by then without
//! waiting for more, and hands it all over in one event. Lines wait no
//! longer than before (until the batch is written: they could not be
//! routed sooner), only in the socket instead of the channel. When the
//! dispatcher is idle, nobody waits: a lone line goes in at once.
//!
//! Lock-free on the dispatcher's side when nobody waits: one atomic store
//! to begin a batch, one load to end it.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// Longest a reader holds its lines for one batch. A batch of non-blocking
/// sends to 100 clients takes well under a millisecond; one that takes
/// longer (thousands of recipients, or `--blocking-writes` stuck on a
/// client that stopped reading) gets the lines anyway, so they queue in the
/// channel as they always did, and a reader that keeps reading shows up as
/// `blocked on full channel` in the live view, not as a mystery.
pub const MAX_HOLD: Duration = Duration::from_millis(5);

/// Shared by the dispatcher (begins and ends batches) and every reader
/// (waits for the end of one).
#[derive(Debug, Default)]
pub struct BatchGate {
    /// The dispatcher is routing or writing a batch.
    busy: AtomicBool,
    /// Batches ended while someone waited: a reader waits for it to change.
    round: AtomicU64,
    /// How many readers are in `waiting` (so an end with nobody waiting
    /// takes no lock).
    count: AtomicUsize,
    waiting: Mutex<Vec<Thread>>,
    /// The dispatcher is gone: nobody waits any more.
    closed: AtomicBool,
}

impl BatchGate {
    /// The dispatcher: a batch begins (it has its first event).
    pub fn begin(&self) {
        self.busy.store(true, Ordering::Release);
    }

    /// The dispatcher: the batch is written; every waiting reader reads on.
    pub fn end(&self) {
        // SeqCst, with the reader's in `wait`: either this load sees the
        // reader counted, or the reader sees `busy` false and does not wait
        // (with weaker orderings both could miss, and the reader would
        // hold its lines a whole MAX_HOLD).
        self.busy.store(false, Ordering::SeqCst);
        if self.count.load(Ordering::SeqCst) == 0 {
            return;
        }
        let woken = {
            let mut waiting = self.lock();
            // Under the lock: a reader that queued itself saw the old
            // round, and sees this one change.
            self.round.fetch_add(1, Ordering::AcqRel);
            self.count.store(0, Ordering::Release);
            std::mem::take(&mut *waiting)
        };
        for reader in woken {
            reader.unpark();
        }
    }

    /// The dispatcher is stopping: wakes everyone, and nobody waits again.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.end();
    }

    /// True if some reader holds lines for the next batch (lines kept
    /// arriving while this one was written).
    pub fn waiting(&self) -> bool {
        self.count.load(Ordering::SeqCst) > 0
    }

    /// True while the dispatcher is in a batch: a reader holding lines
    /// calls [`BatchGate::wait`].
    pub fn busy(&self) -> bool {
        self.busy.load(Ordering::Acquire) && !self.closed.load(Ordering::Acquire)
    }

    /// The reader: waits until the batch now under way is written (at once
    /// if none is), or for [`MAX_HOLD`] at most. Parks the calling thread;
    /// [`BatchGate::end`] unparks it.
    pub fn wait(&self) {
        self.wait_at_most(MAX_HOLD);
    }

    fn wait_at_most(&self, hold: Duration) {
        let start = Instant::now();
        let round = {
            let mut waiting = self.lock();
            // Counted first, then `busy` looked at again (see `end`): a
            // batch that ended just now has nobody to wake, so this reader
            // must not wait for it.
            self.count.fetch_add(1, Ordering::SeqCst);
            if !self.busy.load(Ordering::SeqCst) || self.closed.load(Ordering::Acquire) {
                self.count.fetch_sub(1, Ordering::SeqCst);
                return;
            }
            waiting.push(thread::current());
            self.round.load(Ordering::Acquire)
        };
        while self.round.load(Ordering::Acquire) == round && !self.closed.load(Ordering::Acquire) {
            let Some(left) = hold.checked_sub(start.elapsed()) else {
                // Still queued: the next end() unparks a thread that is no
                // longer parked here, which only makes its next park return
                // at once (a spurious wake-up, allowed by park's contract).
                return;
            };
            thread::park_timeout(left);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Thread>> {
        // A reader that panicked holding the lock left a plain Vec behind.
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn an_idle_dispatcher_makes_nobody_wait() {
        let gate = BatchGate::default();
        // Were it to wait, only the hold would end it: a minute.
        let hold = Duration::from_secs(60);
        let start = Instant::now();
        gate.wait_at_most(hold);
        gate.begin();
        gate.end();
        gate.wait_at_most(hold);
        assert!(start.elapsed() < hold / 2, "{:?}", start.elapsed());
    }

    #[test]
    fn a_reader_waits_for_the_end_of_the_batch() {
        let gate = Arc::new(BatchGate::default());
        gate.begin();
        let g = gate.clone();
        // A hold far longer than the test, so only end() can free it.
        let hold = Duration::from_secs(60);
        let reader = thread::spawn(move || {
            let start = Instant::now();
            g.wait_at_most(hold);
            start.elapsed()
        });
        while gate.count.load(Ordering::Acquire) == 0 {
            thread::yield_now();
        }
        thread::sleep(Duration::from_millis(30));
        assert!(!reader.is_finished(), "it must wait while the batch runs");
        gate.end();
        let waited = reader.join().unwrap();
        assert!(waited >= Duration::from_millis(30), "{waited:?}");
        assert!(waited < hold / 2, "end() must wake it: {waited:?}");
    }

    #[test]
    fn a_batch_that_runs_long_holds_a_reader_no_longer_than_max_hold() {
        let gate = BatchGate::default();
        gate.begin();
        let start = Instant::now();
        gate.wait();
        let waited = start.elapsed();
        assert!(waited >= MAX_HOLD, "{waited:?}");
        // The batch ends later: its end() finds the reader gone, harmlessly.
        gate.end();
        assert_eq!(gate.count.load(Ordering::Acquire), 0);
    }

    #[test]
    fn closing_frees_waiters_and_stops_waiting() {
        let gate = Arc::new(BatchGate::default());
        gate.begin();
        let g = gate.clone();
        let reader = thread::spawn(move || g.wait_at_most(Duration::from_secs(60)));
        while gate.count.load(Ordering::Acquire) == 0 {
            thread::yield_now();
        }
        gate.close();
        reader.join().unwrap();
        gate.begin();
        assert!(!gate.busy(), "after close, nobody waits");
        gate.wait();
    }
}
