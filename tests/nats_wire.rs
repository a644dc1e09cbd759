//! The NATS wire (`src/proto/nats_wire.rs`), tested like the framer: every
//! operation a server sends parses the same however the bytes are cut
//! (byte by byte, in two pieces at every index, in random chunks), every
//! bad input is refused with the right error at every cut, and every
//! encoder's output is checked byte for byte and read back by a tiny
//! server-side parser written here.
//!
//! Case counts are modest (the whole file runs in a few seconds); set
//! `PROPTEST_CASES` to run more.

use proptest::prelude::*;

use tcphub::proto::nats_wire::{
    ConnectOptions, DEFAULT_MAX_PAYLOAD, EncodeError, MAX_CONTROL_LINE, MAX_JSON_DEPTH, NatsParser,
    NatsUrl, NatsWireError, ServerInfo, ServerOp, check_subject, encode_connect, encode_ping,
    encode_pong, encode_pub, encode_sub, encode_unsub, parse_info, parse_urls,
};
use tcphub::support::json;

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

/// What a parser made of a whole stream: the ops, then the error if any.
type Outcome = (Vec<ServerOp>, Option<NatsWireError>);

/// Feeds `pieces` one after the other, pulling every op after each, and
/// checks the memory bound whenever the parser asks for more bytes.
fn feed(max_payload: usize, pieces: &[&[u8]]) -> Outcome {
    let mut parser = NatsParser::new(max_payload);
    let mut ops = Vec::new();
    for piece in pieces {
        parser.push(piece);
        loop {
            match parser.next_op() {
                Ok(Some(op)) => ops.push(op),
                Ok(None) => break,
                Err(e) => {
                    assert_eq!(parser.next_op(), Err(e.clone()), "errors stick");
                    parser.push(b"PING\r\n");
                    assert_eq!(parser.buffered(), 0, "a failed parser holds nothing");
                    return (ops, Some(e));
                }
            }
            assert!(
                parser.buffered() <= (MAX_CONTROL_LINE + 1).max(max_payload + 1) + piece.len(),
                "holds {} bytes",
                parser.buffered()
            );
        }
        let bound = (MAX_CONTROL_LINE + 1).max(max_payload + 1);
        assert!(
            parser.buffered() <= bound,
            "holds {} bytes, more than {bound}",
            parser.buffered()
        );
    }
    (ops, None)
}

fn whole(stream: &[u8]) -> Outcome {
    feed(DEFAULT_MAX_PAYLOAD, &[stream])
}

fn byte_by_byte(max_payload: usize, stream: &[u8]) -> Outcome {
    let pieces: Vec<&[u8]> = stream.chunks(1).collect();
    feed(max_payload, &pieces)
}

/// Checks that `stream` gives `expected` whole, byte by byte, and cut in
/// two at every index.
fn every_split(max_payload: usize, stream: &[u8], expected: &Outcome) {
    assert_eq!(&feed(max_payload, &[stream]), expected, "whole");
    assert_eq!(&byte_by_byte(max_payload, stream), expected, "byte by byte");
    for at in 0..=stream.len() {
        let (a, b) = stream.split_at(at);
        assert_eq!(&feed(max_payload, &[a, b]), expected, "split at {at}");
    }
}

fn msg(subject: &str, sid: u64, reply: Option<&str>, payload: &[u8]) -> ServerOp {
    ServerOp::Msg {
        subject: subject.to_string(),
        sid,
        reply: reply.map(str::to_string),
        payload: payload.to_vec(),
    }
}

// ---- a server's side, written plainly --------------------------------------

/// A JSON string literal, escaping like a Go server may (`\uXXXX` for
/// control bytes and, with `html`, for `<`, `>` and `&`).
fn json_string(s: &str, html: bool) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '<' | '>' | '&' if html => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `INFO {json}` as nats-server writes it, with extra fields we ignore.
fn info_json(info: &ServerInfo, html: bool) -> String {
    let urls: Vec<String> = info
        .connect_urls
        .iter()
        .map(|u| json_string(u, html))
        .collect();
    format!(
        concat!(
            r#"{{"server_id":{},"server_name":{},"version":{},"proto":{},"go":"go1.21","#,
            r#""host":"0.0.0.0","port":4222,"headers":{},"auth_required":{},"#,
            r#""max_payload":{},"client_id":5,"nested":{{"a":[1,-2.5e3,{{"b":null}}],"c":"\u00e9"}},"#,
            r#""connect_urls":[{}],"ldm":false}}"#
        ),
        json_string(&info.server_id, html),
        json_string(&info.server_name, html),
        json_string(&info.version, html),
        info.proto,
        info.headers,
        info.auth_required,
        info.max_payload,
        urls.join(","),
    )
}

