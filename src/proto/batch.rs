//! One batch of outgoing lines: each line formatted once, and per recipient
//! the byte spans that are theirs.
//!
//! The router formats a line **once** into the batch and records, per
//! recipient, which span of the batch is theirs. The server then writes each
//! recipient's spans with one `writev` (the threaded hub) or one copy into
//! its writer channel (the async twin), so 100 subscribers of one topic cost
//! 100 syscalls per batch, not 100 per line, and no copy of the line per
//! subscriber.
//!
//! A batch has two buffers: lines for many clients ([`Batch::to_many`]:
//! `MSG`, `EVENT`, `JOIN`, `LEAVE`, `NICK`) and answers to one client
//! ([`Batch::to_one`]: `WELCOME`, `OK`, `ERR`, `DM`, ...). Keeping them apart
//! keeps each client's share of the shared buffer in one piece: during a
//! burst of connections, every `JOIN` lands next to the previous one instead
//! of between the newcomers' `WELCOME`s, so an old client's hundred `JOIN`s
//! are one span, not a hundred.
//!
//! Lines for *every* client but one (chat, `JOIN`, `LEAVE`, `NICK`: the
//! hottest path) are not queued per recipient at all: [`Batch::to_all_but`]
//! puts them on the batch's *lane*, once, and each client's share is its own
//! spans, then the lane's lines from where its own spans stopped, minus the
//! lines it is the one exception to. With 1 publisher and 100 subscribers a
//! line costs one push instead of 100 (`examples/route_cost.rs` under
//! callgrind: 26 instructions per delivery before), and a subscriber's share
//! of a whole batch is worked out once, for all of them.
//!
//! Link lines ([`Batch::to_links`]) have a third buffer for the same
//! reason: a line that came over a link is formatted for our clients *and*
//! for the other links, and in one buffer the link copy cut every client's
//! share into one span per line. Measured across NATS (`make nats-bench`,
//! 1 x 100): 113 ns of hub CPU per delivery at the receiving hub with one
//! buffer, against 25-32 ns for one hub alone.

use std::io::IoSlice;

use crate::proto::ids::ClientId;
use crate::proto::link_line::LinkLine;
use crate::proto::server_line::ServerLine;

/// How many events one batch may take before it is written, even if more
/// are queued: bounds both the latency of the first line in a batch and
/// memory. Both servers use these two bounds.
pub const MAX_BATCH_EVENTS: usize = 4096;
/// How many bytes of lines one batch may hold before it is written.
pub const MAX_BATCH_BYTES: usize = 256 * 1024;

/// Which buffer a span is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Buffer {
    Shared,
    Direct,
    Links,
}

/// Where one formatted line (or several adjacent ones) is in the batch.
/// Made only by [`Batch::to_many`], [`Batch::to_one`] and [`Batch::to_links`], so a span always
/// points into the buffer it was formatted into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    buffer: Buffer,
    start: usize,
    end: usize,
}

impl Span {
    /// Takes in `next` if it starts where this one ends, in the same
    /// buffer (two adjacent lines become one slice); false if it does not.
    /// The one merging rule of a recipient's spans, the lane's and the
    /// slices of a `writev`.
    fn absorb(&mut self, next: Span) -> bool {
        let touches = self.buffer == next.buffer && self.end == next.start;
        if touches {
            self.end = next.end;
        }
        touches
    }
}

/// The spans waiting for one recipient, in order. Each client's state holds
/// one, so queueing a line costs no lookup.
///
/// The newest span is kept inline, not in the list: with one publisher a
/// recipient's whole share is one span, so queueing a line for it touches
/// only this struct, never a heap block of its own.
///
/// A client's `Pending` is also its place on the batch's lane (see the
/// module docs): lane lines before `lane_at` are already among its spans, or
/// were queued before it joined; the ones after come after all its spans.
#[derive(Debug, Default)]
pub struct Pending {
    /// Spans before `last`, oldest first (empty in the common case).
    earlier: Vec<Span>,
    /// The newest span, the one a next adjacent line extends.
    last: Option<Span>,
    /// How many lines are in the spans.
    lines: usize,
    /// Listed in the batch's `dirty` list (it has spans of its own).
    listed: bool,
    /// Gets the lane's lines ([`Batch::enter_lane`]): an open client. A
    /// link, or a client that has left, does not.
    on_lane: bool,
    /// The lane position its spans have caught up with, valid in batch
    /// `lane_batch` only (in any other batch it is 0: from the start).
    lane_at: usize,
    lane_batch: u64,
}

