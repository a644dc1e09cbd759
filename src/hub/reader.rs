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
use std::ops::ControlFlow;
use std::sync::Arc;

use crossbeam_channel::Sender;
use log::debug;

use crate::hub::dispatcher::Event;
use crate::proto::client_line::{Command, Parsed, parse_frame};
use crate::proto::framing::LineFramer;
use crate::proto::router::ClientId;

/// First size of the read buffer. Idle clients never need more, and with
/// thousands of them every byte per client counts.
const FIRST_READ_BUFFER: usize = 512;
/// The buffer doubles each time a read fills it, up to this size, so a client
/// that sends a lot gets few, large reads.
const MAX_READ_BUFFER: usize = 64 * 1024;

/// Runs one client's read loop until end of stream, an error, `/quit`, or
/// the hub going away. `socket` is shared with the dispatcher: this thread
/// only reads from it, the dispatcher only writes to it.
pub fn run(id: ClientId, socket: Arc<TcpStream>, events: Sender<Event>, max_line: usize) {
    let mut framer = LineFramer::new(max_line);
    let mut buffer = vec![0u8; FIRST_READ_BUFFER];
    let why = loop {
        // This is where a client thread spends its life: parked in the
        // kernel until bytes arrive, the peer hangs up, or the dispatcher
        // shuts the socket down.
        debug!("blocking in read()");
        let n = match (&*socket).read(&mut buffer) {
            Ok(0) => break "end of stream".to_string(),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => break format!("read error: {e}"),
        };
        debug!("read() returned {n} bytes");

        let flow = framer.feed(&buffer[..n], |frame| {
            let event = match parse_frame(frame, max_line) {
                Parsed::Empty => return ControlFlow::Continue(()),
                Parsed::Command(command) => Event::Command { id, command },
                Parsed::Refused(refusal) => Event::Refused { id, refusal },
            };
            let quit = matches!(
                event,
                Event::Command {
                    command: Command::Quit,
                    ..
                }
            );
            if !hand_over(&events, event) || quit {
                // The hub is shutting down, or the client said /quit: lines
                // after /quit in the same read are ignored, as the contract says.
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        });
        if flow.is_break() {
            debug!("reader done (quit or hub stopping)");
            return;
        }
        if n == buffer.len() && buffer.len() < MAX_READ_BUFFER {
            buffer.resize(buffer.len() * 2, 0);
        }
    };
    debug!("reader done: {why}");
    // Ignored if the hub is already gone.
    hand_over(&events, Event::Closed { id, why });
}

/// The moment a line leaves its client thread: one parsed event into the
/// hub's channel. Returns false if the dispatcher is gone (shutting down).
///
/// Blocks while the channel is full: the dispatcher is behind, so this
/// client waits, stops reading its socket, and TCP slows its sender down.
/// A function of its own so a debugger can stop exactly here:
/// `break tcphub::hub::reader::hand_over` (docs/debugging.md).
#[inline(never)]
pub fn hand_over(events: &Sender<Event>, event: Event) -> bool {
    events.send(event).is_ok()
}