/// An op as a server would send it.
fn wire(op: &ServerOp) -> Vec<u8> {
    match op {
        ServerOp::Info(info) => format!("INFO {}\r\n", info_json(info, false)).into_bytes(),
        ServerOp::Msg {
            subject,
            sid,
            reply,
            payload,
        } => {
            let mut out = match reply {
                Some(r) => format!("MSG {subject} {sid} {r} {}\r\n", payload.len()),
                None => format!("MSG {subject} {sid} {}\r\n", payload.len()),
            }
            .into_bytes();
            out.extend_from_slice(payload);
            out.extend_from_slice(b"\r\n");
            out
        }
        ServerOp::Ping => b"PING\r\n".to_vec(),
        ServerOp::Pong => b"PONG\r\n".to_vec(),
        ServerOp::Ok => b"+OK\r\n".to_vec(),
        ServerOp::Err(text) => format!("-ERR '{text}'\r\n").into_bytes(),
    }
}

/// What the server reads from us: one client op, parsed the obvious way.
#[derive(Debug, PartialEq, Eq)]
enum ClientOp {
    Pub(String, Option<String>, Vec<u8>),
    Sub(String, Option<String>, u64),
    Unsub(u64, Option<u64>),
    Ping,
    Pong,
}

/// Parses exactly one client op from `bytes` (all of it must be used).
fn server_parse(bytes: &[u8]) -> ClientOp {
    let nl = bytes.iter().position(|&b| b == b'\n').expect("a line");
    let line = std::str::from_utf8(&bytes[..nl]).expect("UTF-8");
    let line = line
        .strip_suffix('\r')
        .expect("control line ends in \\r\\n");
    let rest = &bytes[nl + 1..];
    let words: Vec<&str> = line.split(' ').collect();
    let op = match words.as_slice() {
        ["PUB", s, n] | ["PUB", s, _, n] => {
            let n: usize = n.parse().unwrap();
            assert_eq!(rest.len(), n + 2, "payload and its \\r\\n, nothing more");
            assert_eq!(&rest[n..], b"\r\n");
            let reply = (words.len() == 4).then(|| words[2].to_string());
            return ClientOp::Pub(s.to_string(), reply, rest[..n].to_vec());
        }
        ["SUB", s, sid] => ClientOp::Sub(s.to_string(), None, sid.parse().unwrap()),
        ["SUB", s, q, sid] => {
            ClientOp::Sub(s.to_string(), Some(q.to_string()), sid.parse().unwrap())
        }
        ["UNSUB", sid] => ClientOp::Unsub(sid.parse().unwrap(), None),
        ["UNSUB", sid, max] => ClientOp::Unsub(sid.parse().unwrap(), Some(max.parse().unwrap())),
        ["PING"] => ClientOp::Ping,
        ["PONG"] => ClientOp::Pong,
        _ => panic!("the server would refuse {line:?}"),
    };
    assert!(rest.is_empty(), "one op, nothing after it");
    op
}

// ---- strategies ------------------------------------------------------------

fn subject() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_$-]{1,6}(\\.[A-Za-z0-9_$-]{1,6}){0,3}"
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..48),
        2 => Just(b"\r\nMSG a 1 3\r\nabc\r\nPING\r\n".to_vec()),
        1 => Just(b"\r\n".to_vec()),
        1 => Just(b"\n\r\r\n-ERR 'x'\r\n".to_vec()),
        1 => (0usize..3000).prop_map(|n| vec![b'\r'; n]),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[ -~]{0,12}",
        "\\PC{0,8}",
        Just("quo\"te\\back\nslash <&> \u{1}".to_string()),
    ]
}

