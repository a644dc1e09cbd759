//! `tcphub top ADDR`: the live view in a terminal, redrawn in place.
//!
//! It asks the hub's monitor (`tcphub serve --monitor ADDR`) for
//! `GET /stats` every `--interval`, and prints every thread (the ones held
//! up longest first), the channel as a bar, every client, and for a linked
//! hub every link. `--once`
//! prints one snapshot as plain text and exits. When the monitor cannot be
//! reached it says so and keeps trying; the view comes back with the hub.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::support::json::{self, Value};
use crate::support::terminal::escape_to;

/// Flags of `tcphub top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    /// The monitor's address, HOST:PORT (the `monitor on` line of serve).
    pub addr: String,
    /// Print one snapshot as plain text and exit (1 if unreachable).
    #[arg(long)]
    pub once: bool,
    /// Time between redraws, like 1s or 250ms.
    #[arg(long, default_value = "1s", value_parser = crate::support::duration::parse)]
    pub interval: Duration,
    /// Stop after N redraws (or attempts); by default run until Ctrl-C.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
}

/// How long connecting to, and reading from, the monitor may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest `/stats` body read (10,000 clients fit).
const MAX_BODY: u64 = 64 * 1024 * 1024;

/// Runs `tcphub top`; returns the exit code.
pub fn run(args: &TopArgs) -> ExitCode {
    let mut out = io::stdout();
    if args.once {
        return match fetch(&args.addr).and_then(|body| render(&args.addr, &body)) {
            Ok(text) => {
                let _ = out.write_all(text.as_bytes());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("tcphub top: cannot read the monitor at {}: {e}", args.addr);
                ExitCode::FAILURE
            }
        };
    }
    let mut n = 0u64;
    loop {
        let screen = match fetch(&args.addr).and_then(|body| render(&args.addr, &body)) {
            Ok(text) => text,
            Err(e) => format!(
                "tcphub top: cannot read the monitor at {}: {e}\n\
                 (is `tcphub serve --monitor {}` running?) retrying every {:?}\n",
                clean(&args.addr),
                clean(&args.addr),
                args.interval
            ),
        };
        // Home, each line cleared to its end, then the rest of the screen:
        // redrawn in place, without the flicker of a full clear.
        let mut frame = String::from("\x1b[H");
        for line in screen.lines() {
            frame.push_str(line);
            frame.push_str("\x1b[K\n");
        }
        frame.push_str("\x1b[J");
        if out
            .write_all(frame.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            return ExitCode::SUCCESS; // stdout closed: nobody is watching
        }
        n += 1;
        if args.count.is_some_and(|count| n >= count) {
            return ExitCode::SUCCESS;
        }
        std::thread::sleep(args.interval);
    }
}

/// `GET /stats` from the monitor at `addr`: the body.
pub fn fetch(addr: &str) -> Result<String, String> {
    let target = addr
        .to_socket_addrs()
        .map_err(|e| format!("bad address: {e}"))?
        .next()
        .ok_or("the address resolves to nothing")?;
    let mut socket =
        TcpStream::connect_timeout(&target, FETCH_TIMEOUT).map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(FETCH_TIMEOUT))
        .and_then(|()| socket.set_write_timeout(Some(FETCH_TIMEOUT)))
        .map_err(|e| e.to_string())?;
    let request = format!("GET /stats HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    socket
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    (&mut socket)
        .take(MAX_BODY)
        .read_to_end(&mut raw)
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8(raw).map_err(|_| "the answer is not UTF-8".to_string())?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or("not an HTTP answer (no end of headers)")?;
    let status = head.lines().next().unwrap_or("");
    if !status.starts_with("HTTP/1.1 200") && !status.starts_with("HTTP/1.0 200") {
        return Err(format!("the monitor answered {:?}", clean(status)));
    }
    Ok(body.to_string())
}

/// Network text made safe to print and cut to `max` characters: the one
/// escaping the project uses for every terminal ([`escape_to`]).
pub fn clean_to(s: &str, max: usize) -> String {
    escape_to(s, max)
}

fn clean(s: &str) -> String {
    clean_to(s, 200)
}

