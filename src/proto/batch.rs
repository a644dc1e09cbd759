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

/// The spans waiting for one recipient, in order. Each client's state holds
/// one, so queueing a line costs no lookup.
///
/// The newest span is kept inline, not in the list: with one publisher a
/// recipient's whole share is one span, so queueing a line for it touches
/// only this struct, never a heap block of its own.
#[derive(Debug, Default)]
pub struct Pending {
    /// Spans before `last`, oldest first (empty in the common case).
    earlier: Vec<Span>,
    /// The newest span, the one a next adjacent line extends.
    last: Option<Span>,
    /// How many lines are waiting.
    lines: usize,
}

impl Pending {
    /// True if nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.last.is_none()
    }

    /// How many lines are waiting (the live view counts lines out).
    pub fn lines(&self) -> usize {
        self.lines
    }

    /// Forgets what was waiting, once it is written.
    pub fn clear(&mut self) {
        self.last = None;
        self.lines = 0;
        if !self.earlier.is_empty() {
            self.earlier.clear();
            // A burst (many JOINs interleaved with WELCOMEs) can leave a
            // long list behind; 10,000 idle clients must not keep it.
            self.earlier.shrink_to(4);
        }
    }
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
    /// Recipients with something pending, in the order they first got it.
    dirty: Vec<ClientId>,
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
    /// readers, so a reader's share of a batch is one span).
    #[inline]
    pub fn queue(&mut self, id: ClientId, pending: &mut Pending, line: Span) {
        pending.lines += 1;
        match &mut pending.last {
            Some(last) if last.buffer == line.buffer && last.end == line.start => {
                last.end = line.end
            }
            Some(last) => pending.earlier.push(std::mem::replace(last, line)),
            None => {
                self.dirty.push(id);
                pending.last = Some(line);
            }
        }
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

    /// Recipients with lines waiting, in the order they first got one.
    pub fn dirty(&self) -> &[ClientId] {
        &self.dirty
    }

    /// One recipient's share of the batch as slices for one `writev`, into
    /// `out` (cleared first; reused so no allocation per recipient).
    pub fn slices<'b>(&'b self, pending: &Pending, out: &mut Vec<IoSlice<'b>>) {
        out.clear();
        out.extend(pending.earlier.iter().chain(&pending.last).map(|span| {
            let buffer = match span.buffer {
                Buffer::Shared => &self.shared,
                Buffer::Direct => &self.direct,
                Buffer::Links => &self.links,
            };
            IoSlice::new(&buffer[span.start..span.end])
        }));
    }

    /// Forgets the batch once every share is written. The caller has
    /// emptied each recipient's [`Pending`] (it holds them; the batch does
    /// not).
    pub fn finish(&mut self) {
        // Keep the buffers' memory for the next batch, unless one huge
        // batch made them big: an idle hub should not sit on megabytes.
        for buffer in [&mut self.shared, &mut self.direct, &mut self.links] {
            buffer.clear();
            buffer.shrink_to(1 << 20);
        }
        self.dirty.clear();
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

    fn share(batch: &Batch, pending: &Pending) -> (usize, String) {
        let mut slices = Vec::new();
        batch.slices(pending, &mut slices);
        let bytes: Vec<u8> = slices.iter().flat_map(|s| s.iter().copied()).collect();
        (slices.len(), String::from_utf8(bytes).unwrap())
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
        assert_eq!(share(&batch, &a), (1, "JOIN x\nJOIN y\n".to_string()));
        assert_eq!(share(&batch, &b), (1, "WELCOME x\nWELCOME y\n".to_string()));
        assert_eq!(batch.dirty(), &[1, 2]);
        let pong = batch.to_one(ServerLine::Pong);
        batch.queue(1, &mut a, pong);
        assert_eq!(share(&batch, &a), (2, "JOIN x\nJOIN y\nPONG\n".to_string()));
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
            share(&batch, &client),
            (1, "MSG x@h a\nMSG x@h b\nMSG x@h c\n".to_string())
        );
        assert_eq!(share(&batch, &link).0, 1);
    }

    #[test]
    fn finish_forgets_everything() {
        let mut batch = Batch::default();
        let mut a = Pending::default();
        let pong = batch.to_one(ServerLine::Pong);
        batch.queue(7, &mut a, pong);
        assert!(batch.has_room(0) && !batch.has_room(MAX_BATCH_EVENTS));
        assert_eq!(batch.dirty(), &[7]);
        batch.finish();
        a.clear();
        assert!(a.is_empty() && batch.is_empty() && batch.dirty().is_empty());
    }
}
