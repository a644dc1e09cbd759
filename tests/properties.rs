//! Property tests of the IO-free core (`src/proto/`): instead of the
//! examples the unit tests pick, proptest generates inputs, and on a
//! failure shrinks them to a smallest one that still fails.
//!
//! - the framer: any split of any byte stream frames like the whole, which
//!   frames like a plain reference (split on `\n`), and it never holds more
//!   than `max_line + 1` bytes;
//! - the parsers: no bytes panic `parse_line`, no text panics
//!   `ServerLine::parse`, and `encode` then `parse` gives back any valid
//!   `ServerLine`;
//! - the router: for random command sequences from several clients, each
//!   client gets exactly the lines a small reference model of the contract
//!   (docs/protocol.md) says, in order.
//!
//! Case counts are modest (the whole file runs in a few seconds); set
//! `PROPTEST_CASES` to run more.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::io::IoSlice;
use std::sync::Arc;

use proptest::prelude::*;

use tcphub::proto::admission::Admission;
use tcphub::proto::client_line::{Parsed, parse_line};
use tcphub::proto::framing::{Frame, Inbound, LineFramer};
use tcphub::proto::router::{ClientId, Outlet, Router};
use tcphub::proto::server_line::{ErrorCode, ServerLine};

/// Cases per property unless `PROPTEST_CASES` says otherwise.
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---- (a) framing --------------------------------------------------------

/// A frame as an owned value, for comparing.
#[derive(Debug, Clone, PartialEq, Eq)]
enum F {
    Line(Vec<u8>),
    TooLong,
}

/// Feeds `pieces` one after the other the way a reader does (read what
/// fits into `spare()`, `filled()`, pull every frame), checking the bound
/// on what the framer holds after each pull.
fn frame_pieces(max_line: usize, pieces: &[&[u8]]) -> Result<Vec<F>, TestCaseError> {
    let mut framer = LineFramer::new(max_line);
    let mut out = Vec::new();
    for piece in pieces {
        let mut piece: &[u8] = piece;
        while !piece.is_empty() {
            let room = framer.spare();
            prop_assert!(!room.is_empty(), "spare() is never empty");
            let n = room.len().min(piece.len());
            room[..n].copy_from_slice(&piece[..n]);
            framer.filled(n);
            piece = &piece[n..];
            while let Some(frame) = framer.next_frame() {
                out.push(match frame {
                    Frame::Line(line) => F::Line(line.to_vec()),
                    Frame::TooLong => F::TooLong,
                });
            }
            prop_assert!(
                framer.buffered() <= max_line + 1,
                "holds {} bytes with max_line {max_line}",
                framer.buffered()
            );
        }
    }
    Ok(out)
}

/// The contract's framing, written the obvious way: split on `\n`, drop one
/// `\r` before it, too long past `max_line`. An unfinished tail is reported
/// too long as soon as it cannot fit any more (`max_line + 1` bytes may
/// still end in `\r\n`).
fn reference_frames(max_line: usize, stream: &[u8]) -> Vec<F> {
    let mut out = Vec::new();
    let mut parts: Vec<&[u8]> = stream.split(|&b| b == b'\n').collect();
    let tail = parts.pop().unwrap_or_default();
    for line in parts {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        out.push(if line.len() > max_line {
            F::TooLong
        } else {
            F::Line(line.to_vec())
        });
    }
    let fits = tail.len() <= max_line || (tail.len() == max_line + 1 && tail.ends_with(b"\r"));
    if !fits {
        out.push(F::TooLong);
    }
    out
}

/// Byte streams rich in the bytes that matter: `\n`, `\r`, and runs long
/// enough to pass small (and occasionally the default) line limits.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        4 => Just(b"\n".to_vec()),
        3 => Just(b"\r\n".to_vec()),
        2 => Just(b"\r".to_vec()),
        6 => proptest::collection::vec(prop_oneof![Just(b'a'), Just(b' '), Just(b'/'), any::<u8>()], 1..12),
        1 => (1usize..5000).prop_map(|n| vec![b'x'; n]),
    ];
    proptest::collection::vec(token, 0..40).prop_map(|tokens| tokens.concat())
}

fn max_line() -> impl Strategy<Value = usize> {
    prop_oneof![8 => 1usize..24, 1 => Just(600usize), 1 => Just(4096usize)]
}