fn server_info() -> impl Strategy<Value = ServerInfo> {
    (
        (text(), text(), text()),
        (0usize..1 << 31, any::<bool>(), any::<bool>(), 0u32..3),
        proptest::collection::vec(text(), 0..3),
    )
        .prop_map(
            |((id, name, version), (max, auth, headers, proto), urls)| ServerInfo {
                server_id: id,
                server_name: name,
                version,
                max_payload: max,
                auth_required: auth,
                headers,
                connect_urls: urls,
                proto,
            },
        )
}

fn server_op() -> impl Strategy<Value = ServerOp> {
    prop_oneof![
        6 => (subject(), any::<u64>(), proptest::option::of(subject()), payload())
            .prop_map(|(s, sid, r, p)| ServerOp::Msg { subject: s, sid, reply: r, payload: p }),
        1 => Just(ServerOp::Ping),
        1 => Just(ServerOp::Pong),
        1 => Just(ServerOp::Ok),
        1 => "[A-Za-z0-9]([A-Za-z0-9 ]{0,20}[A-Za-z0-9])?".prop_map(ServerOp::Err),
        1 => server_info().prop_map(ServerOp::Info),
    ]
}

/// Cuts `stream` into pieces at the given fractions.
fn chunks<'a>(stream: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    at.sort_unstable();
    let mut pieces = Vec::new();
    let mut from = 0;
    for to in at {
        pieces.push(&stream[from..to]);
        from = to;
    }
    pieces.push(&stream[from..]);
    pieces
}

// ---- properties --------------------------------------------------------------