fn num(v: &Value) -> u64 {
    v.u64().unwrap_or(0)
}

/// Milliseconds as people read them: `850ms`, `3.2s`, `4m05s`.
fn human_ms(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        _ => format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60),
    }
}

fn human_bytes(b: u64) -> String {
    match b {
        0..10_000 => format!("{b}B"),
        10_000..10_000_000 => format!("{}K", b / 1024),
        _ => format!("{}M", b / (1024 * 1024)),
    }
}

/// A bar of `width` cells, `len` of `cap` filled.
fn bar(len: u64, cap: u64, width: usize) -> String {
    let filled = if cap == 0 {
        0
    } else {
        ((len.min(cap) as u128 * width as u128).div_ceil(cap as u128)) as usize
    };
    format!("[{}{}]", "#".repeat(filled), ".".repeat(width - filled))
}

/// One snapshot as text: the header, the threads (held up longest first),
/// the clients.
pub fn render(addr: &str, body: &str) -> Result<String, String> {
    let v = json::parse(body).map_err(|e| e.to_string())?;
    let hub = v.field("hub");
    if hub.is_null() {
        return Err("the answer has no \"hub\": not a tcphub monitor?".into());
    }
    let mut o = String::new();
    render_header(addr, &v, &mut o);
    o.push('\n');
    render_threads(&v, &mut o);
    o.push('\n');
    render_clients(&v, &mut o);
    render_links(&v, &mut o);
    Ok(o)
}

/// The two header lines: which hub, how long up, how full, and the
/// channel as a bar with the hub's counters (the numbers a newcomer looks
/// at first to see whether the hub is keeping up).
fn render_header(addr: &str, v: &Value, o: &mut String) {
    let hub = v.field("hub");
    let ch = v.field("channel");
    let (len, cap) = (num(ch.field("len")), num(ch.field("capacity")));
    let name = match hub.field("name").as_str() {
        Some(name) => format!(" ({})", clean_to(name, 32)),
        None => String::new(),
    };
    let _ = writeln!(
        o,
        "tcphub top {}  hub {}{name}  up {}  clients {}/{}",
        clean_to(addr, 60),
        clean_to(hub.field("addr").as_str().unwrap_or("?"), 60),
        human_ms(num(v.field("uptime_ms"))),
        num(hub.field("clients")),
        num(hub.field("max_clients")),
    );
    let _ = writeln!(
        o,
        "channel {len}/{cap} {}  accepted {}  cut off {}  write errors {}  refused: full {} lines {}  write timeout {}",
        bar(len, cap, 20),
        num(hub.field("accepted")),
        num(hub.field("cut_off")),
        num(hub.field("write_errors")),
        num(hub.field("refused_full")),
        num(hub.field("refused_line")),
        human_ms(num(hub.field("write_timeout_ms"))),
    );
}

/// The THREAD table, the threads holding the hub up on top: the first
/// place to look when the hub seems stuck.
fn render_threads(v: &Value, o: &mut String) {
    let mut threads: Vec<&Value> = v.field("threads").items().iter().collect();
    // The threads holding the hub up first, longest first; then the others
    // by how long they have been in their state.
    threads.sort_by_key(|t| {
        (
            !t.field("blocked").is_true(),
            std::cmp::Reverse(num(t.field("for_ms"))),
        )
    });
    let _ = writeln!(o, "{:<15} {:<13} {:>8}  WHAT", "THREAD", "STATE", "FOR");
    for t in threads {
        let mut what = clean_to(t.field("doing").as_str().unwrap_or(""), 60);
        if let Some(target) = t.field("target").u64() {
            let nick = t.field("target_nick").as_str().unwrap_or("?");
            let kind = if target >= LINK_ID_BASE {
                "link".to_string()
            } else {
                format!("client-{target}")
            };
            let _ = write!(what, " {} ({kind})", clean_to(nick, 32));
        }
        let _ = writeln!(
            o,
            "{:<15} {:<13} {:>8}  {what}{}",
            clean_to(t.field("name").as_str().unwrap_or("?"), 15),
            clean_to(t.field("state").as_str().unwrap_or("?"), 13),
            human_ms(num(t.field("for_ms"))),
            if t.field("blocked").is_true() {
                "  BLOCKED"
            } else {
                ""
            },
        );
    }
}