proptest! {
    #![proptest_config(config(200))]

    #[test]
    fn any_split_frames_like_the_whole_and_like_the_reference(
        max_line in max_line(),
        stream in stream(),
        cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..12),
    ) {
        let whole = frame_pieces(max_line, &[&stream])?;
        prop_assert_eq!(&whole, &reference_frames(max_line, &stream));
        // Cut the stream at random points (sorted, repeats give empty pieces).
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        points.sort_unstable();
        let mut pieces = Vec::new();
        let mut from = 0;
        for &to in &points {
            pieces.push(&stream[from..to]);
            from = to;
        }
        pieces.push(&stream[from..]);
        prop_assert_eq!(&frame_pieces(max_line, &pieces)?, &whole);
    }

    #[test]
    fn one_byte_at_a_time_frames_like_the_whole(max_line in 1usize..24, stream in stream()) {
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        prop_assert_eq!(frame_pieces(max_line, &bytes)?, frame_pieces(max_line, &[&stream])?);
    }
}

// ---- (b) parsing --------------------------------------------------------

fn nick() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-]{1,32}"
}

fn topic() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.-]{1,64}"
}

/// Free text as a server relays it: any characters but `\n`, spaces
/// (leading, trailing, doubled) included, and possibly empty.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ a-z/]{0,12}",
        "[^\n]{0,40}",
        Just(String::new()),
        Just("  ".to_string()),
    ]
}

/// An owned server line, from which a borrowed `ServerLine` is made.
#[derive(Debug, Clone)]
enum Owned {
    Welcome(String),
    Join(String),
    Leave(String),
    Msg(String, String),
    Dm(String, String),
    Event(String, String, String),
    Nick(String, String),
    List(Vec<String>),
    Ok(String, String),
    Pong,
    Bye,
    Err(ErrorCode, String),
    Help(String),
}

fn owned_line() -> impl Strategy<Value = Owned> {
    prop_oneof![
        nick().prop_map(Owned::Welcome),
        nick().prop_map(Owned::Join),
        nick().prop_map(Owned::Leave),
        (nick(), text()).prop_map(|(a, b)| Owned::Msg(a, b)),
        (nick(), text()).prop_map(|(a, b)| Owned::Dm(a, b)),
        (topic(), nick(), text()).prop_map(|(a, b, c)| Owned::Event(a, b, c)),
        (nick(), nick()).prop_map(|(a, b)| Owned::Nick(a, b)),
        proptest::collection::vec(nick(), 0..6).prop_map(Owned::List),
        ("[a-z]{1,6}", text()).prop_map(|(a, b)| Owned::Ok(a, b)),
        Just(Owned::Pong),
        Just(Owned::Bye),
        (proptest::sample::select(ErrorCode::ALL.to_vec()), text())
            .prop_map(|(code, t)| Owned::Err(code, t)),
        text().prop_map(Owned::Help),
    ]
}