proptest! {
    #![proptest_config(config(96))]

    /// Pipelined ops come back in order, whole, byte by byte, and in
    /// random chunks.
    #[test]
    fn pipelined_ops_round_trip(
        ops in proptest::collection::vec(server_op(), 0..8),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let stream: Vec<u8> = ops.iter().flat_map(wire).collect();
        let expected = (ops.clone(), None);
        prop_assert_eq!(&whole(&stream), &expected);
        prop_assert_eq!(&byte_by_byte(DEFAULT_MAX_PAYLOAD, &stream), &expected);
        prop_assert_eq!(&feed(DEFAULT_MAX_PAYLOAD, &chunks(&stream, &cuts)), &expected);
    }

    /// One op at every split point.
    #[test]
    fn one_op_at_every_split(op in server_op()) {
        let stream = wire(&op);
        every_split(DEFAULT_MAX_PAYLOAD, &stream, &(vec![op], None));
    }

    /// Op names in any case, arguments separated by runs of spaces and
    /// tabs, a bare `\n` or `\r\n` at the end of a control line.
    #[test]
    fn case_blanks_and_line_ends_do_not_matter(
        s in subject(), sid in any::<u64>(), reply in proptest::option::of(subject()),
        p in payload(),
        upper in proptest::collection::vec(any::<bool>(), 4),
        gaps in proptest::collection::vec("[ \t]{1,3}", 5),
        crlf in any::<bool>(),
    ) {
        let cased = |word: &str, i: usize| {
            let mut out = String::new();
            for (j, c) in word.chars().enumerate() {
                out.push(if upper[(i + j) % upper.len()] { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() });
            }
            out
        };
        let end = if crlf { "\r\n" } else { "\n" };
        let mut line = format!("{}{}{}{}{}", cased("msg", 0), gaps[0], s, gaps[1], sid);
        if let Some(r) = &reply {
            line.push_str(&format!("{}{r}", gaps[2]));
        }
        line.push_str(&format!("{}{}{}{end}", gaps[3], p.len(), gaps[4]));
        let mut stream = line.into_bytes();
        stream.extend_from_slice(&p);
        stream.extend_from_slice(b"\r\n");
        stream.extend_from_slice(format!("{}{end}{}{end}{}{end}", cased("ping", 1), cased("pong", 2), cased("+ok", 3)).as_bytes());
        let expected = vec![msg(&s, sid, reply.as_deref(), &p), ServerOp::Ping, ServerOp::Pong, ServerOp::Ok];
        prop_assert_eq!(whole(&stream), (expected.clone(), None));
        prop_assert_eq!(byte_by_byte(DEFAULT_MAX_PAYLOAD, &stream), (expected, None));
    }

    /// No bytes panic the parser, whatever the cut, and it never holds more
    /// than one control line or one message (checked inside `feed`).
    #[test]
    fn no_bytes_panic(
        stream in proptest::collection::vec(prop_oneof![
            Just(b'\r'), Just(b'\n'), Just(b' '), Just(b'M'), Just(b'G'), Just(b'S'), Just(b'1'),
            any::<u8>()
        ], 0..200),
        prefix in proptest::sample::select(vec!["", "MSG a 1 ", "INFO {", "-ERR ", "PING"]),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
        max_payload in 0usize..64,
    ) {
        let mut all = prefix.as_bytes().to_vec();
        all.extend_from_slice(&stream);
        let once = feed(max_payload, &[&all]);
        prop_assert_eq!(feed(max_payload, &chunks(&all, &cuts)), once);
    }

    /// What `encode_pub`/`encode_sub`/`encode_unsub` write is what a server
    /// reads back.
    #[test]
    fn encoded_ops_read_back(
        s in subject(), reply in proptest::option::of(subject()), p in payload(),
        sid in any::<u64>(), queue in proptest::option::of("[a-z0-9_]{1,8}"),
        max in proptest::option::of(any::<u64>()),
    ) {
        let mut out = Vec::new();
        encode_pub(&s, reply.as_deref(), &p, DEFAULT_MAX_PAYLOAD, &mut out).unwrap();
        prop_assert_eq!(server_parse(&out), ClientOp::Pub(s.clone(), reply.clone(), p.clone()));
        out.clear();
        encode_sub(&s, queue.as_deref(), sid, &mut out).unwrap();
        prop_assert_eq!(server_parse(&out), ClientOp::Sub(s.clone(), queue.clone(), sid));
        out.clear();
        encode_unsub(sid, max, &mut out);
        prop_assert_eq!(server_parse(&out), ClientOp::Unsub(sid, max));
    }

    /// `INFO` reads back every field we use, with Go's HTML-safe escapes too.
    #[test]
    fn info_reads_back(info in server_info(), html in any::<bool>()) {
        let line = format!("INFO {}\r\n", info_json(&info, html));
        prop_assert_eq!(whole(line.as_bytes()), (vec![ServerOp::Info(info)], None));
    }

    /// `CONNECT`'s JSON is valid and carries what we asked, escaped.
    #[test]
    fn connect_is_valid_json(
        name in text(), user in proptest::option::of(text()), pass in proptest::option::of(text()),
        token in proptest::option::of(text()), no_echo in any::<bool>(), verbose in any::<bool>(),
    ) {
        let opts = ConnectOptions { name: name.clone(), user: user.clone(), pass: pass.clone(), auth_token: token.clone(), no_echo, verbose, pedantic: false };
        let mut out = Vec::new();
        encode_connect(&opts, &mut out);
        let text = std::str::from_utf8(&out).unwrap();
        let body = text.strip_prefix("CONNECT ").unwrap().strip_suffix("\r\n").unwrap();
        prop_assert!(!body.contains(['\r', '\n']), "one line");
        let value = json::parse(body).unwrap();
        prop_assert_eq!(value.get("name").and_then(|v| v.as_str()), Some(name.as_str()));
        prop_assert_eq!(value.get("user").and_then(|v| v.as_str()), user.as_deref());
        prop_assert_eq!(value.get("pass").and_then(|v| v.as_str()), pass.as_deref());
        prop_assert_eq!(value.get("auth_token").and_then(|v| v.as_str()), token.as_deref());
        prop_assert_eq!(value.get("echo").and_then(|v| v.as_bool()), Some(!no_echo));
        prop_assert_eq!(value.get("verbose").and_then(|v| v.as_bool()), Some(verbose));
        prop_assert_eq!(value.get("headers").and_then(|v| v.as_bool()), Some(false));
    }
}

// ---- bad input, at every split -------------------------------------------------

