//! The NATS bridge (src/proto/nats_bridge.rs) without a socket or a clock:
//! link lines in, NATS bytes out, NATS operations in, link lines out, time
//! as a number. Every rule of docs/nats.md that is the bridge's is here:
//! the subjects, who a message is from, at most once per client, presence
//! and its timeout, and what is dropped.

use proptest::prelude::*;
use tcphub::proto::link_line::LinkLine;
use tcphub::proto::nats_bridge::{BridgeSettings, NatsBridge};
use tcphub::proto::nats_subjects::Layout;
use tcphub::proto::nats_wire::ServerOp;

const TIMEOUT: u64 = 3000;

fn bridge() -> NatsBridge {
    let settings = BridgeSettings {
        layout: Layout::new("main").unwrap(),
        hub: "a".into(),
        timeout_ms: TIMEOUT,
        max_text: 100,
    };
    NatsBridge::new(settings, 1 << 20, 0)
}

/// NATS client bytes as readable lines: `PUB subject [reply] payload`,
/// `SUB subject sid`, `UNSUB sid`, `PING`, `PONG`.
fn ops(out: &[u8]) -> Vec<String> {
    let mut ops = Vec::new();
    let mut rest = out;
    while !rest.is_empty() {
        let end = rest.windows(2).position(|w| w == b"\r\n").expect("CRLF");
        let line = std::str::from_utf8(&rest[..end]).unwrap().to_string();
        rest = &rest[end + 2..];
        if let Some(args) = line.strip_prefix("PUB ") {
            let mut words: Vec<&str> = args.split(' ').collect();
            let len: usize = words.pop().unwrap().parse().unwrap();
            let payload = std::str::from_utf8(&rest[..len]).unwrap();
            assert_eq!(&rest[len..len + 2], b"\r\n");
            rest = &rest[len + 2..];
            ops.push(format!("PUB {} {payload}", words.join(" ")));
        } else {
            ops.push(line);
        }
    }
    ops
}

fn from_router(b: &mut NatsBridge, line: &str) -> Vec<String> {
    let mut out = Vec::new();
    b.from_router(&LinkLine::parse(line).unwrap(), &mut out);
    ops(&out)
}

fn msg(subject: &str, sid: u64, reply: Option<&str>, payload: &[u8]) -> ServerOp {
    ServerOp::Msg {
        subject: subject.into(),
        sid,
        reply: reply.map(str::to_string),
        payload: payload.to_vec(),
    }
}

/// What the router is told about one operation from NATS at `now`, as
/// link lines; the NATS bytes answered go to `answer`.
fn from_nats_at(
    b: &mut NatsBridge,
    op: ServerOp,
    now: u64,
    answer: &mut Vec<String>,
) -> Vec<String> {
    let (mut out, mut lines) = (Vec::new(), Vec::new());
    b.from_nats(op, now, &mut out, &mut lines);
    answer.extend(ops(&out));
    lines.iter().map(encode).collect()
}

fn from_nats(b: &mut NatsBridge, op: ServerOp) -> Vec<String> {
    from_nats_at(b, op, 0, &mut Vec::new())
}

fn encode(line: &LinkLine<String>) -> String {
    let mut out = Vec::new();
    line.encode(&mut out);
    let text = String::from_utf8(out).unwrap();
    text.strip_suffix('\n').unwrap_or(&text).to_string()
}

fn presence(text: &str) -> ServerOp {
    msg("tcphub.main.presence", 2, None, text.as_bytes())
}

#[test]
fn start_subscribes_to_the_rooms_subjects_and_says_hello() {
    let mut b = bridge();
    let mut out = Vec::new();
    let wants = b.start(&mut out);
    assert_eq!(
        ops(&out),
        [
            "SUB tcphub.main.chat 1",
            "SUB tcphub.main.presence 2",
            "SUB tcphub.main.dm.a.* 3",
            "PUB tcphub.main.presence HELLO a",
        ]
    );
    assert_eq!(encode(&wants), "SUB *");
}

