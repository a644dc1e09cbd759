//! The per-client reader: one OS thread per connection, named `client-<id>`.
//!
//! This thread reads its socket and nothing else. It blocks
//! in `read()` until the peer sends something, frames the bytes into lines,
//! parses each line (so the dispatcher never has to), and sends the result
//! into the hub's one channel. It never writes to any socket: replies, even
//! `ERR` for its own client, go through the dispatcher, so they stay in order
//! with everything else that client receives.

use std::io::{self, Read};
use std::net::TcpStream;
use std::sync::Arc;

use crossbeam_channel::{Sender, TrySendError};
use log::debug;

use crate::hub::dispatcher::Event;
use crate::hub::score::{Slot, State};
use crate::proto::framing::LineFramer;
use crate::proto::router::ClientId;

/// Runs one client's read loop until end of stream, an error, `/quit`, or
/// the hub going away. `socket` is shared with the dispatcher: this thread
/// only reads from it, the dispatcher only writes to it. `slot` is this
/// thread's place on the scoreboard (src/hub/score.rs): what it waits for.
pub fn run(
    id: ClientId,
    socket: Arc<TcpStream>,
    events: Sender<Event>,
    max_line: usize,
    slot: Arc<Slot>,
) {
    let mut framer = LineFramer::new(max_line);
    let why = loop {
        // This is where a client thread spends its life: parked in the
        // kernel until bytes arrive, the peer hangs up, or the dispatcher
        // shuts the socket down. The bytes land in the framer's buffer.
        debug!("blocking in read()");
        slot.enter(State::Read);
        let n = match (&*socket).read(framer.spare()) {
            Ok(0) => break "end of stream".to_string(),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => break format!("read error: {e}"),
        };
        debug!("read() returned {n} bytes");
        slot.read_returned(n);
        framer.filled(n);
        // Every complete line of this read, parsed, one at a time.
        while let Some(line) = framer.next_inbound() {
            let quit = line.is_quit();
            slot.line_in();
            if !hand_over(&events, Event::Line { id, line }, &slot) || quit {
                // The hub is shutting down, or the client said /quit: lines
                // after /quit in the same read are ignored, as the contract says.
                debug!("reader done (quit or hub stopping)");
                slot.enter(State::Exited);
                return;
            }
        }
    };
    debug!("reader done: {why}");
    // Ignored if the hub is already gone.
    hand_over(&events, Event::Closed { id, why }, &slot);
    slot.enter(State::Exited);
}
/// The moment a line leaves its client thread: one parsed event into the
/// hub's channel. Returns false if the dispatcher is gone (shutting down).
///
/// Blocks while the channel is full: the dispatcher is behind, so this
/// client waits, stops reading its socket, and TCP slows its sender down.
/// A function of its own so a debugger can stop exactly here:
/// `break tcphub::hub::reader::hand_over` (docs/debugging.md).
///
/// It tries first without waiting, so the scoreboard can show a thread
/// `blocked on full channel` only when it really is (docs/live-view.md).
#[inline(never)]
pub fn hand_over(events: &Sender<Event>, event: Event, slot: &Slot) -> bool {
    match events.try_send(event) {
        Ok(()) => true,
        Err(TrySendError::Full(event)) => {
            slot.enter(State::ChannelFull);
            events.send(event).is_ok()
        }
        Err(TrySendError::Disconnected(_)) => false,
    }
}
