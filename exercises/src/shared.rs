//! What the steps and the checks agree on.
//!
//! A check can only grade your code if it knows what to call. For the
//! servers (steps 1, 2, 3, 7) that is just a function taking a
//! `TcpListener`. For the pieces with no sockets in them (steps 4, 5, 6) it
//! is a trait defined here: you implement the trait, the check calls it. In
//! JavaScript terms a trait is an interface your class promises to have.

/// A connection's number, given out by the acceptor (1, 2, 3, ...). The
/// router keys everything by it, the way the Node lesson keys nothing and
/// keeps sockets in an array.
pub type ClientId = u64;

/// One thing a line framer (step 4) found in the byte stream.
#[derive(Clone, PartialEq, Eq)]
pub enum Frame {
    /// A whole line, without its `\n`, and without a `\r` right before it.
    Line(Vec<u8>),
    /// The current line went past the limit. Reported once, as soon as it is
    /// known (before its `\n` arrives); the rest of that line is thrown away.
    TooLong,
}

/// Shows a line as text (`Line("ab\r")`), not as a list of numbers, so a
/// failed check is readable.
impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Frame::Line(bytes) => write!(f, "Line(\"{}\")", bytes.escape_ascii()),
            Frame::TooLong => f.write_str("TooLong"),
        }
    }
}

/// Turns the chunks that `read()` returns into lines (step 4). Node's
/// `socket.on('data', buffer => ...)` hands you such chunks too: a chunk is
/// not a message.
pub trait Framer {
    /// Takes the bytes of one `read()` and returns every frame they complete,
    /// in order. Bytes of an unfinished line are kept for the next call.
    fn feed(&mut self, bytes: &[u8]) -> Vec<Frame>;
    /// How many bytes are held for the unfinished line. Must never be more
    /// than `max_line + 1` (the extra byte may be the `\r` of a `\r\n`).
    fn buffered(&self) -> usize;
}

/// What a router (steps 5 and 6) asks the dispatcher to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    /// Send this line (without its `\n`: the dispatcher adds it) to a client.
    Line(ClientId, String),
    /// Close this client's connection, after the lines already queued for it.
    Close(ClientId),
}

impl Out {
    /// Shorthand used by routers and checks: `Out::line(2, "PONG")`.
    pub fn line(to: ClientId, text: impl Into<String>) -> Out {
        Out::Line(to, text.into())
    }
}

/// The hub's state and rules, with no sockets in it (steps 5 and 6).
///
/// The dispatcher thread owns the one router and is the only one to call it,
/// so it needs no lock. Each call returns what to send; the router never
/// writes anything itself. That makes every rule testable without a network.
pub trait Router {
    /// A client connected: give it a nick and say who needs to know.
    fn connect(&mut self, id: ClientId) -> Vec<Out>;
    /// A client sent one line (framed, `\r\n` already removed, valid UTF-8).
    fn handle(&mut self, id: ClientId, line: &str) -> Vec<Out>;
    /// A client is gone (end of stream, reset, cut off). Forget it and tell
    /// the others. Calling it for a client already gone returns nothing.
    fn disconnect(&mut self, id: ClientId) -> Vec<Out>;
    /// The client's current nick, if it is connected.
    fn nick(&self, id: ClientId) -> Option<&str>;
}

/// A tiny seeded random number generator (SplitMix64), so that step 8's
/// relay does the same thing every time for the same seed. Like a seeded
/// `Math.random()`, which JavaScript does not have.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator that always gives the same numbers for the same seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` must not be 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}