impl Pending {
    /// Forgets what was waiting, once it is written.
    fn clear(&mut self) {
        self.last = None;
        self.lines = 0;
        self.listed = false;
        if !self.earlier.is_empty() {
            self.earlier.clear();
            // A burst (many JOINs interleaved with WELCOMEs) can leave a
            // long list behind; 10,000 idle clients must not keep it.
            self.earlier.shrink_to(4);
        }
    }

    /// Adds one span, merging it with the newest when they touch.
    fn push(&mut self, line: Span) {
        self.lines += 1;
        match &mut self.last {
            Some(last) => {
                if !last.absorb(line) {
                    self.earlier.push(std::mem::replace(last, line));
                }
            }
            None => self.last = Some(line),
        }
    }
}

/// One line on the lane: for every client on it but `except`.
#[derive(Debug, Clone, Copy)]
struct ToAll {
    line: Span,
    except: ClientId,
}

/// The lines of one batch, and who has something waiting.
#[derive(Debug, Default)]
pub struct Batch {
    /// Lines for many clients produced since the last flush, each once.
    shared: Vec<u8>,
    /// Lines for one client produced since the last flush.
    direct: Vec<u8>,
    /// Lines for linked hubs (and the NATS link) since the last flush.
    links: Vec<u8>,
    /// Recipients with spans of their own, in the order they first got one.
    dirty: Vec<ClientId>,
    /// Lines for every client on the lane but one, in order.
    lane: Vec<ToAll>,
    /// Counts batches, so a `Pending`'s lane position from an earlier batch
    /// reads as 0 without visiting every client at each flush.
    number: u64,
    /// Made by [`Batch::seal_lane`] for the flush: the whole lane as few
    /// spans as it takes (one, when only lane lines were formatted), and
    /// everyone who is an exception to some lane line, sorted.
    lane_spans: Vec<Span>,
    lane_excepts: Vec<ClientId>,
}

impl Batch {
    /// Formats a line that several clients will get; queue it for each with
    /// [`Batch::queue`].
    pub fn to_many(&mut self, line: ServerLine<'_>) -> Span {
        encode(&mut self.shared, Buffer::Shared, line)
    }

    /// Formats a line for one client; queue it with [`Batch::queue`].
    pub fn to_one(&mut self, line: ServerLine<'_>) -> Span {
        encode(&mut self.direct, Buffer::Direct, line)
    }

    /// Formats a line for linked hubs (`docs/linking.md`), once however many
    /// links get it; queue it for each link with [`Batch::queue`].
    pub fn to_links(&mut self, line: &LinkLine<&str>) -> Span {
        let start = self.links.len();
        line.encode(&mut self.links);
        Span {
            buffer: Buffer::Links,
            start,
            end: self.links.len(),
        }
    }

    /// Adds a line to one recipient's pending spans, merging it with the
    /// previous span when they touch (the common case: one publisher, many
    /// readers, so a reader's share of a batch is one span). The lane's
    /// lines queued since its last span go in first, so its order stays
    /// the batch's.
    #[inline]
    pub fn queue(&mut self, id: ClientId, pending: &mut Pending, line: Span) {
        self.catch_up(id, pending);
        pending.push(line);
        if !pending.listed {
            pending.listed = true;
            self.dirty.push(id);
        }
    }

    /// Queues a line (from [`Batch::to_many`]) for every client on the
    /// lane but `except`, in one push whoever they are.
    #[inline]
    pub fn to_all_but(&mut self, except: ClientId, line: Span) {
        self.lane.push(ToAll { line, except });
    }

    /// A client that connects now: lines already on the lane are not for
    /// it (it was not there), lines from now on are.
    pub fn enter_lane(&self, pending: &mut Pending) {
        pending.on_lane = true;
        pending.lane_batch = self.number;
        pending.lane_at = self.lane.len();
    }