#[test]
fn local_lines_become_publications_with_the_sender_as_reply() {
    let mut b = bridge();
    assert_eq!(
        from_router(&mut b, "MSG ann@a hi there"),
        ["PUB tcphub.main.chat tcphub.main.dm.a.ann hi there"]
    );
    assert_eq!(
        from_router(&mut b, "EVENT pickup.north ann@a {\"id\":1}"),
        ["PUB tcphub.main.topic.pickup.north tcphub.main.dm.a.ann {\"id\":1}"]
    );
    assert_eq!(
        from_router(&mut b, "EVENT .x. ann@a p"),
        ["PUB tcphub.main.topic.%.x.% tcphub.main.dm.a.ann p"]
    );
    assert_eq!(
        from_router(&mut b, "DM bob@b ann@a psst"),
        ["PUB tcphub.main.dm.b.bob tcphub.main.dm.a.ann psst"]
    );
    for quiet in ["HELLO 1 nats k", "PONG", "HUB x", "SPLIT x", "ERR loop no"] {
        assert_eq!(from_router(&mut b, quiet), Vec::<String>::new(), "{quiet}");
    }
    assert_eq!(from_router(&mut b, "PING"), ["PING"]);
}

#[test]
fn local_presence_is_published_and_kept_for_the_heartbeat() {
    let mut b = bridge();
    assert_eq!(
        from_router(&mut b, "JOIN ann@a"),
        ["PUB tcphub.main.presence JOIN a ann"]
    );
    from_router(&mut b, "JOIN bob@a");
    assert_eq!(
        from_router(&mut b, "NICK bob@a robert"),
        ["PUB tcphub.main.presence NICK a bob robert"]
    );
    from_router(&mut b, "JOIN cid@a");
    assert_eq!(
        from_router(&mut b, "LEAVE cid@a"),
        ["PUB tcphub.main.presence LEAVE a cid"]
    );
    // A line about someone of another hub is not ours to announce.
    assert_eq!(from_router(&mut b, "JOIN zed@z"), Vec::<String>::new());
    let (mut out, mut lines) = (Vec::new(), Vec::new());
    b.tick(TIMEOUT / 3, &mut out, &mut lines);
    assert_eq!(
        ops(&out),
        ["PUB tcphub.main.presence ROSTER a ann robert", "PING"]
    );
    assert!(lines.is_empty());
}

#[test]
fn topics_are_subscribed_while_wanted_and_star_is_every_topic() {
    let mut b = bridge();
    assert_eq!(
        from_router(&mut b, "SUB pickup"),
        ["SUB tcphub.main.topic.pickup 4"]
    );
    // Twice is once.
    assert_eq!(from_router(&mut b, "SUB pickup"), Vec::<String>::new());
    assert_eq!(from_router(&mut b, "SUB *"), ["SUB tcphub.main.topic.> 5"]);
    assert_eq!(from_router(&mut b, "UNSUB pickup"), ["UNSUB 4"]);
    assert_eq!(from_router(&mut b, "UNSUB pickup"), Vec::<String>::new());
    assert_eq!(from_router(&mut b, "UNSUB *"), ["UNSUB 5"]);
}

#[test]
fn an_event_matching_two_subscriptions_is_taken_from_one() {
    let mut b = bridge();
    from_router(&mut b, "SUB pickup"); // sid 4
    let ev = |sid| msg("tcphub.main.topic.pickup", sid, None, b"box");
    assert_eq!(from_nats(&mut b, ev(4)), ["EVENT pickup anon@nats box"]);
    from_router(&mut b, "SUB *"); // sid 5: from now on the only source
    assert_eq!(from_nats(&mut b, ev(4)), Vec::<String>::new());
    assert_eq!(from_nats(&mut b, ev(5)), ["EVENT pickup anon@nats box"]);
    from_router(&mut b, "UNSUB *");
    // A copy still on its way through the old `*` is dropped.
    assert_eq!(from_nats(&mut b, ev(5)), Vec::<String>::new());
    assert_eq!(from_nats(&mut b, ev(4)), ["EVENT pickup anon@nats box"]);
    from_router(&mut b, "UNSUB pickup");
    assert_eq!(from_nats(&mut b, ev(4)), Vec::<String>::new());
}

#[test]
fn messages_from_other_hubs_name_their_sender_and_introduce_the_hub() {
    let mut b = bridge();
    let reply = Some("tcphub.main.dm.b.bob");
    assert_eq!(
        from_nats(&mut b, msg("tcphub.main.chat", 1, reply, b"hi")),
        ["HUB b", "MSG bob@b hi"]
    );
    // Known now: no second HUB.
    assert_eq!(
        from_nats(&mut b, msg("tcphub.main.dm.a.ann", 3, reply, b"psst")),
        ["DM ann@a bob@b psst"]
    );
    // A DM for another hub's user (a wildcard subscriber's) is not ours.
    assert_eq!(
        from_nats(&mut b, msg("tcphub.main.dm.c.cid", 3, reply, b"x")),
        Vec::<String>::new()
    );
    assert_eq!(b.peers(), 1);
}