/// The client table, one row per client, or `(no clients)`.
fn render_clients(v: &Value, o: &mut String) {
    let clients = v.field("clients").items();
    let _ = writeln!(
        o,
        "{:<16} {:<21} {:>7} {:>7} {:>8} {:>8} {:>8} {:>7} {:>4}  NOTE",
        "NICK", "PEER", "LINESIN", "BYTESIN", "LINESOUT", "BYTESOUT", "PENDING", "IDLE", "SUBS"
    );
    for c in clients {
        let note = client_note(c);
        let _ = writeln!(
            o,
            "{:<16} {:<21} {:>7} {:>7} {:>8} {:>8} {:>8} {:>7} {:>4}  {note}",
            clean_to(c.field("nick").as_str().unwrap_or("?"), 16),
            clean_to(c.field("peer").as_str().unwrap_or("?"), 21),
            num(c.field("lines_in")),
            human_bytes(num(c.field("bytes_in"))),
            num(c.field("lines_out")),
            human_bytes(num(c.field("bytes_out"))),
            human_bytes(num(c.field("pending_bytes"))),
            human_ms(num(c.field("idle_ms"))),
            num(c.field("subs")),
        );
    }
    if clients.is_empty() {
        o.push_str("(no clients)\n");
    }
}

/// A client row's NOTE: for a client whose writes are blocked, for how
/// long and how soon the hub cuts it off (`AT RISK` when that is close);
/// empty otherwise.
fn client_note(c: &Value) -> String {
    let blocked = num(c.field("write_blocked_ms"));
    if blocked == 0 {
        return String::new();
    }
    let left = num(c.field("cut_off_in_ms"));
    let flag = if c.field("at_risk").is_true() {
        "AT RISK: "
    } else {
        ""
    };
    format!(
        "{flag}write blocked {}, cut off in {}",
        human_ms(blocked),
        human_ms(left)
    )
}

/// Link ids start here (`crate::proto::network::LINK_ID_BASE`).
const LINK_ID_BASE: u64 = 1 << 48;

