//! `tcphub serve --record FILE`: the dispatcher's side of a recording, and
//! the `recorder` thread that writes it to the file.
//!
//! The dispatcher sees every connect, every line a reader hands over, every
//! byte it writes and every close, in the one order clients see them; so
//! the recording is made there, and its order is exact. What to write is
//! decided by [`crate::proto::recording`] (no IO); the text of one batch is
//! handed, as one `String`, to the `recorder` thread through a bounded
//! channel ([`QUEUE`] batches) with a non-waiting `try_send`: a slow disk
//! never stalls the dispatcher. If the queue is full, the recording stops
//! there (a file with a hole in it would not replay), the hub says so in
//! its log and to every client (`NOTICE`), and the file ends with a comment
//! that says why. The same happens at `--record-max-bytes`.
//!
//! The thread writes through a `BufWriter` and flushes whenever the queue
//! is empty, so the file is current to the last batch while the hub runs.

use std::fs::File;
use std::io::{BufWriter, IoSlice, Write};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};
use log::{debug, warn};

use crate::proto::framing::Inbound;
use crate::proto::ids::ClientId;
use crate::proto::recording::Recording;

/// Batches of text the `recorder` thread may be behind by. A batch is a few
/// hundred bytes in class; 1024 of them is seconds of a busy hub's story,
/// far more than a disk needs to catch up.
pub const QUEUE: usize = 1024;

/// `--record-max-bytes` by default: 64 MiB. A 50-minute class of 30
/// students chatting a line every 10 s each is about 11 MB (every line is
/// one `send` and about 30 `expect`s of 40 bytes), so this keeps a whole
/// class with room to spare and still bounds a flood.
pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// With `--blocking-writes`, a write to a client that took this long had
/// to wait for room in its kernel buffer: the client counts as behind
/// (a loopback write the kernel takes at once is tens of microseconds).
pub const BLOCKED: Duration = Duration::from_millis(10);

/// What clients are told after `WELCOME` while the hub records.
pub const RECORDED_NOTICE: &str = "this session is recorded: what you send and receive is written to a file (tcphub serve --record)";

/// The dispatcher's end of a recording.
pub struct Recorder {
    recording: Recording,
    start: Instant,
    /// This batch's text, shipped at [`Recorder::end_batch`].
    text: String,
    /// `None` once the recording stopped.
    to_thread: Option<Sender<String>>,
    /// What the thread writes last, once the channel is closed.
    last_words: Arc<Mutex<String>>,
    thread: Option<JoinHandle<()>>,
    written: u64,
    max_bytes: u64,
}

/// The `recorder` thread's end: see [`write_loop`].
pub struct RecorderThread {
    file: BufWriter<File>,
    from_dispatcher: Receiver<String>,
    last_words: Arc<Mutex<String>>,
}

/// A recording into `file` of at most `max_bytes`, starting with `header`.
/// Returns the dispatcher's end and the thread's (for the caller to start,
/// then hand its handle to [`Recorder::joined_with`]).
pub fn new(
    file: File,
    header: String,
    max_line: usize,
    max_bytes: u64,
) -> (Recorder, RecorderThread) {
    let (tx, rx) = crossbeam_channel::bounded(QUEUE);
    let last_words = Arc::new(Mutex::new(String::new()));
    let written = header.len() as u64;
    // Room in the queue: this cannot fail.
    let _ = tx.try_send(header);
    let recorder = Recorder {
        recording: Recording::new(max_line),
        start: Instant::now(),
        text: String::new(),
        to_thread: Some(tx),
        last_words: last_words.clone(),
        thread: None,
        written,
        max_bytes,
    };
    let thread = RecorderThread {
        file: BufWriter::new(file),
        from_dispatcher: rx,
        last_words,
    };
    (recorder, thread)
}

/// The time now in UTC, `2026-12-03 06:10:00 UTC`, for the file's title
/// (std has no calendar: days since 1970 to a date, Howard Hinnant's
/// `civil_from_days`).
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

impl RecorderThread {
    /// The thread's life: write each batch, flush when none is waiting,
    /// and at the end (the dispatcher dropped its end) the last words.
    pub fn run(mut self) {
        let mut failed = false;
        loop {
            let text = match self.from_dispatcher.try_recv() {
                Ok(text) => text,
                Err(TryRecvError::Empty) => {
                    failed |= self.file.flush().is_err();
                    match self.from_dispatcher.recv() {
                        Ok(text) => text,
                        Err(_) => break,
                    }
                }
                Err(TryRecvError::Disconnected) => break,
            };
            if failed {
                continue;
            }
            if let Err(e) = self.file.write_all(text.as_bytes()) {
                warn!("recording stopped: cannot write the file: {e}");
                failed = true;
            }
        }
        let last = std::mem::take(&mut *self.last_words.lock().unwrap_or_else(|e| e.into_inner()));
        if !failed {
            let _ = self.file.write_all(last.as_bytes());
            let _ = self.file.flush();
        }
        debug!("recorder: done");
    }
}