impl Owned {
    fn with<R>(&self, f: impl FnOnce(&ServerLine<'_>) -> R) -> R {
        let list: Vec<&str>;
        let line = match self {
            Owned::Welcome(nick) => ServerLine::Welcome { nick },
            Owned::Join(nick) => ServerLine::Join { nick },
            Owned::Leave(nick) => ServerLine::Leave { nick },
            Owned::Msg(from, text) => ServerLine::Msg { from, text },
            Owned::Dm(from, text) => ServerLine::Dm { from, text },
            Owned::Event(topic, from, payload) => ServerLine::Event {
                topic,
                from,
                payload,
            },
            Owned::Nick(old, new) => ServerLine::Nick { old, new },
            Owned::List(nicks) => {
                list = nicks.iter().map(String::as_str).collect();
                ServerLine::List {
                    nicks: Cow::Borrowed(&list),
                }
            }
            Owned::Ok(command, detail) => ServerLine::Ok { command, detail },
            Owned::Pong => ServerLine::Pong,
            Owned::Bye => ServerLine::Bye,
            Owned::Err(code, text) => ServerLine::Err { code: *code, text },
            Owned::Help(text) => ServerLine::Help { text },
        };
        f(&line)
    }
}

proptest! {
    #![proptest_config(config(500))]

    #[test]
    fn no_bytes_panic_the_client_line_parser(line in proptest::collection::vec(any::<u8>(), 0..200)) {
        let parsed = parse_line(&line);
        // A few facts that hold for every line, not only "no panic".
        if line.is_empty() {
            prop_assert_eq!(parsed, Parsed::Empty);
        } else if let Ok(text) = std::str::from_utf8(&line) {
            if !text.starts_with('/') {
                prop_assert_eq!(parsed, Parsed::Command(tcphub::proto::client_line::Command::Chat(text.to_string())));
            }
        } else {
            prop_assert!(matches!(parsed, Parsed::Refused(r) if r.code == ErrorCode::BadUtf8));
        }
    }

    #[test]
    fn command_like_lines_never_panic_the_parser(
        word in proptest::sample::select(vec!["nick", "list", "dm", "sub", "unsub", "pub", "ping", "quit", "help", "NICK", "", "/"]),
        arg in "[ -~]{0,40}",
        space in any::<bool>(),
    ) {
        let line = format!("/{word}{}{arg}", if space { " " } else { "" });
        let _ = parse_line(line.as_bytes());
    }

    #[test]
    fn no_text_panics_the_server_line_parser(line in "[^\n]{0,80}") {
        let _ = ServerLine::parse(&line);
    }

    #[test]
    fn server_line_like_text_never_panics_the_parser(
        kind in proptest::sample::select(vec!["WELCOME", "JOIN", "LEAVE", "MSG", "DM", "EVENT", "NICK", "LIST", "OK", "PONG", "BYE", "ERR", "HELP"]),
        rest in "[ a-z-]{0,20}",
    ) {
        let _ = ServerLine::parse(&format!("{kind}{rest}"));
        let _ = ServerLine::parse(&format!("{kind} {rest}"));
    }

    #[test]
    fn encode_then_parse_round_trips(owned in owned_line()) {
        owned.with(|line| {
            let mut wire = Vec::new();
            line.encode(&mut wire);
            prop_assert_eq!(wire.pop(), Some(b'\n'));
            prop_assert!(!wire.contains(&b'\n'), "one line");
            let text = std::str::from_utf8(&wire).unwrap();
            // (ServerLine is invariant in its lifetime, so compare the
            // values through Debug, which shows every field.)
            let parsed = ServerLine::parse(text);
            prop_assert_eq!(format!("{parsed:?}"), format!("{:?}", Some(line)));
            Ok(())
        })?;
    }
}

// ---- (c) routing --------------------------------------------------------

/// One step of a random session.
#[derive(Debug, Clone)]
enum Op {
    /// A new connection.
    Connect,
    /// Client number `n` (of all ever connected, modulo) sends `line`.
    Say(usize, String),
    /// Client number `n`'s connection ends (end of stream, reset).
    Hangup(usize),
    /// The end of a batch. With `Some(n)`, open client number `n` (modulo)
    /// cannot take its share and is cut off.
    Flush(Option<usize>),
}

const NICKS: &[&str] = &["ann", "bob", "cy", "guest-3", "guest-5", "b.b"];
const TOPICS: &[&str] = &["t", "u", "*"];

fn client_line() -> impl Strategy<Value = String> {
    let nick = proptest::sample::select(NICKS);
    let topic = proptest::sample::select(TOPICS);
    prop_oneof![
        4 => "[a-z][a-z ]{0,5}",
        2 => nick.clone().prop_map(|n| format!("/nick {n}")),
        1 => Just("/list".to_string()),
        2 => (nick, "[a-z ]{1,4}").prop_map(|(n, t)| format!("/dm {n} {t}")),
        3 => topic.clone().prop_map(|t| format!("/sub {t}")),
        1 => topic.clone().prop_map(|t| format!("/unsub {t}")),
        4 => (topic, "[a-z ]{0,4}").prop_map(|(t, p)| format!("/pub {t} {p}")),
        1 => Just("/ping".to_string()),
        1 => Just("/quit".to_string()),
        1 => proptest::sample::select(vec!["/bogus", "/pub", "/ping now", "/dm bob", ""]).prop_map(String::from),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Connect),
        10 => (any::<usize>(), client_line()).prop_map(|(n, l)| Op::Say(n, l)),
        1 => any::<usize>().prop_map(Op::Hangup),
        3 => Just(Op::Flush(None)),
        1 => any::<usize>().prop_map(|n| Op::Flush(Some(n))),
    ]
}

/// What the contract says a client is.
#[derive(Debug)]
struct ModelClient {
    nick: String,
    subs: BTreeSet<String>,
    open: bool,
}

/// The contract, as a model: who is connected, their nicks and
/// subscriptions, and the lines each client must have received so far.
#[derive(Debug, Default)]
struct Model {
    /// Ids in order of connection (the ops pick clients by index here).
    ids: Vec<ClientId>,
    clients: BTreeMap<ClientId, ModelClient>,
    /// Every line each client must have been given, `<closed>` at the end.
    expected: BTreeMap<ClientId, Vec<String>>,
    /// `expected[id].len()` at the last flush: what is beyond is this
    /// batch's share.
    flushed: BTreeMap<ClientId, usize>,
    /// The next guest number (the admission's counter).
    next_guest: u64,
}

