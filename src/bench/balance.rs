//! Enough receiver threads that none of them sets the rate.
//!
//! One sweeper thread reading 100 subscribers of a 1 x 100 fan-out was at
//! 97 % of a core (issue 17): the rate measured was the bench's, not the
//! server's. So the subscribers' receivers are watched while the run goes:
//! every [`INTERVAL`] the main thread reads each receiver's CPU time from
//! `/proc/self/task/<tid>/stat` and, when one was above [`RECEIVER_SHARE`]
//! of a core, starts another receiver and has the busy one hand it half of
//! its connections (a [`Handover`], taken between two sweeps, so no read is
//! cut in two). Up to [`MAX_RECEIVERS`] threads.
//!
//! The decisions are plain functions ([`plan_split`]); [`Receivers`] does
//! the threads and the /proc reading.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::cpu::{TICKS_PER_S, thread_ticks};
use super::recv::{Conn, Pace, Shared, Swept, sweep_balanced};

/// A receiver busier than this share of one core gets help: under it, a
/// receiver still has time to spare between reads, so it reads as fast as
/// the server writes.
pub const RECEIVER_SHARE: f64 = 0.7;

/// Most receiver threads. On this 2-core machine 16 is past any use (the
/// server needs a core); the cap only bounds a run gone wrong.
pub const MAX_RECEIVERS: usize = 16;

/// How often the receivers' CPU is read: 200 ms is 20 ticks of /proc's
/// 100 Hz clock, so a share is good to 5 %.
pub const INTERVAL: Duration = Duration::from_millis(200);

/// A request to a receiver: move `count` of your open connections to `to`.
#[derive(Debug)]
pub struct Handover {
    /// Connections to give away (fewer if it has fewer open).
    pub count: usize,
    /// The receiving thread's feed.
    pub to: Sender<Conn>,
}

/// What the main thread knows of one receiver thread, shared with it.
#[derive(Debug, Default)]
pub struct Gauge {
    /// Its thread id (0 until it has started).
    pub tid: AtomicU64,
    /// Connections it reads that are not done yet.
    pub open: AtomicUsize,
}

/// One receiver as [`plan_split`] sees it over the last interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Load {
    /// Share of one core it used (1.0: busy the whole interval).
    pub share: f64,
    /// Connections it reads that are not done yet.
    pub open: usize,
}

/// Which receiver should hand how many connections to a new thread, if
/// any: the busiest one above [`RECEIVER_SHARE`] that has two or more open
/// connections gives half of them, while there are fewer than `max`
/// threads. One split per interval: the next reading shows what it did.
pub fn plan_split(loads: &[Load], max: usize) -> Option<(usize, usize)> {
    if loads.len() >= max {
        return None;
    }
    let (index, busiest) = loads
        .iter()
        .enumerate()
        .filter(|(_, l)| l.share > RECEIVER_SHARE && l.open >= 2)
        .max_by(|a, b| a.1.share.total_cmp(&b.1.share))?;
    Some((index, busiest.open / 2))
}

/// A receiver's CPU share over an interval, from two tick readings.
pub fn share(ticks_before: u64, ticks_now: u64, interval: Duration) -> f64 {
    let secs = ticks_now.saturating_sub(ticks_before) as f64 / TICKS_PER_S;
    secs / interval.as_secs_f64().max(1e-9)
}

/// One running receiver.
struct Member {
    gauge: Arc<Gauge>,
    control: Sender<Handover>,
    handle: JoinHandle<Swept>,
    /// CPU ticks at the last reading.
    ticks: u64,
}

/// The subscribers' receiver threads (`bench-rx-<i>`), kept under
/// [`RECEIVER_SHARE`] of a core each unless the count is fixed.
pub struct Receivers {
    members: Vec<Member>,
    shared: Arc<Shared>,
    /// Grow while fewer than this (the starting count when fixed).
    max: usize,
    last: Instant,
    /// Splits done, for the report.
    pub splits: usize,
}

impl Receivers {
    /// Starts `start` receivers; with `balanced`, more as they get busy.
    /// Returns the feeds new connections go to, one per receiver.
    pub fn start(
        start: usize,
        balanced: bool,
        shared: &Arc<Shared>,
    ) -> Result<(Receivers, Vec<Sender<Conn>>), String> {
        let mut receivers = Receivers {
            members: Vec::new(),
            shared: shared.clone(),
            max: if balanced { MAX_RECEIVERS } else { start },
            last: Instant::now(),
            splits: 0,
        };
        let mut feeds = Vec::new();
        for _ in 0..start.max(1) {
            let (tx, rx) = crossbeam_channel::unbounded();
            receivers.spawn(rx)?;
            feeds.push(tx);
        }
        Ok((receivers, feeds))
    }