#[test]
fn what_no_client_could_have_sent_is_dropped() {
    let mut b = bridge();
    let chat = |p: &[u8]| msg("tcphub.main.chat", 1, None, p);
    let long = vec![b'x'; 101];
    for payload in [&b""[..], b"two\nlines", b"cr\r", &[0xff, 0xfe], &long] {
        assert_eq!(
            from_nats(&mut b, chat(payload)),
            Vec::<String>::new(),
            "{payload:?}"
        );
    }
    assert_eq!(from_nats(&mut b, chat(&[b'x'; 100])).len(), 1);
    // Not one of the room's subjects, or a topic v1 refuses.
    for subject in ["tcphub.other.chat", "elsewhere", "tcphub.main.topic.a!b"] {
        assert_eq!(
            from_nats(&mut b, msg(subject, 1, None, b"x")),
            Vec::<String>::new()
        );
    }
    assert_eq!(b.dropped, 8);
}

#[test]
fn our_own_name_on_a_message_is_another_hub_and_dropped() {
    let mut b = bridge();
    let reply = Some("tcphub.main.dm.a.ann");
    assert_eq!(
        from_nats(&mut b, msg("tcphub.main.chat", 1, reply, b"echo?")),
        Vec::<String>::new()
    );
    for p in [
        "JOIN a eve",
        "ROSTER a eve",
        "BYE a",
        "JOIN nats x",
        "HELLO nats",
    ] {
        assert_eq!(from_nats(&mut b, presence(p)), Vec::<String>::new(), "{p}");
    }
    assert_eq!(b.peers(), 0);
}

#[test]
fn rosters_heartbeats_and_presence_lines_keep_the_others_current() {
    let mut b = bridge();
    assert_eq!(
        from_nats(&mut b, presence("ROSTER b bob cid")),
        ["HUB b", "JOIN bob@b", "JOIN cid@b"]
    );
    // The same roster again (a heartbeat) says nothing.
    assert_eq!(
        from_nats(&mut b, presence("ROSTER b bob cid")),
        Vec::<String>::new()
    );
    // A roster mends what was missed.
    assert_eq!(
        from_nats(&mut b, presence("ROSTER b bob dan")),
        ["LEAVE cid@b", "JOIN dan@b"]
    );
    assert_eq!(from_nats(&mut b, presence("JOIN b eve")), ["JOIN eve@b"]);
    assert_eq!(
        from_nats(&mut b, presence("JOIN b eve")),
        Vec::<String>::new()
    );
    assert_eq!(
        from_nats(&mut b, presence("NICK b eve eva")),
        ["NICK eve@b eva"]
    );
    // A rename of someone we never heard of is a join.
    assert_eq!(
        from_nats(&mut b, presence("NICK b ghost gus")),
        ["JOIN gus@b"]
    );
    assert_eq!(from_nats(&mut b, presence("LEAVE b eva")), ["LEAVE eva@b"]);
    assert_eq!(
        from_nats(&mut b, presence("LEAVE b eva")),
        Vec::<String>::new()
    );
    assert_eq!(from_nats(&mut b, presence("BYE b")), ["SPLIT b"]);
    assert_eq!(from_nats(&mut b, presence("BYE b")), Vec::<String>::new());
    // Garbage on the presence subject is dropped.
    assert_eq!(from_nats(&mut b, presence("JOIN b")), Vec::<String>::new());
    assert_eq!(
        from_nats(&mut b, presence("SHOUT b x")),
        Vec::<String>::new()
    );
}

#[test]
fn a_hello_is_answered_with_our_roster() {
    let mut b = bridge();
    from_router(&mut b, "JOIN ann@a");
    let mut answer = Vec::new();
    let lines = from_nats_at(&mut b, presence("HELLO c"), 10, &mut answer);
    assert_eq!(lines, ["HUB c"]);
    assert_eq!(answer, ["PUB tcphub.main.presence ROSTER a ann"]);
    // A server's PING is answered.
    let mut answer = Vec::new();
    from_nats_at(&mut b, ServerOp::Ping, 10, &mut answer);
    assert_eq!(answer, ["PONG"]);
}