/// Checks that `stream` gives the ops of `before`, then an error of the
/// kind of `expected` (the text of `BadArgs`/`BadInfo` is for humans, so
/// only the kind is compared), the same however it is cut.
fn refused(stream: &[u8], before: &[ServerOp], expected: NatsWireError) {
    use NatsWireError::{BadArgs, BadInfo};
    let (ops, err) = whole(stream);
    let shown = String::from_utf8_lossy(&stream[..stream.len().min(60)]).into_owned();
    assert_eq!(ops, before, "{shown:?}");
    let err = err.unwrap_or_else(|| panic!("{shown:?} was accepted"));
    let same = match (&err, &expected) {
        (BadArgs(_), BadArgs(_)) | (BadInfo(_), BadInfo(_)) => true,
        (a, b) => a == b,
    };
    assert!(same, "{shown:?}: {err:?}, expected {expected:?}");
    assert!(!err.to_string().is_empty());
    every_split(DEFAULT_MAX_PAYLOAD, stream, &(ops, Some(err)));
}

#[test]
fn unknown_ops_are_refused_at_every_split() {
    let unknown = |op: &str| NatsWireError::UnknownOp(op.to_string());
    for (stream, op) in [
        (&b"FOO bar\r\n"[..], "FOO"),
        (b"PUB a 1\r\n", "PUB"),
        (b"HMSG a 1 2 2\r\nxx\r\n", "HMSG"),
        (b"PINGX\r\n", "PINGX"),
        (b"\r\n", ""),
        (b"\n", ""),
        (b" PING\r\n", ""),
    ] {
        refused(stream, &[], unknown(op));
    }
    refused(
        b"PING\r\nMSGS a 1 1\r\n",
        &[ServerOp::Ping],
        unknown("MSGS"),
    );
}

#[test]
fn bad_arguments_are_refused_at_every_split() {
    for stream in [
        &b"MSG\r\n"[..],
        b"MSG a\r\n",
        b"MSG a 1\r\n",
        b"MSG a 1 r x 2\r\n",
        b"MSG a x 2\r\nxx\r\n",
        b"MSG a 1 x\r\n",
        b"MSG a -1 2\r\nxx\r\n",
        b"MSG a 1 -2\r\n",
        b"MSG a 1 +2\r\n",
        b"MSG a 18446744073709551616 1\r\nx\r\n",
        b"MSG a 1 99999999999999999999999\r\n",
        b"MSG a\x01b 1 1\r\nx\r\n",
        b"MSG a\xffb 1 1\r\nx\r\n",
        b"MSG a 1 r\xff 1\r\nx\r\n",
        b"PING x\r\n",
        b"PONG 1\r\n",
        b"+OK ok\r\n",
    ] {
        refused(stream, &[], NatsWireError::BadArgs(String::new()));
    }
}

#[test]
fn bad_payloads_and_long_lines_are_refused_at_every_split() {
    use NatsWireError::*;
    for stream in [
        &b"MSG a 1 2\r\nxxx\r\n"[..],
        b"MSG a 1 2\r\nxx\n",
        b"MSG a 1 2\r\nxx\rX",
        b"MSG a 1 0\r\nPING\r\n",
    ] {
        refused(stream, &[], BadPayloadEnd);
    }
    let long = format!("MSG {} 1 0\r\n\r\n", "a".repeat(MAX_CONTROL_LINE));
    refused(long.as_bytes(), &[], ControlLineTooLong);
    refused(&[b'P'; MAX_CONTROL_LINE + 2], &[], ControlLineTooLong);
    let over = PayloadTooLong {
        len: DEFAULT_MAX_PAYLOAD + 1,
        max: DEFAULT_MAX_PAYLOAD,
    };
    refused(b"MSG a 1 1048577\r\n", &[], over);
}

#[test]
fn bad_info_is_refused_at_every_split() {
    let deep = format!(
        "{{\"a\":{}{}}}",
        "[".repeat(MAX_JSON_DEPTH),
        "]".repeat(MAX_JSON_DEPTH)
    );
    for json in [
        "",
        "{",
        "[]",
        "{\"a\":1,}",
        "{\"a\" 1}",
        "{\"a\":01}",
        "{\"a\":-}",
        "{\"a\":1.}",
        "{\"a\":1e}",
        "{\"a\":tru}",
        "{\"a\":\"\\x\"}",
        "{\"a\":\"\\u12\"}",
        "{\"a\":\"\u{1}\"}",
        "{\"a\":\"open}",
        "{\"a\":[1 2]}",
        "{a:1}",
        "{} x",
        "{\"max_payload\":\"1\"}",
        "{\"max_payload\":-1}",
        "{\"max_payload\":1.5}",
        "{\"max_payload\":18446744073709551616}",
        "{\"proto\":4294967296}",
        "{\"headers\":1}",
        "{\"connect_urls\":[1]}",
        "{\"connect_urls\":\"a\"}",
        &deep,
    ] {
        let line = format!("INFO {json}\r\n");
        refused(line.as_bytes(), &[], NatsWireError::BadInfo(String::new()));
    }
    refused(
        b"INFO {\"server_id\":\"\xff\"}\r\n",
        &[],
        NatsWireError::BadInfo(String::new()),
    );
}

