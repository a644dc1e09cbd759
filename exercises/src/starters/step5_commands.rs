//! Step 5: commands. `/nick`, `/list`, `/dm`, `/ping`, `/quit` and chat,
//! with the exact lines of docs/protocol.md.
//!
//! Node: the `if (line.startsWith('/nick ')) ...` you would write in the
//! `'data'` handler, plus the state the lesson calls "stateful networking":
//! who is connected and under which name. Here it is a plain struct that
//! returns what to send, so it can be tested without a single socket.
//!
//! Grade it: `cargo test --test grade step5`. The check plays a whole
//! session (`src/checks/step5.rs`): read it, it is the spec in code.

// The bodies below are `todo!()`, so parameters and imports look unused
// until you write them. These lints would only be noise while you work;
// delete this line when the step is done to get them back.
#![allow(unused_variables, unused_imports, unused_mut, dead_code)]

use std::collections::{BTreeMap, HashMap};

use crate::shared::{ClientId, Out, Router};

/// Longest nick the protocol allows.
pub const MAX_NICK: usize = 32;

/// The chat part of the hub: every client's nick, and the rules.
#[derive(Debug, Default)]
pub struct ChatRouter {
    /// Connected clients and their nicks, in id order.
    nicks: BTreeMap<ClientId, String>,
    /// The other way round, to find `/dm`'s target and refuse taken nicks.
    owners: HashMap<String, ClientId>,
    /// The last guest number given out; numbers are never reused.
    last_guest: u64,
}

impl ChatRouter {
    /// An empty router: nobody connected, the next guest is `guest-1`.
    pub fn new() -> ChatRouter {
        ChatRouter::default()
    }
}

impl Router for ChatRouter {
    /// `WELCOME guest-<N>` to the newcomer (N counts up and skips names in
    /// use), `JOIN guest-<N>` to everyone else.
    fn connect(&mut self, id: ClientId) -> Vec<Out> {
        todo!("pick the next free guest-N, remember it both ways, WELCOME + JOIN")
    }

    /// Ignore clients that are gone and empty lines. A line not starting
    /// with `/` is chat: `MSG <nick> <line>` to everyone else. Otherwise
    /// cut it with [`split_command`] and answer, exactly as
    /// docs/protocol.md says:
    /// - `/nick <name>`: `OK nick <name>` to you, `NICK <old> <new>` to the
    ///   others; `ERR usage`, `ERR bad-nick`, `ERR nick-taken`; renaming to
    ///   your own nick is just `OK nick <name>`.
    /// - `/list`: `LIST <nick> ...`, sorted, you included.
    /// - `/dm <nick> <text>`: `DM <you> <text>` to them, `OK dm <nick>` to
    ///   you; `ERR usage`, `ERR bad-nick`, `ERR no-such-nick`.
    /// - `/ping`: `PONG`. `/quit`: `BYE`, `Out::Close`, and `LEAVE` to the
    ///   others (call your own [`Router::disconnect`]).
    /// - `/list`, `/ping`, `/quit` with an argument: `ERR usage`.
    /// - anything else starting with `/`: `ERR unknown-command`.
    fn handle(&mut self, id: ClientId, line: &str) -> Vec<Out> {
        todo!("chat or command; one small private method per command keeps this short")
    }

    /// Forget the client (its nick is free again); `LEAVE <nick>` to the
    /// others. Nothing if it was already gone.
    fn disconnect(&mut self, id: ClientId) -> Vec<Out> {
        todo!("remove from both maps; LEAVE to everyone else")
    }

    fn nick(&self, id: ClientId) -> Option<&str> {
        todo!("self.nicks.get(&id).map(String::as_str)")
    }
}

/// Cuts a command line at its first space: `"/dm bob hi"` is
/// `("/dm", Some("bob hi"))`, `"/list"` is `("/list", None)`. Everything
/// after the space is kept byte for byte.
pub fn split_command(line: &str) -> (&str, Option<&str>) {
    todo!("line.split_once(' ')")
}

/// A nick is 1 to 32 of `A-Z a-z 0-9 _ -`.
pub fn valid_nick(name: &str) -> bool {
    todo!("check the length, then every byte")
}

/// An `ERR <code> <text>` line for the asker.
pub fn refuse(id: ClientId, code: &str, text: &str) -> Out {
    todo!("Out::line(id, format!(...))")
}