impl Model {
    fn new() -> Self {
        Model {
            next_guest: 1,
            ..Model::default()
        }
    }

    fn nick_taken(&self, nick: &str) -> bool {
        self.clients.values().any(|c| c.open && c.nick == nick)
    }

    fn by_nick(&self, nick: &str) -> Option<ClientId> {
        self.clients
            .iter()
            .find(|(_, c)| c.open && c.nick == nick)
            .map(|(&id, _)| id)
    }

    fn open_ids(&self) -> Vec<ClientId> {
        self.clients
            .iter()
            .filter(|(_, c)| c.open)
            .map(|(&id, _)| id)
            .collect()
    }

    fn send(&mut self, id: ClientId, line: String) {
        self.expected.entry(id).or_default().push(line);
    }

    fn send_others(&mut self, except: ClientId, line: &str) {
        for id in self.open_ids() {
            if id != except {
                self.send(id, line.to_string());
            }
        }
    }

    fn connect(&mut self) -> ClientId {
        let id = self.next_guest;
        self.next_guest += 1;
        let mut nick = format!("guest-{id}");
        while self.nick_taken(&nick) {
            nick = format!("guest-{}", self.next_guest);
            self.next_guest += 1;
        }
        self.send_others(id, &format!("JOIN {nick}"));
        self.send(id, format!("WELCOME {nick}"));
        self.ids.push(id);
        self.clients.insert(
            id,
            ModelClient {
                nick,
                subs: BTreeSet::new(),
                open: true,
            },
        );
        id
    }

    fn leave(&mut self, id: ClientId) {
        let Some(client) = self.clients.get_mut(&id).filter(|c| c.open) else {
            return;
        };
        client.open = false;
        client.subs.clear();
        let nick = client.nick.clone();
        self.send(id, "<closed>".into());
        self.send_others(id, &format!("LEAVE {nick}"));
    }

    fn say(&mut self, id: ClientId, line: &str) {
        let Some(client) = self.clients.get(&id).filter(|c| c.open) else {
            return; // quit or hung up: whatever it still sends is ignored
        };
        let me = client.nick.clone();
        let command = match parse_line(line.as_bytes()) {
            Parsed::Empty => return,
            Parsed::Refused(r) => return self.send(id, format!("ERR {} {}", r.code, r.text)),
            Parsed::Command(command) => command,
        };
        use tcphub::proto::client_line::Command as C;
        match command {
            C::Chat(text) => self.send_others(id, &format!("MSG {me} {text}")),
            C::Nick(new) if new == me => self.send(id, format!("OK nick {new}")),
            C::Nick(new) if self.nick_taken(&new) => {
                self.send(id, format!("ERR nick-taken {new} is already in use"))
            }
            C::Nick(new) => {
                self.clients.get_mut(&id).unwrap().nick = new.clone();
                self.send(id, format!("OK nick {new}"));
                self.send_others(id, &format!("NICK {me} {new}"));
            }
            C::List => {
                let nicks: BTreeSet<&str> = self
                    .clients
                    .values()
                    .filter(|c| c.open)
                    .map(|c| c.nick.as_str())
                    .collect();
                let mut list = String::from("LIST");
                for nick in nicks {
                    list.push(' ');
                    list.push_str(nick);
                }
                self.send(id, list);
            }
            C::Dm { to, text } => match self.by_nick(&to) {
                Some(target) => {
                    self.send(target, format!("DM {me} {text}"));
                    self.send(id, format!("OK dm {to}"));
                }
                None => self.send(id, format!("ERR no-such-nick nobody is called {to}")),
            },
            C::Sub(topic) => {
                self.clients
                    .get_mut(&id)
                    .unwrap()
                    .subs
                    .insert(topic.clone());
                self.send(id, format!("OK sub {topic}"));
            }
            C::Unsub(topic) => {
                self.clients.get_mut(&id).unwrap().subs.remove(&topic);
                self.send(id, format!("OK unsub {topic}"));
            }
            C::Pub { topic, payload } => {
                let event = format!("EVENT {topic} {me} {payload}");
                let subscribers: Vec<ClientId> = self
                    .clients
                    .iter()
                    .filter(|&(&other, c)| {
                        other != id && c.open && (c.subs.contains(&topic) || c.subs.contains("*"))
                    })
                    .map(|(&other, _)| other)
                    .collect();
                for other in subscribers {
                    self.send(other, event.clone());
                }
            }
            C::Ping => self.send(id, "PONG".into()),
            C::Quit => {
                self.send(id, "BYE".into());
                self.leave(id);
            }
            C::Help => {
                for text in tcphub::proto::client_line::HELP {
                    self.send(id, format!("HELP {text}"));
                }
            }
        }
    }