    /// A client that has left: it keeps the lane's lines queued so far,
    /// and gets none after.
    pub fn leave_lane(&mut self, id: ClientId, pending: &mut Pending) {
        // Its lane lines become spans of its own, so it must be listed.
        self.catch_up(id, pending);
        if pending.last.is_some() && !pending.listed {
            pending.listed = true;
            self.dirty.push(id);
        }
        pending.on_lane = false;
    }

    /// Where `pending` is on the lane (0 if it has not been on it this
    /// batch).
    fn lane_at(&self, pending: &Pending) -> usize {
        match pending.lane_batch == self.number {
            true => pending.lane_at,
            false => 0,
        }
    }

    /// Moves the lane lines `pending` has not caught up with into its own
    /// spans, skipping those `id` is the exception to (a client on the
    /// lane only; the caller lists it if it was not).
    fn catch_up(&self, id: ClientId, pending: &mut Pending) {
        if !pending.on_lane {
            return;
        }
        let from = self.lane_at(pending);
        for to_all in &self.lane[from..] {
            if to_all.except != id {
                pending.push(to_all.line);
            }
        }
        pending.lane_batch = self.number;
        pending.lane_at = self.lane.len();
    }

    /// Bytes formatted so far (a batch is written early when this grows
    /// past [`MAX_BATCH_BYTES`]).
    pub fn len(&self) -> usize {
        self.shared.len() + self.direct.len() + self.links.len()
    }

    /// True if no line has been formatted since the last flush.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True while a batch may take another event: fewer than
    /// [`MAX_BATCH_EVENTS`] taken and fewer than [`MAX_BATCH_BYTES`] formatted.
    pub fn has_room(&self, events_taken: usize) -> bool {
        events_taken < MAX_BATCH_EVENTS && self.len() < MAX_BATCH_BYTES
    }

    /// Recipients with spans of their own, in the order they first got
    /// one. Every other client on the lane gets the lane's lines alone.
    pub fn dirty(&self) -> &[ClientId] {
        &self.dirty
    }

    /// True if some line is on the lane (every client on it gets a share).
    pub fn has_lane(&self) -> bool {
        !self.lane.is_empty()
    }

    /// Before the flush: works out the whole lane's spans once, for every
    /// client whose share is the whole lane (see [`Batch::share`]).
    pub fn seal_lane(&mut self) {
        self.lane_spans.clear();
        self.lane_excepts.clear();
        for to_all in &self.lane {
            let merged = self
                .lane_spans
                .last_mut()
                .is_some_and(|last| last.absorb(to_all.line));
            if !merged {
                self.lane_spans.push(to_all.line);
            }
            self.lane_excepts.push(to_all.except);
        }
        self.lane_excepts.sort_unstable();
        self.lane_excepts.dedup();
    }

