//! The publishing side of a fan-out run: one thread per publisher writes
//! numbered, timestamped lines ([`publish`]), at a rate or as fast as the
//! server takes them, never further ahead of the deliveries than [`Flow`]
//! allows (unless `--unpaced`).

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::recv::{Shared, stage};
use super::target::remaining;
use super::wire::encode_chat;

/// A publisher's outcome.
#[derive(Debug)]
pub struct Published {
    /// When its last line was written (ns since the bench's epoch).
    pub finished_ns: u64,
    /// Lines it wrote.
    pub sent: u64,
    /// Why it stopped early, if it did.
    pub error: Option<String>,
}

/// Lines per write when the rate is unlimited: about 16 KiB.
const BATCH_BYTES: usize = 16 * 1024;

/// What one publisher is to do.
pub struct Plan {
    pub index: usize,
    /// Lines to send (`u64::MAX`: until `stop`).
    pub messages: u64,
    pub size: usize,
    /// Lines per second, if limited.
    pub rate: Option<u64>,
    pub start_ns: u64,
    pub deadline: Instant,
    /// Set when a timed run's window is long enough.
    pub stop: Arc<AtomicBool>,
    pub flow: Arc<Flow>,
}

/// How far publishers may run ahead of the deliveries. A server that
/// reads faster than it delivers (Node buffers every write in memory) would
/// otherwise be fed more in a second than it delivers in a minute, and the
/// drain after the window would take that minute.
#[derive(Debug)]
pub struct Flow {
    /// Lines written, over all publishers.
    pub sent: AtomicU64,
    /// Deliveries each line makes.
    receivers: u64,
    /// Most deliveries in flight (sent, not yet received).
    cap: AtomicU64,
    /// The cap never goes above this: [`MAX_LEAD_BYTES`] per receiver.
    max_cap: u64,
    /// `--unpaced`: no cap at all; the publishers write as fast as the
    /// server reads.
    unlimited: bool,
}

/// At most this many bytes in flight per receiver, on average. A hub cuts
/// off a client that falls `--max-pending` (1 MiB by default) behind, and a
/// bench that let its publishers run further ahead than its own readers
/// could follow would measure those cut-offs, not the hub.
const MAX_LEAD_BYTES: u64 = 256 * 1024;

/// Deliveries in flight are kept under this much time at the rate seen so
/// far...
const LAG: f64 = 0.25;
/// ... but never under this many lines' worth.
const MIN_LAG_LINES: u64 = 64;

impl Flow {
    /// A cap for `receivers` receivers of `line_size`-byte lines; none at
    /// all when `unlimited` (`--unpaced`).
    pub fn new(receivers: u64, line_size: u64, unlimited: bool) -> Flow {
        let per_receiver = (MAX_LEAD_BYTES / line_size.max(1)).max(MIN_LAG_LINES);
        Flow {
            sent: AtomicU64::new(0),
            receivers,
            cap: AtomicU64::new(MIN_LAG_LINES * receivers),
            max_cap: per_receiver * receivers,
            unlimited,
        }
    }

    /// Re-reads the delivery rate since `start_ns` and resizes the cap.
    pub fn update(&self, shared: &Shared, start_ns: u64) {
        let secs = shared.now_ns().saturating_sub(start_ns) as f64 / 1e9;
        if secs > 0.05 {
            let rate = shared.received.load(Ordering::Relaxed) as f64 / secs;
            let cap = ((rate * LAG) as u64)
                .min(self.max_cap)
                .max(MIN_LAG_LINES * self.receivers);
            self.cap.store(cap, Ordering::Relaxed);
        }
    }

    /// Lines that may still be sent before the cap is reached.
    fn room_lines(&self, shared: &Shared) -> u64 {
        if self.unlimited {
            return u64::MAX;
        }
        let sent = self.sent.load(Ordering::Relaxed) * self.receivers;
        let in_flight = sent.saturating_sub(shared.received.load(Ordering::Relaxed));
        self.cap.load(Ordering::Relaxed).saturating_sub(in_flight) / self.receivers.max(1)
    }

    /// True while more than the cap is in flight.
    fn too_far_ahead(&self, shared: &Shared) -> bool {
        if self.unlimited {
            return false;
        }
        let sent = self.sent.load(Ordering::Relaxed) * self.receivers;
        sent.saturating_sub(shared.received.load(Ordering::Relaxed))
            > self.cap.load(Ordering::Relaxed)
    }
}

/// One publisher: its lines, as fast as the server takes them, or at
/// `rate` lines per second (each line stamped when it is written).
pub fn publish(mut stream: TcpStream, plan: &Plan, shared: &Shared) -> Published {
    let per_write = match plan.rate {
        Some(_) => 1,
        None => (BATCH_BYTES / plan.size).max(1) as u64,
    };
    let mut buffer = Vec::with_capacity(plan.size * per_write as usize);
    let mut seq = 0;
    let mut error = None;
    let timed = plan.messages == u64::MAX;
    while seq < plan.messages {
        if shared.stage() == stage::STOP || plan.stop.load(Ordering::Relaxed) {
            if !timed {
                error = Some(format!(
                    "publisher {} stopped with {} lines unsent",
                    plan.index,
                    plan.messages - seq
                ));
            }
            break;
        }
        if let Some(rate) = plan.rate {
            // Line `seq` is due at start + seq/rate; if late, send at once.
            let due = plan.start_ns + seq.saturating_mul(1_000_000_000) / rate;
            let now = shared.now_ns();
            if due > now {
                thread::sleep(Duration::from_nanos(due - now));
            }
        }
        while plan.rate.is_none()
            && plan.flow.too_far_ahead(shared)
            && !plan.stop.load(Ordering::Relaxed)
            && shared.stage() != stage::STOP
        {
            thread::sleep(Duration::from_micros(20));
        }
        let Some(left) = remaining(plan.deadline) else {
            error = Some(format!("publisher {} timed out", plan.index));
            break;
        };
        let _ = stream.set_write_timeout(Some(left));
        buffer.clear();
        let now = shared.now_ns();
        // No more than the flow cap allows in one write, either.
        let room = plan.flow.room_lines(shared).max(1);
        let n = per_write.min(plan.messages - seq).min(room);
        for s in seq..seq + n {
            encode_chat(&mut buffer, plan.index, s, now, plan.size);
        }
        if let Err(e) = stream.write_all(&buffer) {
            error = Some(format!("publisher {}: write failed: {e}", plan.index));
            shared.failed.store(true, Ordering::Relaxed);
            break;
        }
        seq += n;
        plan.flow.sent.fetch_add(n, Ordering::Relaxed);
    }
    Published {
        finished_ns: shared.now_ns(),
        sent: seq,
        error,
    }
}