#[test]
fn the_limits_are_inclusive() {
    // A control line of exactly MAX_CONTROL_LINE bytes, a payload of exactly
    // max_payload bytes: both fine.
    let subject = "a".repeat(MAX_CONTROL_LINE - "MSG  1 0".len());
    let stream = format!("MSG {subject} 1 0\r\n\r\n");
    every_split(
        16,
        stream.as_bytes(),
        &(vec![msg(&subject, 1, None, b"")], None),
    );
    let stream = b"MSG a 1 16\r\n0123456789abcdef\r\n";
    every_split(
        16,
        stream,
        &(vec![msg("a", 1, None, b"0123456789abcdef")], None),
    );
    let (_, err) = feed(15, &[stream]);
    assert_eq!(
        err,
        Some(NatsWireError::PayloadTooLong { len: 16, max: 15 })
    );
}

#[test]
fn a_line_that_never_ends_is_refused_as_soon_as_it_is_too_long() {
    let mut parser = NatsParser::new(DEFAULT_MAX_PAYLOAD);
    parser.push(&vec![b'x'; MAX_CONTROL_LINE]);
    assert_eq!(parser.next_op(), Ok(None));
    parser.push(b"\r");
    assert_eq!(
        parser.next_op(),
        Ok(None),
        "may still be a line and its \\r"
    );
    parser.push(b"y");
    assert_eq!(parser.next_op(), Err(NatsWireError::ControlLineTooLong));
}

#[test]
fn a_payload_end_is_checked_as_soon_as_it_arrives() {
    let mut parser = NatsParser::new(DEFAULT_MAX_PAYLOAD);
    parser.push(b"MSG a 1 2\r\nxx");
    assert_eq!(parser.next_op(), Ok(None));
    parser.push(b"X");
    assert_eq!(parser.next_op(), Err(NatsWireError::BadPayloadEnd));
}

#[test]
fn set_max_payload_applies_to_the_next_msg() {
    let mut parser = NatsParser::new(DEFAULT_MAX_PAYLOAD);
    parser.push(b"INFO {\"max_payload\":4}\r\nMSG a 1 5\r\n");
    let Ok(Some(ServerOp::Info(info))) = parser.next_op() else {
        panic!("an INFO first");
    };
    parser.set_max_payload(info.max_payload);
    assert_eq!(parser.max_payload(), 4);
    assert_eq!(
        parser.next_op(),
        Err(NatsWireError::PayloadTooLong { len: 5, max: 4 })
    );
    assert!(parser.failed());
}

// ---- plain cases ---------------------------------------------------------------

#[test]
fn a_real_servers_info_and_messages() {
    let info = concat!(
        r#"INFO {"server_id":"NCXMJZYQEWUDJFLYLSTTE745I2WUNCVG3LJJ3NRKSFJXEG6RGK7753DJ","#,
        r#""server_name":"n1","version":"2.9.20","proto":1,"git_commit":"","go":"go1.19.8","#,
        r#""host":"0.0.0.0","port":4222,"headers":true,"max_payload":1048576,"client_id":7,"#,
        r#""client_ip":"127.0.0.1","cluster":"c","connect_urls":["10.0.0.1:4222","[::1]:4223"]}"#,
        " \r\n"
    );
    let stream =
        format!("{info}MSG tcphub.lobby.chat\t9 _INBOX.x 3\r\nhi!\r\n-ERR 'Stale Connection'\r\n");
    let (ops, err) = whole(stream.as_bytes());
    assert_eq!(err, None);
    let expected_info = ServerInfo {
        server_id: "NCXMJZYQEWUDJFLYLSTTE745I2WUNCVG3LJJ3NRKSFJXEG6RGK7753DJ".into(),
        server_name: "n1".into(),
        version: "2.9.20".into(),
        max_payload: 1048576,
        auth_required: false,
        headers: true,
        connect_urls: vec!["10.0.0.1:4222".into(), "[::1]:4223".into()],
        proto: 1,
    };
    assert_eq!(
        ops,
        vec![
            ServerOp::Info(expected_info),
            msg("tcphub.lobby.chat", 9, Some("_INBOX.x"), b"hi!"),
            ServerOp::Err("Stale Connection".into()),
        ]
    );
}