    /// The end of a batch; `stuck` (open, with a share this batch) takes
    /// nothing of it and is cut off: it gets none of this batch, then is
    /// closed, and the others see it leave.
    fn flush(&mut self, stuck: Option<ClientId>) {
        if let Some(id) = stuck {
            let mark = self.flushed.get(&id).copied().unwrap_or(0);
            self.expected.entry(id).or_default().truncate(mark);
            self.leave(id);
        }
        for (&id, lines) in &self.expected {
            self.flushed.insert(id, lines.len());
        }
    }

    /// Whether open client `id` has lines in this batch.
    fn has_share(&self, id: ClientId) -> bool {
        let mark = self.flushed.get(&id).copied().unwrap_or(0);
        self.expected.get(&id).map_or(0, Vec::len) > mark
    }
}

/// Records every delivery as lines and every close as `<closed>`; `stuck`
/// takes nothing.
#[derive(Default)]
struct Recorder {
    got: BTreeMap<ClientId, Vec<String>>,
    stuck: Option<ClientId>,
}

impl Outlet for Recorder {
    fn deliver(&mut self, id: ClientId, chunks: &mut [IoSlice<'_>]) -> Result<(), String> {
        if Some(id) == self.stuck {
            return Err("not reading".into());
        }
        let bytes: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        let text = String::from_utf8(bytes).expect("server lines are UTF-8");
        assert!(text.ends_with('\n'), "whole lines only: {text:?}");
        let lines = self.got.entry(id).or_default();
        lines.extend(text.lines().map(str::to_string));
        Ok(())
    }

    fn close(&mut self, id: ClientId) {
        self.got.entry(id).or_default().push("<closed>".into());
    }
}

fn on_line(router: &mut Router, id: ClientId, line: &str) {
    match parse_line(line.as_bytes()) {
        Parsed::Empty => {}
        Parsed::Command(c) => router.on_line(id, &Inbound::Command(c)),
        Parsed::Refused(r) => router.on_line(id, &Inbound::Refused(r)),
    }
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn the_router_delivers_what_the_contract_says_in_order(
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        let admission = Arc::new(Admission::new(1000));
        let mut router = Router::new(admission.clone());
        let mut out = Recorder::default();
        let mut model = Model::new();
        let pick = |model: &Model, n: usize| -> Option<ClientId> {
            (!model.ids.is_empty()).then(|| model.ids[n % model.ids.len()])
        };
        // Three clients first, so most sequences have an audience.
        let ops = [vec![Op::Connect, Op::Connect, Op::Connect], ops, vec![Op::Flush(None)]].concat();
        for op in ops {
            match op {
                Op::Connect => {
                    let id = admission.try_admit().expect("room");
                    let nick = router.connect(id).to_string();
                    prop_assert_eq!(model.connect(), id);
                    prop_assert_eq!(&nick, &model.clients[&id].nick);
                }
                Op::Say(n, line) => {
                    let Some(id) = pick(&model, n) else { continue };
                    on_line(&mut router, id, &line);
                    model.say(id, &line);
                }
                Op::Hangup(n) => {
                    let Some(id) = pick(&model, n) else { continue };
                    router.disconnect(id, "end of stream");
                    model.leave(id);
                }
                Op::Flush(stuck) => {
                    let open: Vec<ClientId> = model
                        .open_ids()
                        .into_iter()
                        .filter(|&id| model.has_share(id))
                        .collect();
                    let stuck = stuck.and_then(|n| (!open.is_empty()).then(|| open[n % open.len()]));
                    out.stuck = stuck;
                    router.flush(&mut out);
                    out.stuck = None;
                    model.flush(stuck);
                    for (id, lines) in &model.expected {
                        let got = out.got.get(id).map(Vec::as_slice).unwrap_or_default();
                        prop_assert_eq!(got, lines.as_slice(), "client {}", id);
                    }
                    prop_assert_eq!(out.got.len(), model.expected.len(), "nobody else got anything");
                    prop_assert_eq!(admission.open(), model.open_ids().len(), "slots");
                    for id in model.open_ids() {
                        prop_assert_eq!(router.nick(id), Some(model.clients[&id].nick.as_str()));
                        prop_assert_eq!(router.subscriptions(id), model.clients[&id].subs.len());
                    }
                }
            }
        }
    }
}
