//! What one connection of the bench has seen ([`Tally`]): pure
//! bookkeeping, no IO, fed with whatever bytes a read returned. The
//! threads that do the reading are in [`super::recv`].
//!
//! A chat line is parsed at fixed offsets without scanning it (see
//! [`super::wire`]); once a `conns` client has its `WELCOME`, its bytes are
//! not looked at.

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