/// The LINKS section: one row per link to a neighbour hub. Only for a
/// linked hub (one with links, or a `linker` or `link-acceptor` thread).
fn render_links(v: &Value, o: &mut String) {
    let links = v.field("links").items();
    let linked = v
        .field("threads")
        .items()
        .iter()
        .any(|t| matches!(t.field("name").as_str(), Some("linker" | "link-acceptor")));
    if links.is_empty() && !linked {
        return;
    }
    let timeout = num(v.field("hub").field("link_timeout_ms"));
    o.push('\n');
    let _ = writeln!(
        o,
        "{:<16} {:<21} {:<8} {:>7} {:>7} {:>8} {:>8} {:>8} {:>7} {:>5}  NOTE (link timeout {})",
        "LINK",
        "PEER",
        "DIR",
        "LINESIN",
        "BYTESIN",
        "LINESOUT",
        "BYTESOUT",
        "PENDING",
        "HEARD",
        "WANTS",
        human_ms(timeout),
    );
    for l in links {
        let (heard, waited) = (num(l.field("last_heard_ms")), num(l.field("pending_ms")));
        let mut note = String::new();
        if l.field("at_risk").is_true() {
            let why = if waited >= heard {
                format!("pending for {}", human_ms(waited))
            } else {
                format!("silent for {}", human_ms(heard))
            };
            let left = human_ms(num(l.field("down_in_ms")));
            let _ = write!(note, "AT RISK: {why}, down in {left}");
        } else if waited > 0 {
            let _ = write!(note, "pending for {}", human_ms(waited));
        }
        let topics: Vec<String> = l
            .field("interest_topics")
            .items()
            .iter()
            .filter_map(|t| t.as_str())
            .map(|t| clean_to(t, 24))
            .collect();
        if !topics.is_empty() {
            if !note.is_empty() {
                note.push_str("; ");
            }
            let more = num(l.field("interest")).saturating_sub(topics.len() as u64);
            let _ = write!(note, "wants {}", topics.join(" "));
            if more > 0 {
                let _ = write!(note, " +{more}");
            }
        }
        let _ = writeln!(
            o,
            "{:<16} {:<21} {:<8} {:>7} {:>7} {:>8} {:>8} {:>8} {:>7} {:>5}  {note}",
            clean_to(l.field("hub").as_str().unwrap_or("?"), 16),
            clean_to(l.field("peer").as_str().unwrap_or("?"), 21),
            clean_to(l.field("direction").as_str().unwrap_or("?"), 8),
            num(l.field("lines_in")),
            human_bytes(num(l.field("bytes_in"))),
            num(l.field("lines_out")),
            human_bytes(num(l.field("bytes_out"))),
            human_bytes(num(l.field("pending_bytes"))),
            human_ms(heard),
            num(l.field("interest")),
        );
    }
    if links.is_empty() {
        o.push_str("(no links up)\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_text_cannot_drive_the_terminal() {
        assert_eq!(clean_to("a\x1b[2Jb\n", 20), "a\\e[2Jb\\n");
        assert_eq!(clean_to("abcdef", 4), "abc~");
    }

    #[test]
    fn renders_blocked_threads_first() {
        let body = r#"{"uptime_ms":1500,"hub":{"addr":"127.0.0.1:3000","clients":1,"max_clients":9,
            "write_timeout_ms":2000,"accepted":1,"refused_full":0,"refused_line":0,"cut_off":0,"write_errors":0},
            "channel":{"len":2,"capacity":4},
            "threads":[{"name":"acceptor","state":"accept","doing":"in accept()","blocked":false,"for_ms":9000,"target":null},
                       {"name":"dispatcher","state":"writev","doing":"in writev() to","blocked":true,"for_ms":1200,"target":1,"target_nick":"slow\u001b"}],
            "clients":[{"nick":"slow","peer":"127.0.0.1:1","lines_in":0,"bytes_in":0,"lines_out":5,"bytes_out":100,
                        "pending_bytes":4000,"idle_ms":3000,"subs":1,"write_blocked_ms":1200,"cut_off_in_ms":800,"at_risk":true}]}"#;
        let text = render("m:1", body).unwrap();
        let dispatcher = text.find("dispatcher").unwrap();
        assert!(dispatcher < text.find("acceptor").unwrap(), "{text}");
        assert!(
            text.contains("in writev() to slow\\e (client-1)  BLOCKED"),
            "{text}"
        );
        assert!(
            text.contains("AT RISK: write blocked 1.2s, cut off in 800ms"),
            "{text}"
        );
        assert!(
            text.contains("channel 2/4 [##########..........]"),
            "{text}"
        );
        assert!(!text.contains("LINK "), "not a linked hub: {text}");
    }

    #[test]
    fn renders_links_with_their_risk() {
        let body = r#"{"uptime_ms":1500,"hub":{"addr":"127.0.0.1:3000","name":"a","clients":0,"max_clients":9,
            "write_timeout_ms":2000,"link_timeout_ms":1000},
            "channel":{"len":0,"capacity":4},
            "threads":[{"name":"linker","state":"back_off","doing":"backing off for 4s before dialling 127.0.0.1:9","blocked":true,"for_ms":10,"target":null}],
            "clients":[],
            "links":[{"hub":"b\u001b","peer":"127.0.0.1:7","direction":"dialled","lines_in":3,"bytes_in":30,"lines_out":4,
                      "bytes_out":40,"pending_bytes":5000,"pending_ms":700,"last_heard_ms":100,"down_in_ms":300,"at_risk":true,
                      "interest":3,"interest_topics":["x","y"]}]}"#;
        let text = render("m:1", body).unwrap();
        assert!(text.contains("hub 127.0.0.1:3000 (a)"), "{text}");
        assert!(
            text.contains("backing off for 4s before dialling 127.0.0.1:9"),
            "{text}"
        );
        assert!(text.contains("NOTE (link timeout 1.0s)"), "{text}");
        assert!(text.contains("b\\e  "), "{text}");
        assert!(
            text.contains("AT RISK: pending for 700ms, down in 300ms; wants x y +1"),
            "{text}"
        );
    }
}