#[test]
fn a_hub_silent_for_the_timeout_is_split_off() {
    let mut b = bridge();
    from_nats_at(&mut b, presence("ROSTER b bob"), 0, &mut Vec::new());
    from_nats_at(&mut b, presence("ROSTER c cid"), 1000, &mut Vec::new());
    let (mut out, mut lines) = (Vec::new(), Vec::new());
    // Beat due at 1000 (a third of 3000); b expires at 3000.
    assert_eq!(b.tick(500, &mut out, &mut lines), 500);
    assert!(out.is_empty() && lines.is_empty());
    assert_eq!(b.tick(1000, &mut out, &mut lines), 1000);
    assert_eq!(ops(&out), ["PUB tcphub.main.presence ROSTER a", "PING"]);
    out.clear();
    // Heard again just in time: b stays.
    from_nats_at(&mut b, presence("ROSTER b bob"), 2999, &mut Vec::new());
    b.tick(3999, &mut out, &mut lines);
    assert!(lines.iter().all(|l| encode(l) != "SPLIT b"));
    b.tick(4000, &mut out, &mut lines);
    let split: Vec<String> = lines.iter().map(encode).collect();
    assert_eq!(split, ["SPLIT c"]);
    lines.clear();
    b.tick(6000, &mut out, &mut lines);
    assert_eq!(lines.iter().map(encode).collect::<Vec<_>>(), ["SPLIT b"]);
    assert_eq!(b.peers(), 0);
    // A split hub heard again comes back with its users.
    assert_eq!(
        from_nats_at(&mut b, presence("ROSTER b bob"), 6001, &mut Vec::new()),
        ["HUB b", "JOIN bob@b"]
    );
}

#[test]
fn bye_is_published_on_the_presence_subject() {
    let mut b = bridge();
    let mut out = Vec::new();
    b.bye(&mut out);
    assert_eq!(ops(&out), ["PUB tcphub.main.presence BYE a"]);
}

fn any_op() -> impl Strategy<Value = ServerOp> {
    let subject = prop_oneof![
        Just("tcphub.main.chat".to_string()),
        Just("tcphub.main.presence".to_string()),
        Just("tcphub.main.topic.pickup".to_string()),
        Just("tcphub.main.dm.a.ann".to_string()),
        "[a-z.>*]{0,20}",
    ];
    let reply = prop::option::of(prop_oneof![
        Just("tcphub.main.dm.a.ann".to_string()),
        Just("tcphub.main.dm.b.bob".to_string()),
        "[a-z.]{0,12}",
    ]);
    let payload = prop_oneof![
        Just(b"ROSTER b bob".to_vec()),
        Just(b"HELLO c".to_vec()),
        Just(b"BYE b".to_vec()),
        prop::collection::vec(any::<u8>(), 0..40),
    ];
    prop_oneof![
        (subject, 1..6u64, reply, payload).prop_map(|(subject, sid, reply, payload)| {
            ServerOp::Msg {
                subject,
                sid,
                reply,
                payload,
            }
        }),
        Just(ServerOp::Ping),
        Just(ServerOp::Pong),
    ]
}

proptest! {
    /// Whatever NATS delivers, the router only ever hears of other hubs'
    /// users, under names v1 accepts, in lines that parse back.
    #[test]
    fn nothing_from_nats_speaks_for_this_hub(ops in prop::collection::vec((any_op(), 0..5000u64), 0..40)) {
        let mut b = bridge();
        from_router(&mut b, "SUB pickup");
        let mut now = 0;
        for (op, dt) in ops {
            now += dt;
            let (mut out, mut lines) = (Vec::new(), Vec::new());
            b.from_nats(op, now, &mut out, &mut lines);
            b.tick(now, &mut out, &mut lines);
            for line in &lines {
                let text = encode(line);
                prop_assert!(LinkLine::parse(&text).is_ok(), "{}", text);
                prop_assert!(!text.contains("@a ") && !text.ends_with("@a") || text.starts_with("DM ann@a "), "{}", text);
                prop_assert!(text != "HUB a" && text != "HUB nats", "{}", text);
            }
        }
    }
}
