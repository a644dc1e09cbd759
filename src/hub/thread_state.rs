//! What a hub thread is doing, as one byte: the [`State`] each thread
//! stores in its scoreboard slot before a blocking call
//! ([`crate::hub::score`]), and the words `/stats` and `tcphub top` show
//! for it. Moved out of score.rs so the scoreboard (who stores it) and the
//! snapshot (who shows it, [`crate::hub::stats`]) both import it, and
//! neither the other's internals.

/// What a thread is doing. Stored as a `u8` in its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    /// Not started yet (or a value from a newer build).
    Starting = 0,
    /// `acceptor`, `monitor`: blocked in `accept()`.
    Accept = 1,
    /// `acceptor`: admitting a new connection, starting its thread.
    Admit = 2,
    /// `acceptor`: `accept()` failed (out of descriptors); sleeping.
    BackOff = 3,
    /// `client-<id>`: blocked in `read()` on its socket.
    Read = 4,
    /// `client-<id>`: framing, parsing and handing lines to the channel.
    HandOver = 5,
    /// `client-<id>`: blocked in `send()`: the channel is full.
    ChannelFull = 6,
    /// `dispatcher`: blocked in `recv()`, waiting for events.
    Recv = 7,
    /// `dispatcher`: routing a batch.
    Route = 8,
    /// `dispatcher`: blocked in `writev()` to the slot's target client.
    Writev = 9,
    /// `dispatcher`: between two writes of a flush (since the last began).
    Flush = 10,
    /// `monitor`: reading requests and answering them.
    Serve = 11,
    /// The thread has ended.
    Exited = 12,
    /// `linker`: blocked in `connect()` to a `--link` target.
    Connect = 13,
    /// `link-acceptor`, `linker`: reading the first line of a link (the
    /// peer's `HELLO`), for at most the link timeout.
    Hello = 14,
    /// `client-<id>`: holding lines until the dispatcher has written its
    /// batch (src/hub/batch_gate.rs).
    NextBatch = 15,
    /// `dispatcher`: waiting a moment for more lines before the next
    /// batch (`--linger-us`).
    Linger = 16,
}

impl State {
    pub(crate) const ALL: [State; 17] = [
        State::Starting,
        State::Accept,
        State::Admit,
        State::BackOff,
        State::Read,
        State::HandOver,
        State::ChannelFull,
        State::Recv,
        State::Route,
        State::Writev,
        State::Flush,
        State::Serve,
        State::Exited,
        State::Connect,
        State::Hello,
        State::NextBatch,
        State::Linger,
    ];

    pub(crate) fn from_u8(n: u8) -> State {
        State::ALL
            .get(n as usize)
            .copied()
            .unwrap_or(State::Starting)
    }

    /// The name used in `/stats` (`"state"`).
    pub fn name(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Accept => "accept",
            State::Admit => "admit",
            State::BackOff => "back_off",
            State::Read => "read",
            State::HandOver => "hand_over",
            State::ChannelFull => "channel_full",
            State::Recv => "recv",
            State::Route => "route",
            State::Writev => "writev",
            State::Flush => "flush",
            State::Serve => "serve",
            State::Exited => "exited",
            State::Connect => "connect",
            State::Hello => "hello",
            State::NextBatch => "next_batch",
            State::Linger => "linger",
        }
    }

    /// What the thread waits for (`"waits_on"` in `/stats`): `peer` (a
    /// remote peer: a connection, bytes), `channel` (the hub's channel: for
    /// events, or for room in it), `client` (a client to take its bytes),
    /// `clock` (a back-off sleep), `cpu` (nothing: it is working), `none`.
    pub fn waits_on(self) -> &'static str {
        match self {
            State::Accept | State::Read | State::Connect | State::Hello => "peer",
            State::Recv | State::ChannelFull | State::NextBatch => "channel",
            State::Writev => "client",
            State::BackOff | State::Linger => "clock",
            State::Admit | State::HandOver | State::Route | State::Flush | State::Serve => "cpu",
            State::Starting | State::Exited => "none",
        }
    }

    /// True for the waits that hold the hub up (`"blocked"` in `/stats`):
    /// a reader on a full channel, the dispatcher in `writev()`, a back-off.
    /// Waiting for a peer or for work is a thread's normal rest.
    pub fn blocked(self) -> bool {
        matches!(self, State::ChannelFull | State::Writev | State::BackOff)
    }

    /// How `/stats` words it for people (`"doing"`).
    pub fn doing(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Accept => "in accept()",
            State::Admit => "admitting a client",
            State::BackOff => "backing off after a failed accept()",
            State::Read => "in read()",
            State::HandOver => "handing lines to the channel",
            State::ChannelFull => "blocked on full channel",
            State::Recv => "waiting on the channel",
            State::Route => "routing",
            State::Writev => "in writev() to",
            State::Flush => "flushing",
            State::Serve => "serving a request",
            State::Exited => "exited",
            State::Connect => "in connect() to",
            State::Hello => "reading a HELLO from",
            State::NextBatch => "waiting for the dispatcher's next batch",
            State::Linger => "lingering for more lines",
        }
    }

    /// `doing` with a slot's note after it (`in read() from hub b`,
    /// `backing off for 4s before dialling 127.0.0.1:7001`).
    pub fn doing_with(self, note: &str) -> String {
        match (self, note) {
            (_, "") => self.doing().to_string(),
            // The linker's back-off is not the acceptor's, and its wait
            // for news is on a channel of its own.
            (State::BackOff, note) => format!("backing off {note}"),
            (State::Recv, note) => format!("waiting {note}"),
            (state, note) => format!("{} {note}", state.doing()),
        }
    }
}