#[test]
fn info_defaults_nulls_escapes_and_duplicates() {
    let info = parse_info(b"{}").unwrap();
    assert_eq!(info.max_payload, DEFAULT_MAX_PAYLOAD, "absent: the default");
    let info =
        parse_info(br#" { "max_payload" : null , "version":"1" , "version" : "2" } "#).unwrap();
    assert_eq!(info.max_payload, DEFAULT_MAX_PAYLOAD, "null: as if absent");
    assert_eq!(info.version, "2", "the last duplicate wins, as in Go");
    let info = parse_info(br#"{"server_name":"\u00e9\ud83d\ude00\ud800x\/\b\f\r\t"}"#).unwrap();
    assert_eq!(info.server_name, "\u{e9}\u{1F600}\u{FFFD}x/\u{8}\u{c}\r\t");
    let info = parse_info(br#"{"x":[[[]],{},"",0,-0.5E+2,true,false,null]}"#).unwrap();
    assert_eq!(info, parse_info(b"{}").unwrap());
    let fits = format!(
        "{{\"a\":{}{}}}",
        "[".repeat(MAX_JSON_DEPTH - 1),
        "]".repeat(MAX_JSON_DEPTH - 1)
    );
    assert!(
        parse_info(fits.as_bytes()).is_ok(),
        "nesting up to the bound"
    );
}

#[test]
fn err_text_loses_blanks_and_quotes() {
    for (line, text) in [
        (
            "-ERR 'Authorization Violation'\r\n",
            "Authorization Violation",
        ),
        ("-err\t 'x y' \r\n", "x y"),
        ("-ERR no quotes\r\n", "no quotes"),
        ("-ERR\r\n", ""),
        ("-ERR ''\r\n", ""),
        ("-ERR '\r\n", ""),
    ] {
        assert_eq!(
            whole(line.as_bytes()),
            (vec![ServerOp::Err(text.into())], None),
            "{line:?}"
        );
    }
}

#[test]
fn encoders_write_exact_bytes() {
    let mut out = Vec::new();
    encode_pub("a.b", None, b"hi", 10, &mut out).unwrap();
    encode_pub("a.b", Some("r.1"), b"", 10, &mut out).unwrap();
    encode_sub("a.*.>", None, 1, &mut out).unwrap();
    encode_sub("a", Some("q"), 18446744073709551615, &mut out).unwrap();
    encode_unsub(3, None, &mut out);
    encode_unsub(3, Some(0), &mut out);
    encode_ping(&mut out);
    encode_pong(&mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        concat!(
            "PUB a.b 2\r\nhi\r\n",
            "PUB a.b r.1 0\r\n\r\n",
            "SUB a.*.> 1\r\n",
            "SUB a q 18446744073709551615\r\n",
            "UNSUB 3\r\n",
            "UNSUB 3 0\r\n",
            "PING\r\n",
            "PONG\r\n",
        )
    );
    let mut out = Vec::new();
    encode_connect(
        &ConnectOptions {
            name: "hub \"1\"".into(),
            no_echo: true,
            ..ConnectOptions::default()
        },
        &mut out,
    );
    let expected = format!(
        concat!(
            r#"CONNECT {{"verbose":false,"pedantic":false,"tls_required":false,"name":"hub \"1\"","#,
            r#""lang":"rust","version":"{}","protocol":1,"echo":false,"headers":false}}"#,
            "\r\n"
        ),
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(String::from_utf8(out).unwrap(), expected);
}

#[test]
fn encoders_refuse_mistakes_and_write_nothing() {
    let mut out = Vec::new();
    let too_long = EncodeError::PayloadTooLong { len: 3, max: 2 };
    assert_eq!(encode_pub("a", None, b"abc", 2, &mut out), Err(too_long));
    assert!(matches!(
        encode_pub("a.*", None, b"", 2, &mut out),
        Err(EncodeError::BadSubject(_))
    ));
    assert!(matches!(
        encode_pub("a", Some("r.>"), b"", 2, &mut out),
        Err(EncodeError::BadSubject(_))
    ));
    assert!(matches!(
        encode_sub("a b", None, 1, &mut out),
        Err(EncodeError::BadSubject(_))
    ));
    assert!(matches!(
        encode_sub("a", Some("q 1"), 1, &mut out),
        Err(EncodeError::BadSubject(_))
    ));
    assert!(matches!(
        encode_sub("a", Some(""), 1, &mut out),
        Err(EncodeError::BadSubject(_))
    ));
    let huge = "a".repeat(MAX_CONTROL_LINE);
    assert!(matches!(
        encode_pub(&huge, None, b"", 2, &mut out),
        Err(EncodeError::BadSubject(_))
    ));
    assert!(matches!(
        encode_sub(&huge, None, 1, &mut out),
        Err(EncodeError::BadSubject(_))
    ));
    assert!(out.is_empty());
    assert!(!EncodeError::BadSubject("x".into()).to_string().is_empty());
}

#[test]
fn subjects() {
    for ok in [
        "a",
        "a.b.c",
        "tcphub.lobby.chat",
        "_INBOX.x1",
        "é.ü",
        "a-b_c$d",
    ] {
        assert_eq!(check_subject(ok, false), Ok(()), "{ok}");
        assert_eq!(check_subject(ok, true), Ok(()), "{ok}");
    }
    for wild in ["*", ">", "a.*", "a.>", "*.b.>", "a.*.*"] {
        assert_eq!(check_subject(wild, true), Ok(()), "{wild}");
        assert!(
            check_subject(wild, false).is_err(),
            "{wild} is not for publishing"
        );
    }
    for bad in [
        "", ".", "a.", ".a", "a..b", "a b", "a\tb", "a\nb", "a\rb", "a\u{0}b", "a\u{7f}", "a.>.b",
        ">.a", "a*", "a.b*", "a.>b", "a.*b", "\u{a0}",
    ] {
        assert!(check_subject(bad, true).is_err(), "{bad:?}");
        assert!(check_subject(bad, false).is_err(), "{bad:?}");
    }
}

fn url(host: &str, port: u16, user: Option<&str>, pass: Option<&str>) -> NatsUrl {
    NatsUrl {
        host: host.into(),
        port,
        user: user.map(str::to_string),
        pass: pass.map(str::to_string),
    }
}

#[test]
fn url_lists() {
    assert_eq!(
        parse_urls("nats://127.0.0.1:4222, nats://u:p%40ss@h2:5000,NATS://tok@h3,h4,h5:1/,[::1]:7,nats://[fe80::1]").unwrap(),
        vec![
            url("127.0.0.1", 4222, None, None),
            url("h2", 5000, Some("u"), Some("p@ss")),
            url("h3", 4222, Some("tok"), None),
            url("h4", 4222, None, None),
            url("h5", 1, None, None),
            url("::1", 7, None, None),
            url("fe80::1", 4222, None, None),
        ]
    );
    assert_eq!(
        parse_urls("nats://a:b@c@h").unwrap(),
        vec![url("h", 4222, Some("a"), Some("b@c"))],
        "the last @ ends the credentials"
    );
    assert_eq!(
        parse_urls("nats://u:@h").unwrap(),
        vec![url("h", 4222, Some("u"), Some(""))]
    );
    for bad in [
        "",
        " ",
        ",",
        "a,",
        "a,,b",
        "tls://h:4222",
        "ws://h",
        "nats://",
        "nats://:4222",
        "nats://h:",
        "nats://h:0",
        "nats://h:65536",
        "nats://h:x",
        "nats://h:-1",
        "nats://h/path",
        "nats://h?x",
        "nats://@h",
        "nats://:p@h",
        "nats://u%4@h",
        "nats://u%zz@h",
        "nats://[::1",
        "nats://[::1]x",
        "nats://a b",
        "h:1:2",
    ] {
        let result = parse_urls(bad);
        assert!(result.is_err(), "{bad:?} gave {result:?}");
        assert!(!result.unwrap_err().is_empty());
    }
}
