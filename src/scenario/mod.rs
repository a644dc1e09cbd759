//! `tcphub simulate`: scripted actors that talk to a hub and check what it
//! says back. The format is documented for writers in `docs/scenarios.md`.
//!
//! A scenario is a plain-text file of steps, each for a named *actor* (one
//! TCP connection): `vendor: send /pub pickup {...}`, `driver: expect EVENT
//! pickup vendor *`. Actors run at the same time, one thread each; the steps
//! of one actor run in file order.
//!
//! - [`parse`] turns the text into a [`Scenario`] (no IO: text in, data out,
//!   so every rule is unit-tested, and a malformed file is reported with its
//!   line number before anything connects).
//! - [`pattern`] is the `*` matching of `expect`.
//! - [`run`] connects the actors and runs them, printing a timeline.
//! - [`builtin`] holds the scenarios shipped in the binary.

pub mod builtin;
pub mod parse;
pub mod pattern;
pub mod run;
pub mod student;

use std::fmt;
use std::time::Duration;

pub use pattern::Pattern;

/// A parsed scenario, ready to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    /// Where it came from (a file path, or `chat` for a built-in), for
    /// messages like `caps.scenario line 12`.
    pub source: String,
    /// The first comment line of the file, if any: what `--list` shows.
    pub title: Option<String>,
    /// The `set` lines, with defaults for the rest.
    pub settings: Settings,
    /// In order of first appearance in the file.
    pub actors: Vec<Actor>,
}

/// `set` lines: settings for the whole scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// How long `expect`, `expect-closed` and `await` wait, unless an actor
    /// says otherwise with a `timeout` step (`set timeout`, default 2 s).
    pub timeout: Duration,
    /// The in-process hub's `--write-timeout-ms` (`set write-timeout`).
    pub write_timeout: Option<Duration>,
    /// The in-process hub's `--max-clients` (`set max-clients`).
    pub max_clients: Option<usize>,
    /// The in-process hub's `--max-line` (`set max-line`).
    pub max_line: Option<usize>,
    /// `set hubs a b c`: several in-process hubs with these names, linked in
    /// a chain (each dials the one before it). Empty: one unnamed hub.
    pub hubs: Vec<String>,
    /// The in-process hub's `--blocking-writes` (`set blocking-writes on`):
    /// the old single writer that stalls everyone behind one slow reader.
    pub blocking_writes: bool,
    /// `set escapes on` (what recordings say): `send`, `expect` and
    /// `ignore` arguments are read with the escapes of
    /// [`crate::proto::escape`] (`\e`, `\xHH`, `\\`...), byte for byte.
    pub escapes: bool,
    /// `set order per-sender` (what recordings say): a run of `expect`
    /// steps may be met in another order, as long as the lines of each
    /// sender come in order (see [`run`]); the timeline says when it was.
    pub order_per_sender: bool,
}

impl Settings {
    /// True if any setting is for the hub (they cannot apply with `--addr`).
    pub fn configures_hub(&self) -> bool {
        self.write_timeout.is_some()
            || self.max_clients.is_some()
            || self.max_line.is_some()
            || !self.hubs.is_empty()
            || self.blocking_writes
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            timeout: Duration::from_secs(2),
            write_timeout: None,
            max_clients: None,
            max_line: None,
            hubs: Vec::new(),
            blocking_writes: false,
            escapes: false,
            order_per_sender: false,
        }
    }
}

/// One connection's part in the story.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// As written before the `:` (also its thread's name: `actor-<name>`).
    pub name: String,
    /// In file order: the order they run in.
    pub steps: Vec<Step>,
}

/// One step, with where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Line number in the file (1-based).
    pub line: usize,
    /// The step as written after `actor: ` (for reports).
    pub text: String,
    /// What the step does, parsed.
    pub action: Action,
}