    /// `id`'s share of the batch as slices for one `writev`, into `out`
    /// (cleared first; reused so no allocation per recipient): its own
    /// spans, then the lane's lines after them that are not its own.
    /// Returns how many lines the share holds. Call [`Batch::seal_lane`]
    /// first; then [`Batch::delivered`] once the share is handed over.
    pub fn share<'b>(
        &'b self,
        id: ClientId,
        pending: &Pending,
        out: &mut Vec<IoSlice<'b>>,
    ) -> usize {
        out.clear();
        let own = pending.earlier.iter().chain(&pending.last).copied();
        let mut lines = pending.lines;
        let from = self.lane_at(pending);
        if !pending.on_lane || from == self.lane.len() {
            self.slices(own, out);
        } else if from == 0 && pending.lines == 0 && self.lane_excepts.binary_search(&id).is_err() {
            // The common case: a reader whose whole share is the lane.
            lines += self.lane.len();
            self.slices(self.lane_spans.iter().copied(), out);
        } else {
            let lane = self.lane[from..].iter().filter(|l| l.except != id);
            lines += lane.clone().count();
            self.slices(own.chain(lane.map(|l| l.line)), out);
        }
        lines
    }

    /// `pending`'s share is handed over: forgets its spans, and marks it
    /// caught up with the whole lane.
    pub fn delivered(&self, pending: &mut Pending) {
        pending.clear();
        pending.lane_batch = self.number;
        pending.lane_at = self.lane.len();
    }

    /// Spans as slices, adjacent ones merged.
    fn slices<'b>(&'b self, spans: impl Iterator<Item = Span>, out: &mut Vec<IoSlice<'b>>) {
        let mut current: Option<Span> = None;
        for span in spans {
            match &mut current {
                Some(c) => {
                    if !c.absorb(span) {
                        out.push(self.slice(std::mem::replace(c, span)));
                    }
                }
                None => current = Some(span),
            }
        }
        out.extend(current.map(|c| self.slice(c)));
    }

    fn slice(&self, span: Span) -> IoSlice<'_> {
        let buffer = match span.buffer {
            Buffer::Shared => &self.shared,
            Buffer::Direct => &self.direct,
            Buffer::Links => &self.links,
        };
        IoSlice::new(&buffer[span.start..span.end])
    }

    /// Forgets the batch once every share is written. The caller has
    /// handed each recipient's [`Pending`] to [`Batch::delivered`] (it
    /// holds them; the batch does not).
    pub fn finish(&mut self) {
        // Keep the buffers' memory for the next batch, unless one huge
        // batch made them big: an idle hub should not sit on megabytes.
        for buffer in [&mut self.shared, &mut self.direct, &mut self.links] {
            buffer.clear();
            buffer.shrink_to(1 << 20);
        }
        self.dirty.clear();
        self.lane.clear();
        self.lane_spans.clear();
        self.lane_excepts.clear();
        self.number += 1;
    }
}