    fn spawn(&mut self, incoming: Receiver<Conn>) -> Result<(), String> {
        let gauge = Arc::new(Gauge::default());
        let (control, orders) = crossbeam_channel::unbounded();
        let (g, shared) = (gauge.clone(), self.shared.clone());
        let handle = thread::Builder::new()
            .name(format!("bench-rx-{}", self.members.len()))
            .spawn(move || sweep_balanced(incoming, Some((orders, g)), shared, Pace::Eager))
            .map_err(|e| format!("cannot start a reader thread: {e}"))?;
        self.members.push(Member {
            gauge,
            control,
            handle,
            ticks: 0,
        });
        Ok(())
    }

    /// Receiver threads running now.
    pub fn count(&self) -> usize {
        self.members.len()
    }

    /// Called often by the main thread: every [`INTERVAL`], reads each
    /// receiver's CPU and splits the busiest if [`plan_split`] says so.
    pub fn tick(&mut self) {
        let elapsed = self.last.elapsed();
        if elapsed < INTERVAL {
            return;
        }
        self.last = Instant::now();
        let mut loads = Vec::with_capacity(self.members.len());
        for m in &mut self.members {
            let tid = m.gauge.tid.load(Ordering::Relaxed);
            let now = thread_ticks(tid).unwrap_or(m.ticks);
            loads.push(Load {
                share: share(m.ticks, now, elapsed),
                open: m.gauge.open.load(Ordering::Relaxed),
            });
            m.ticks = now;
        }
        let Some((from, count)) = plan_split(&loads, self.max) else {
            return;
        };
        let (tx, rx) = crossbeam_channel::unbounded();
        if self.spawn(rx).is_err() {
            // No thread: keep going with the ones there are.
            self.max = self.members.len();
            return;
        }
        let new = self.members.len() - 1;
        self.members[new].ticks = 0;
        log::debug!(
            "bench: receiver {from} at {:.0}% of a core: {count} of its connections go to receiver {new}",
            loads[from].share * 100.0
        );
        let _ = self.members[from].control.send(Handover { count, to: tx });
        self.splits += 1;
    }

    /// Joins every receiver (call once the stage is STOP).
    pub fn join(self) -> Vec<thread::Result<Swept>> {
        self.members
            .into_iter()
            .map(|m| {
                drop(m.control);
                m.handle.join()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(share: f64, open: usize) -> Load {
        Load { share, open }
    }

    #[test]
    fn the_busiest_receiver_over_the_share_gives_half() {
        let loads = [load(0.5, 40), load(0.97, 60), load(0.8, 30)];
        assert_eq!(plan_split(&loads, MAX_RECEIVERS), Some((1, 30)));
        // under the share: nothing to do
        assert_eq!(plan_split(&[load(0.69, 100)], MAX_RECEIVERS), None);
        assert_eq!(plan_split(&[load(0.71, 100)], MAX_RECEIVERS), Some((0, 50)));
    }

    #[test]
    fn no_split_at_the_cap_or_of_a_single_connection() {
        let busy = [load(0.99, 100), load(0.98, 100)];
        assert_eq!(plan_split(&busy, 2), None);
        assert_eq!(plan_split(&busy, 3), Some((0, 50)));
        // one connection cannot be halved; the other busy one can
        assert_eq!(
            plan_split(&[load(1.0, 1), load(0.9, 3)], MAX_RECEIVERS),
            Some((1, 1))
        );
        assert_eq!(plan_split(&[load(1.0, 1)], MAX_RECEIVERS), None);
        assert_eq!(plan_split(&[], MAX_RECEIVERS), None);
    }

    #[test]
    fn a_share_is_ticks_over_the_interval() {
        // 19 ticks of 10 ms in 200 ms: 95 %
        let s = share(100, 119, Duration::from_millis(200));
        assert!((s - 0.95).abs() < 1e-9, "{s}");
        // a clock that went back (thread gone, read failed) is 0, not huge
        assert_eq!(share(50, 10, Duration::from_millis(200)), 0.0);
    }
}