/// What a step does. `docs/scenarios.md` has the reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `connect`: open this actor's connection to the hub.
    Connect,
    /// `connect <hub>`: the same, to one of the `set hubs` hubs.
    ConnectTo(String),
    /// `stop-hub <hub>`: stop one of the `set hubs` hubs (its clients are
    /// closed; the other hubs see a netsplit).
    StopHub(String),
    /// `send <line>`: send the line as written (a `\n` is added); bytes,
    /// since with `set escapes on` a line need not be UTF-8.
    Send(Vec<u8>),
    /// `flood <count> <bytes> <prefix>`: send `count` lines, each
    /// `<prefix> <n> xxx...` padded to `bytes` bytes, as fast as possible.
    Flood {
        count: usize,
        bytes: usize,
        prefix: String,
    },
    /// `expect <pattern>`: the next line (not ignored) must match.
    Expect(Pattern),
    /// `expect-closed`: read and discard until the hub closes the connection.
    ExpectClosed,
    /// `ignore <pattern>`: from now on, `expect` skips lines that match.
    Ignore(Pattern),
    /// `timeout <duration>`: this actor's wait limit from now on.
    Timeout(Duration),
    /// `wait <duration>`: do nothing (and read nothing) for a while.
    Wait(Duration),
    /// `at <time> [as <nick>]`: wait (reading nothing) until the run is
    /// that old, divided by `--speed`; nothing with `--as-fast`. What
    /// recordings use to keep their pace; `as <nick>` says who the client
    /// was then, for the reader.
    At(Duration),
    /// `signal <name>`: raise a named flag other actors can `await`.
    Signal(String),
    /// `await <name>`: block until some actor signals it.
    Await(String),
    /// `note <text>`: print the text in the timeline; does nothing else.
    Note(String),
    /// `close`: close the connection (the others get `LEAVE`).
    Close,
}

/// A malformed scenario: which file, which line, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The file (or built-in name) being parsed.
    pub source: String,
    /// 1-based; 0 when the problem is the file as a whole (no steps at all).
    pub line: usize,
    /// What is wrong, in words, with a hint at the fix where there is one.
    pub problem: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.source, self.problem)
        } else {
            write!(f, "{} line {}: {}", self.source, self.line, self.problem)
        }
    }
}

impl std::error::Error for ParseError {}

/// Why a scenario could not be loaded or started (as opposed to running and
/// failing an expectation, which is a [`run::Failure`]).
#[derive(Debug)]
pub enum ScenarioError {
    /// Neither a built-in name nor a readable file.
    NotFound { name: String, why: String },
    /// The file does not follow the format.
    Parse(ParseError),
    /// The in-process hub did not start.
    Hub(crate::HubError),
    /// A thread could not be started.
    Spawn(std::io::Error),
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScenarioError::NotFound { name, why } => write!(
                f,
                "no built-in scenario is called {name:?} ({}), and it cannot be read as a file: {why}",
                builtin::names().join(", ")
            ),
            ScenarioError::Parse(e) => e.fmt(f),
            ScenarioError::Hub(e) => write!(f, "cannot start the in-process hub: {e}"),
            ScenarioError::Spawn(e) => write!(f, "cannot start an actor thread: {e}"),
        }
    }
}

impl std::error::Error for ScenarioError {}

/// Loads a scenario by built-in name (`caps`) or file path.
pub fn load(name_or_path: &str) -> Result<Scenario, ScenarioError> {
    if let Some(text) = builtin::text(name_or_path) {
        return parse::parse(name_or_path, text).map_err(ScenarioError::Parse);
    }
    let text = read_file(name_or_path)?;
    parse::parse(name_or_path, &text).map_err(ScenarioError::Parse)
}

/// Longest scenario file read: hand-written ones are a few kB, a
/// recording at most `serve --record-max-bytes` (64 MiB by default) plus
/// its last comment; this bounds what `tcphub simulate /dev/zero` can take.
pub const MAX_SCENARIO_BYTES: u64 = 65 * 1024 * 1024;

/// Reads a scenario file, refusing one past [`MAX_SCENARIO_BYTES`] or not
/// UTF-8 with a message that names it.
pub fn read_file(path: &str) -> Result<String, ScenarioError> {
    use std::io::Read;
    let not_found = |why: String| ScenarioError::NotFound {
        name: path.to_string(),
        why,
    };
    let file = std::fs::File::open(path).map_err(|e| not_found(e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(MAX_SCENARIO_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| not_found(e.to_string()))?;
    if bytes.len() as u64 > MAX_SCENARIO_BYTES {
        return Err(not_found(format!(
            "longer than {MAX_SCENARIO_BYTES} bytes: not a scenario file"
        )));
    }
    String::from_utf8(bytes).map_err(|_| not_found("not UTF-8 text".to_string()))
}