/// Appends one encoded line to a buffer and returns where it is.
fn encode(out: &mut Vec<u8>, buffer: Buffer, line: ServerLine<'_>) -> Span {
    let start = out.len();
    line.encode(out);
    Span {
        buffer,
        start,
        end: out.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `id`'s share as (slices, text, lines), as a flush would write it.
    fn share(batch: &mut Batch, id: ClientId, pending: &Pending) -> (usize, String, usize) {
        batch.seal_lane();
        let mut slices = Vec::new();
        let lines = batch.share(id, pending, &mut slices);
        let bytes: Vec<u8> = slices.iter().flat_map(|s| s.iter().copied()).collect();
        (slices.len(), String::from_utf8(bytes).unwrap(), lines)
    }

    #[test]
    fn adjacent_lines_merge_into_one_span_and_buffers_stay_apart() {
        let mut batch = Batch::default();
        let (mut a, mut b) = (Pending::default(), Pending::default());
        for nick in ["x", "y"] {
            let join = batch.to_many(ServerLine::Join { nick });
            batch.queue(1, &mut a, join);
            let welcome = batch.to_one(ServerLine::Welcome { nick });
            batch.queue(2, &mut b, welcome);
        }
        assert_eq!(share(&mut batch, 1, &a), (1, "JOIN x\nJOIN y\n".into(), 2));
        assert_eq!(
            share(&mut batch, 2, &b),
            (1, "WELCOME x\nWELCOME y\n".into(), 2)
        );
        assert_eq!(batch.dirty(), &[1, 2]);
        let pong = batch.to_one(ServerLine::Pong);
        batch.queue(1, &mut a, pong);
        assert_eq!(
            share(&mut batch, 1, &a),
            (2, "JOIN x\nJOIN y\nPONG\n".into(), 3)
        );
        assert_eq!(batch.dirty(), &[1, 2], "a recipient is listed once");
    }

    #[test]
    fn link_lines_do_not_cut_a_clients_share() {
        let mut batch = Batch::default();
        let (mut client, mut link) = (Pending::default(), Pending::default());
        for text in ["a", "b", "c"] {
            let msg = batch.to_many(ServerLine::Msg { from: "x@h", text });
            batch.queue(1, &mut client, msg);
            let relayed = batch.to_links(&LinkLine::Msg { from: "x@h", text });
            batch.queue(2, &mut link, relayed);
        }
        assert_eq!(
            share(&mut batch, 1, &client),
            (1, "MSG x@h a\nMSG x@h b\nMSG x@h c\n".into(), 3)
        );
        assert_eq!(share(&mut batch, 2, &link).0, 1);
    }

    #[test]
    fn the_lane_reaches_everyone_on_it_but_the_exception_in_order() {
        let mut batch = Batch::default();
        // 1 and 2 were there before the batch; 3 connects in the middle.
        let (mut one, mut two, mut three) =
            (Pending::default(), Pending::default(), Pending::default());
        batch.enter_lane(&mut one);
        batch.enter_lane(&mut two);
        let a = batch.to_many(ServerLine::Msg {
            from: "one",
            text: "a",
        });
        batch.to_all_but(1, a);
        batch.enter_lane(&mut three);
        let pong = batch.to_one(ServerLine::Pong);
        batch.queue(2, &mut two, pong);
        let b = batch.to_many(ServerLine::Msg {
            from: "two",
            text: "b",
        });
        batch.to_all_but(2, b);
        assert_eq!(batch.dirty(), &[2], "lane lines list nobody");
        // One reads both lane lines but its own: b only.
        assert_eq!(share(&mut batch, 1, &one), (1, "MSG two b\n".into(), 1));
        // Two: a, then its PONG, then not its own b.
        assert_eq!(
            share(&mut batch, 2, &two),
            (2, "MSG one a\nPONG\n".into(), 2)
        );
        // Three came after a.
        assert_eq!(share(&mut batch, 3, &three), (1, "MSG two b\n".into(), 1));
        // Not on the lane (a link): nothing of it.
        assert_eq!(
            share(&mut batch, 4, &Pending::default()),
            (0, String::new(), 0)
        );
    }

    #[test]
    fn a_reader_of_the_whole_lane_gets_it_as_one_slice() {
        let mut batch = Batch::default();
        let mut reader = Pending::default();
        batch.enter_lane(&mut reader);
        for text in ["a", "b", "c"] {
            let line = batch.to_many(ServerLine::Msg { from: "p", text });
            batch.to_all_but(9, line);
        }
        let want = (1, "MSG p a\nMSG p b\nMSG p c\n".into(), 3);
        assert_eq!(share(&mut batch, 1, &reader), want);
        // Once delivered, it has nothing more in this batch.
        batch.delivered(&mut reader);
        assert_eq!(share(&mut batch, 1, &reader).2, 0);
    }

    /// `JOIN <nick>` on the lane, for everyone but client 2 (who joined).
    fn join_on_lane(batch: &mut Batch, nick: &str) {
        let join = batch.to_many(ServerLine::Join { nick });
        batch.to_all_but(2, join);
    }

    #[test]
    fn a_client_that_leaves_keeps_the_lane_so_far_and_gets_no_more() {
        let mut batch = Batch::default();
        let mut gone = Pending::default();
        batch.enter_lane(&mut gone);
        join_on_lane(&mut batch, "a");
        batch.leave_lane(1, &mut gone);
        assert_eq!(batch.dirty(), &[1], "its lane lines are its own now");
        join_on_lane(&mut batch, "b");
        assert_eq!(share(&mut batch, 1, &gone), (1, "JOIN a\n".into(), 1));
    }

    #[test]
    fn a_new_batch_starts_everyone_at_the_start_of_its_lane() {
        let mut batch = Batch::default();
        let mut reader = Pending::default();
        batch.enter_lane(&mut reader);
        join_on_lane(&mut batch, "a");
        batch.seal_lane();
        batch.delivered(&mut reader);
        batch.finish();
        join_on_lane(&mut batch, "b");
        assert_eq!(share(&mut batch, 1, &reader), (1, "JOIN b\n".into(), 1));
    }

    #[test]
    fn finish_forgets_everything() {
        let mut batch = Batch::default();
        let mut a = Pending::default();
        let pong = batch.to_one(ServerLine::Pong);
        batch.queue(7, &mut a, pong);
        assert!(batch.has_room(0) && !batch.has_room(MAX_BATCH_EVENTS));
        assert_eq!(batch.dirty(), &[7]);
        batch.delivered(&mut a);
        batch.finish();
        assert!(share(&mut batch, 7, &a).2 == 0 && batch.is_empty() && batch.dirty().is_empty());
        assert!(!batch.has_lane());
    }
}
