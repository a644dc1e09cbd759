//! Step 5: commands. `/nick`, `/list`, `/dm`, `/ping`, `/quit` and chat,
//! with the exact lines of docs/protocol.md.
//!
//! Node: the `if (line.startsWith('/nick ')) ...` you would write in the
//! `'data'` handler, plus the state the lesson calls "stateful networking":
//! who is connected and under which name. Here it is a plain struct that
//! returns what to send, so it can be tested without a single socket.

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

    /// `line` to every connected client except `from`.
    fn to_others(&self, from: ClientId, line: &str) -> Vec<Out> {
        self.nicks
            .keys()
            .filter(|&&id| id != from)
            .map(|&id| Out::line(id, line))
            .collect()
    }

    /// `/nick <name>`.
    fn rename(&mut self, id: ClientId, arg: Option<&str>) -> Vec<Out> {
        let Some(name) = arg.filter(|a| !a.is_empty()) else {
            return vec![refuse(id, "usage", "/nick <name>")];
        };
        if !valid_nick(name) {
            return vec![refuse(id, "bad-nick", "1-32 of A-Z a-z 0-9 _ -")];
        }
        let Some(old) = self.nicks.get(&id).cloned() else {
            return Vec::new();
        };
        if old == name {
            return vec![Out::line(id, format!("OK nick {name}"))];
        }
        if self.owners.contains_key(name) {
            return vec![refuse(id, "nick-taken", "someone has that nick")];
        }
        self.owners.remove(&old);
        self.owners.insert(name.to_string(), id);
        self.nicks.insert(id, name.to_string());
        let mut outs = vec![Out::line(id, format!("OK nick {name}"))];
        outs.extend(self.to_others(id, &format!("NICK {old} {name}")));
        outs
    }

    /// `/dm <nick> <text>`.
    fn direct(&self, id: ClientId, arg: Option<&str>) -> Vec<Out> {
        let usage = || vec![refuse(id, "usage", "/dm <nick> <text>")];
        let Some((to, text)) = arg.and_then(|a| a.split_once(' ')) else {
            return usage();
        };
        if text.is_empty() {
            return usage();
        }
        if !valid_nick(to) {
            return vec![refuse(id, "bad-nick", "1-32 of A-Z a-z 0-9 _ -")];
        }
        let (Some(&target), Some(from)) = (self.owners.get(to), self.nicks.get(&id)) else {
            return vec![refuse(id, "no-such-nick", "nobody has that nick")];
        };
        vec![
            Out::line(target, format!("DM {from} {text}")),
            Out::line(id, format!("OK dm {to}")),
        ]
    }

    /// `/list`: every nick, sorted by bytes.
    fn list(&self, id: ClientId) -> Vec<Out> {
        let mut names: Vec<&str> = self.nicks.values().map(String::as_str).collect();
        names.sort_unstable();
        vec![Out::line(id, format!("LIST {}", names.join(" ")))]
    }
}

impl Router for ChatRouter {
    fn connect(&mut self, id: ClientId) -> Vec<Out> {
        let nick = loop {
            self.last_guest += 1;
            let nick = format!("guest-{}", self.last_guest);
            if !self.owners.contains_key(&nick) {
                break nick;
            }
        };
        self.owners.insert(nick.clone(), id);
        self.nicks.insert(id, nick.clone());
        let mut outs = vec![Out::line(id, format!("WELCOME {nick}"))];
        outs.extend(self.to_others(id, &format!("JOIN {nick}")));
        outs
    }

    fn handle(&mut self, id: ClientId, line: &str) -> Vec<Out> {
        let Some(nick) = self.nicks.get(&id) else {
            return Vec::new(); // gone (after /quit, say): ignore
        };
        if line.is_empty() {
            return Vec::new();
        }
        if !line.starts_with('/') {
            return self.to_others(id, &format!("MSG {nick} {line}"));
        }
        match split_command(line) {
            ("/nick", arg) => self.rename(id, arg),
            ("/dm", arg) => self.direct(id, arg),
            ("/list", None) => self.list(id),
            ("/ping", None) => vec![Out::line(id, "PONG")],
            ("/quit", None) => {
                let mut outs = vec![Out::line(id, "BYE"), Out::Close(id)];
                outs.extend(self.disconnect(id));
                outs
            }
            (cmd @ ("/list" | "/ping" | "/quit"), Some(_)) => {
                vec![refuse(id, "usage", &format!("{cmd} takes no arguments"))]
            }
            _ => vec![refuse(id, "unknown-command", "no such command")],
        }
    }

    fn disconnect(&mut self, id: ClientId) -> Vec<Out> {
        let Some(nick) = self.nicks.remove(&id) else {
            return Vec::new();
        };
        self.owners.remove(&nick);
        self.to_others(id, &format!("LEAVE {nick}"))
    }

    fn nick(&self, id: ClientId) -> Option<&str> {
        self.nicks.get(&id).map(String::as_str)
    }
}

/// Cuts a command line at its first space: `"/dm bob hi"` is
/// `("/dm", Some("bob hi"))`, `"/list"` is `("/list", None)`. Everything
/// after the space is kept byte for byte.
pub fn split_command(line: &str) -> (&str, Option<&str>) {
    match line.split_once(' ') {
        Some((cmd, arg)) => (cmd, Some(arg)),
        None => (line, None),
    }
}

/// A nick is 1 to 32 of `A-Z a-z 0-9 _ -`.
pub fn valid_nick(name: &str) -> bool {
    (1..=MAX_NICK).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// An `ERR <code> <text>` line for the asker.
pub fn refuse(id: ClientId, code: &str, text: &str) -> Out {
    Out::line(id, format!("ERR {code} {text}"))
}