impl Recorder {
    /// The `recorder` thread, joined when the recording ends.
    pub fn joined_with(mut self, thread: JoinHandle<()>) -> Self {
        self.thread = Some(thread);
        self
    }

    fn at(&self) -> Duration {
        self.start.elapsed()
    }

    fn on(&self) -> bool {
        self.to_thread.is_some()
    }

    /// Client `id` connected from `peer` and was named `nick`.
    pub fn connected(&mut self, id: ClientId, nick: &str, peer: &str) {
        if self.on() {
            let at = self.at();
            self.recording.connected(id, nick, peer, at, &mut self.text);
        }
    }

    /// Client `id` (named `nick` until this line is applied) sent `line`.
    pub fn sent(&mut self, id: ClientId, nick: &str, line: &Inbound) {
        if self.on() {
            let at = self.at();
            self.recording.sent(id, nick, line, at, &mut self.text);
        }
    }

    /// The dispatcher is handing these bytes to client `id`'s socket.
    pub fn received(&mut self, id: ClientId, chunks: &[IoSlice<'_>]) {
        if self.on() {
            let at = self.at();
            for chunk in chunks {
                self.recording.received(id, chunk, at, &mut self.text);
            }
        }
    }

    /// After a write: whether client `id` has bytes pending in its outbox.
    pub fn behind(&mut self, id: ClientId, pending: bool) {
        self.recording.behind(id, pending);
    }

    /// Client `id` hung up.
    pub fn peer_closed(&mut self, id: ClientId, why: &str) {
        if self.on() {
            let at = self.at();
            self.recording.peer_closed(id, why, at, &mut self.text);
        }
    }

    /// The hub closed client `id`.
    pub fn hub_closed(&mut self, id: ClientId) {
        if self.on() {
            let at = self.at();
            self.recording.hub_closed(id, at, &mut self.text);
        }
    }

    /// Ships the batch's text to the thread. Returns the `NOTICE` text to
    /// send every client if the recording stopped just now.
    pub fn end_batch(&mut self) -> Option<String> {
        if !self.on() {
            return None;
        }
        let at = self.at();
        self.recording.tick(at, &mut self.text);
        if self.text.is_empty() {
            return None;
        }
        let text = std::mem::take(&mut self.text);
        let len = text.len() as u64;
        if self.written + len > self.max_bytes {
            let why = format!("--record-max-bytes {} reached", self.max_bytes);
            return Some(self.stop(&why, len));
        }
        let Some(tx) = &self.to_thread else {
            return None;
        };
        match tx.try_send(text) {
            Ok(()) => {
                self.written += len;
                None
            }
            Err(TrySendError::Full(_)) => {
                Some(self.stop("the file is written slower than the hub runs", len))
            }
            Err(TrySendError::Disconnected(_)) => {
                Some(self.stop("the file cannot be written", len))
            }
        }
    }

    /// Stops recording: logs it, has the thread end the file with a
    /// comment saying why, and returns what clients are told.
    fn stop(&mut self, why: &str, lost: u64) -> String {
        let at = self.at();
        warn!(
            "recording stopped after {:.3}s and {} bytes: {why} ({lost} bytes not written)",
            at.as_secs_f64(),
            self.written
        );
        *self.last_words.lock().unwrap_or_else(|e| e.into_inner()) = format!(
            "# recording stopped at {:.3}s: {why}; {} client(s) were still connected, what they \
             did next is not recorded ({lost} bytes not written)\n",
            at.as_secs_f64(),
            self.recording.clients()
        );
        self.to_thread = None;
        format!("recording stopped: {why}")
    }

    /// The hub is stopping: everything held back is written, then a last
    /// comment, and the thread is joined so the file is complete.
    pub fn finish(&mut self) {
        if self.on() {
            let at = self.at();
            self.recording.finish(&mut self.text);
            let clients = self.recording.clients();
            self.text.push_str(&format!(
                "# recording ended at {:.3}s: the hub stopped with {clients} client(s) connected\n",
                at.as_secs_f64()
            ));
            let len = self.text.len() as u64;
            if self.written + len > self.max_bytes {
                let why = format!("--record-max-bytes {} reached", self.max_bytes);
                self.stop(&why, len);
            } else if let Some(tx) = &self.to_thread {
                // At the very end the dispatcher may wait for the disk.
                let _ = tx.send(std::mem::take(&mut self.text));
            }
            self.to_thread = None;
        }
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            warn!("the recorder thread panicked");
        }
    }
}
