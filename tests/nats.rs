//! Hubs in a NATS cluster (`--nats`, docs/nats.md), against the real
//! `nats-server`: three nodes routed into one cluster on loopback, a hub on
//! each, clients on each hub. What clients see is the contract of linked
//! hubs (`<nick>@<hub>`, JOIN/LEAVE of remote users, `/dm nick@hub`,
//! `/list`), plus: a foreign NATS client takes part, topics are subscribed
//! on NATS only while wanted, a killed node costs the hub on it a
//! failover and nobody else anything, and a hub that dies without a word
//! is noticed by its silence.
//!
//! Every wait is bounded; timings are printed, never asserted tight (they
//! are measured in docs/scale-out.md).

mod common;
mod nats_cluster;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{Peer, client_as as client, skip_to, wait_list};
use nats_cluster::{Cluster, Foreign};
use tcphub::hub::NatsConfig;
use tcphub::proto::nats_wire::parse_urls;
use tcphub::{Config, Hub};

/// A hub named `name` on the NATS servers `urls`.
fn hub(name: &str, urls: &str, timeout_ms: u64) -> Hub {
    hub_with(name, urls, timeout_ms, None)
}

fn hub_with(name: &str, urls: &str, timeout_ms: u64, user: Option<(&str, &str)>) -> Hub {
    let config = Config {
        name: Some(name.to_string()),
        nats: Some(NatsConfig {
            servers: parse_urls(urls).expect("good URLs"),
            user: user.map(|u| u.0.to_string()),
            pass: user.map(|u| u.1.to_string()),
            token: None,
            room: "main".into(),
            timeout: Duration::from_millis(timeout_ms),
        }),
        ..Config::ephemeral()
    };
    Hub::start(config).expect("hub starts")
}

/// Three nodes, hubs a, b, c on nodes 0, 1, 2, with ann, bob and cid on
/// them, everyone seeing everyone.
struct Room {
    cluster: Cluster,
    hubs: Vec<Hub>,
    ann: Peer,
    bob: Peer,
    cid: Peer,
}

fn room(timeout_ms: u64) -> Room {
    let cluster = Cluster::start(3);
    cluster.wait_meshed();
    let hubs: Vec<Hub> = ["a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(i, name)| hub(name, &cluster.url(i), timeout_ms))
        .collect();
    let mut ann = client(hubs[0].local_addr(), "ann");
    let mut bob = client(hubs[1].local_addr(), "bob");
    let mut cid = client(hubs[2].local_addr(), "cid");
    wait_list(&mut ann, "LIST ann bob@b cid@c");
    wait_list(&mut bob, "LIST ann@a bob cid@c");
    wait_list(&mut cid, "LIST ann@a bob@b cid");
    for p in [&mut ann, &mut bob, &mut cid] {
        p.settle();
    }
    Room {
        cluster,
        hubs,
        ann,
        bob,
        cid,
    }
}

#[test]
fn hubs_on_three_nodes_are_one_chat() {
    let Room {
        cluster: _cluster,
        hubs: _hubs,
        mut ann,
        mut bob,
        mut cid,
    } = room(5000);
    ann.send("hello from a");
    bob.expect("MSG ann@a hello from a");
    cid.expect("MSG ann@a hello from a");
    cid.send("  spaces kept ");
    ann.expect("MSG cid@c   spaces kept ");
    bob.expect("MSG cid@c   spaces kept ");

    bob.call("/dm ann@a psst", "OK dm ann@a");
    ann.expect("DM bob@b psst");
    ann.send("/dm nobody@b x");
    ann.expect_err("no-such-nick");

    // The /sub reaches NATS before bob's next line does: seeing the line
    // means the subscription is there.
    bob.call("/sub pickup", "OK sub pickup");
    bob.send("subscribed");
    ann.expect("MSG bob@b subscribed");
    cid.expect("MSG bob@b subscribed");
    ann.send("/pub pickup {\"id\":1}");
    bob.expect("EVENT pickup ann@a {\"id\":1}");
    // cid is not subscribed: its next line is the chat after the pub.
    ann.send("after");
    cid.expect("MSG ann@a after");
    bob.expect("MSG ann@a after");

    bob.call("/nick robert", "OK nick robert");
    ann.expect("NICK bob@b robert@b");
    cid.expect("NICK bob@b robert@b");
    wait_list(&mut cid, "LIST ann@a cid robert@b");

    bob.call("/quit", "BYE");
    ann.expect("LEAVE robert@b");
    cid.expect("LEAVE robert@b");
}

#[test]
fn each_senders_lines_arrive_once_and_in_order() {
    let Room {
        cluster: _cluster,
        hubs: _hubs,
        ann,
        mut bob,
        mut cid,
    } = room(5000);
    // Two senders at once, on two nodes: each one's order holds, and every
    // line arrives exactly once (the end marker proves nothing is left).
    const N: usize = 300;
    let (mut ann_reader, mut ann_w) = ann.split();
    let writer = thread::spawn(move || {
        use std::io::Write;
        for i in 0..N {
            writeln!(ann_w, "a{i}").unwrap();
        }
        ann_w
    });
    for i in 0..N {
        bob.send(&format!("b{i}"));
    }
    let _ann_w = writer.join().unwrap();
    let mut seen_at_cid = (0, 0);
    while seen_at_cid != (N, N) {
        let line = cid.recv();
        let (who, n) = if let Some(n) = line.strip_prefix("MSG ann@a a") {
            (0, n)
        } else if let Some(n) = line.strip_prefix("MSG bob@b b") {
            (1, n)
        } else {
            panic!("cid: unexpected {line:?}");
        };
        let n: usize = n.parse().unwrap();
        let next = if who == 0 {
            &mut seen_at_cid.0
        } else {
            &mut seen_at_cid.1
        };
        assert_eq!(n, *next, "cid: {line:?} out of order");
        *next += 1;
    }
    for i in 0..N {
        bob.expect(&format!("MSG ann@a a{i}"));
        ann_reader.expect(&format!("MSG bob@b b{i}"));
    }
    cid.sync();
    bob.sync();
}

#[test]
fn a_foreign_nats_client_reads_and_publishes() {
    let cluster = Cluster::start(1);
    let a = hub("a", &cluster.url(0), 5000);
    let mut ann = client(a.local_addr(), "ann");
    let mut foreign = Foreign::connect(cluster.nodes[0].client);
    foreign.subscribe("tcphub.main.chat", 1);
    // Hub a's NATS connection comes up in the background: a line sent
    // before it is up is not published (nothing is replayed, docs/nats.md).
    wait_subscribed(&cluster, "tcphub.main.dm.a.*");
    ann.send("hi nats");
    let (subject, reply, payload) = foreign.next_msg();
    assert_eq!(subject, "tcphub.main.chat");
    assert_eq!(reply.as_deref(), Some("tcphub.main.dm.a.ann"));
    assert_eq!(payload, "hi nats");
    // Answering the reply subject is a DM to ann.
    foreign.publish("tcphub.main.dm.a.ann", "hello ann");
    ann.expect("DM anon@nats hello ann");

    ann.call("/sub pickup.north", "OK sub pickup.north");
    ann.call("/sub *", "OK sub *");
    // (nats-server's JSON writes `>` as `\u003e`.)
    wait_subscribed(&cluster, "tcphub.main.topic.\\u003e");
    // Two of ann's subscriptions match: she still gets it once.
    foreign.publish("tcphub.main.topic.pickup.north", "box 7");
    // Lines no client could have sent are dropped, never shown.
    foreign.publish("tcphub.main.chat", &"x".repeat(5000));
    foreign.publish("tcphub.main.chat", "");
    foreign.send("PUB tcphub.main.chat 8\r\nbad\nline\r\n");
    foreign.publish("tcphub.main.chat", "marker");
    ann.expect("EVENT pickup.north anon@nats box 7");
    ann.expect("MSG anon@nats marker");
    ann.sync();
}

/// Waits (bounded) until some connection of node 0 holds `subject`.
fn wait_subscribed(cluster: &Cluster, subject: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cluster.monitor(0, "/connz?subs=1").contains(subject) {
        assert!(Instant::now() < deadline, "never subscribed to {subject}");
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn topics_are_subscribed_on_nats_only_while_a_client_wants_them() {
    let cluster = Cluster::start(1);
    let a = hub("a", &cluster.url(0), 5000);
    let mut ann = client(a.local_addr(), "ann");
    let subs = || cluster.monitor(0, "/connz?subs=1");
    // Always: chat, presence, this hub's DM inbox; no topic yet.
    wait_subscribed(&cluster, "tcphub.main.dm.a.*");
    assert!(subs().contains("tcphub.main.chat"));
    assert!(!subs().contains("tcphub.main.topic."), "{}", subs());
    ann.call("/sub pickup", "OK sub pickup");
    wait_subscribed(&cluster, "tcphub.main.topic.pickup");
    let mut bob = client(a.local_addr(), "bob");
    bob.call("/sub pickup", "OK sub pickup");
    ann.settle();
    ann.call("/unsub pickup", "OK unsub pickup");
    // bob still wants it.
    thread::sleep(Duration::from_millis(200));
    assert!(subs().contains("tcphub.main.topic.pickup"));
    bob.call("/unsub pickup", "OK unsub pickup");
    let deadline = Instant::now() + Duration::from_secs(10);
    while subs().contains("tcphub.main.topic.pickup") {
        assert!(Instant::now() < deadline, "never unsubscribed: {}", subs());
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_killed_node_costs_its_hub_a_failover_and_the_others_nothing() {
    let Room {
        mut cluster,
        hubs: _hubs,
        mut ann,
        mut bob,
        mut cid,
    } = room(5000);
    // Hub a was given node 0 only: it learnt the others from the cluster.
    let killed = Instant::now();
    cluster.kill(0);
    // ann sees a netsplit, then everyone back.
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut back = (false, false);
    while back != (true, true) {
        assert!(
            Instant::now() < deadline,
            "ann never saw the others back: {lines:?}"
        );
        let line = ann.recv();
        back.0 |= line == "JOIN bob@b";
        back.1 |= line == "JOIN cid@c";
        lines.push(line);
    }
    let failover = killed.elapsed();
    eprintln!("hub a failed over in {failover:?}: ann saw {lines:?}");
    assert!(lines.contains(&"LEAVE bob@b".to_string()), "{lines:?}");
    // Told why, before the LEAVEs, and told when it is back.
    assert!(lines[0].starts_with("NOTICE lost NATS ("), "{lines:?}");
    let back_notice = lines
        .iter()
        .position(|l| l.starts_with("NOTICE NATS is back ("));
    let leave = lines.iter().position(|l| l == "LEAVE bob@b");
    assert!(back_notice > leave, "{lines:?}");
    // bob and cid, on surviving nodes, kept talking and saw nothing else.
    cid.send("still here");
    bob.expect("MSG cid@c still here");
    ann.expect("MSG cid@c still here");
    ann.send("back");
    bob.expect("MSG ann@a back");
    cid.expect("MSG ann@a back");
    bob.sync();
    cid.sync();
    // The node comes back and joins the cluster again.
    cluster.restart(0);
    cluster.wait_meshed();
}

#[test]
fn a_hung_nats_server_never_stalls_local_clients_and_is_left() {
    let mut cluster = Cluster::start(2);
    cluster.wait_meshed();
    // Hub a knows node0 only (it learns node1); a short timeout.
    let a = hub("a", &cluster.url(0), 500);
    let b = hub("b", &cluster.url(1), 500);
    let mut ann = client(a.local_addr(), "ann");
    let mut amy = client(a.local_addr(), "amy");
    let mut bob = client(b.local_addr(), "bob");
    wait_list(&mut bob, "LIST amy@a ann@a bob");
    wait_list(&mut amy, "LIST amy ann bob@b");
    wait_list(&mut ann, "LIST amy ann bob@b");
    // Whatever told ann of bob (a JOIN, or a JOIN then a NICK) is behind us.
    ann.settle();
    amy.settle();
    cluster.pause(0);
    // ann floods while node0 reads nothing: amy, on the same hub, gets
    // every line, and her /ping is answered, while the NATS connection's
    // bytes wait in its outbox (bounded, and cut after the timeout).
    let (mut ann_reader, mut ann_w) = ann.split();
    let line = "x".repeat(1000);
    let flood = thread::spawn(move || {
        use std::io::Write;
        for i in 0..3000 {
            writeln!(ann_w, "{i} {line}").unwrap();
        }
        ann_w
    });
    for i in 0..3000 {
        let got = amy.recv();
        assert!(got.starts_with(&format!("MSG ann {i} ")), "amy: {got:?}");
    }
    amy.sync();
    let _ann_w = flood.join().unwrap();
    // Hub a leaves the hung node and is back through node1.
    let lines = skip_to(&mut ann_reader, "JOIN bob@b");
    assert!(
        lines.iter().any(|l| l.starts_with("NOTICE lost NATS")),
        "{lines:?}"
    );
    cluster.resume(0);
    ann_reader.send("/ping");
    skip_to(&mut ann_reader, "PONG");
    let mut ann = ann_reader;
    ann.send("through node1");
    skip_to(&mut bob, "MSG ann@a through node1");
}

/// `tcphub serve` as a child process, so it can die without a goodbye.
fn serve_child(args: &[&str]) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tcphub"))
        .args(["serve", "--port", "0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("tcphub serve starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = tcphub::support::server_process::parse_listening(line.trim()).unwrap();
    (child, addr)
}

#[test]
fn a_hub_killed_without_a_word_is_noticed_by_its_silence() {
    let cluster = Cluster::start(1);
    let b = hub("b", &cluster.url(0), 400);
    let mut bob = client(b.local_addr(), "bob");
    let url = cluster.url(0);
    let (mut a, a_addr) = serve_child(&["--name", "a", "--nats", &url, "--nats-timeout-ms", "400"]);
    let _ann = client(a_addr, "ann");
    wait_list(&mut bob, "LIST ann@a bob");
    let killed = Instant::now();
    a.kill().unwrap();
    a.wait().unwrap();
    let skipped = skip_to(
        &mut bob,
        "NOTICE hub a silent on NATS for 400 ms: its users leave",
    );
    assert!(
        skipped
            .iter()
            .all(|l| l.starts_with("PONG") || l.starts_with("LIST")),
        "{skipped:?}"
    );
    bob.expect("LEAVE ann@a");
    eprintln!("ann@a left {:?} after hub a was killed", killed.elapsed());
    wait_list(&mut bob, "LIST bob");
}

#[test]
fn a_hub_that_stops_says_bye_and_its_users_leave_at_once() {
    let cluster = Cluster::start(1);
    // A minute of silence allowed: only the BYE can make ann leave in time.
    let a = hub("a", &cluster.url(0), 60_000);
    let b = hub("b", &cluster.url(0), 60_000);
    let _ann = client(a.local_addr(), "ann");
    let mut bob = client(b.local_addr(), "bob");
    wait_list(&mut bob, "LIST ann@a bob");
    bob.settle();
    a.shutdown();
    bob.expect("NOTICE hub a stopped: its users leave");
    bob.expect("LEAVE ann@a");
}

#[test]
fn while_nats_is_unreachable_local_clients_keep_working() {
    // A port nobody listens on yet.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("nats://127.0.0.1:{port}");
    let a = hub("a", &url, 5000);
    let mut ann = client(a.local_addr(), "ann");
    let mut amy = client(a.local_addr(), "amy");
    ann.settle();
    amy.send("local still works");
    ann.expect("MSG amy local still works");
    // The server comes up on that port: the hub finds it by itself.
    let mut cmd = Command::new(nats_cluster::nats_server_binary());
    cmd.args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut server = cmd.spawn().unwrap();
    let b = hub("b", &url, 5000);
    let _bob = client(b.local_addr(), "bob");
    wait_list(&mut ann, "LIST amy ann bob@b");
    let _ = server.kill();
    let _ = server.wait();
}

#[test]
fn credentials_are_sent_and_a_wrong_or_missing_one_never_connects() {
    let cluster = Cluster::start_with(1, &["--user", "hub", "--pass", "s3cret"]);
    let url = cluster.url(0);
    let a = hub_with("a", &url, 5000, Some(("hub", "s3cret")));
    let b = hub_with("b", &url, 5000, Some(("hub", "wrong")));
    let c = hub("c", &url, 5000);
    let d = hub_with("d", &url, 5000, Some(("hub", "s3cret")));
    let mut ann = client(a.local_addr(), "ann");
    let _bob = client(b.local_addr(), "bob");
    let _cid = client(c.local_addr(), "cid");
    let _dan = client(d.local_addr(), "dan");
    wait_list(&mut ann, "LIST ann dan@d");
    // Long enough for b and c to have tried (and failed) several times.
    thread::sleep(Duration::from_millis(600));
    wait_list(&mut ann, "LIST ann dan@d");
    // A token, from the environment of `tcphub serve`.
    let tokened = Cluster::start_with(1, &["--auth", "t0ken"]);
    let turl = tokened.url(0);
    let e = hub_with("e", &turl, 5000, None);
    drop(e);
    let mut serve = Command::new(env!("CARGO_BIN_EXE_tcphub"));
    serve
        .args(["serve", "--port", "0", "--name", "f", "--nats", &turl])
        .env("TCPHUB_NATS_TOKEN", "t0ken")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut f = serve.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(f.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let f_addr = tcphub::support::server_process::parse_listening(line.trim()).unwrap();
    let _fay = client(f_addr, "fay");
    let g = Hub::start(Config {
        name: Some("g".into()),
        nats: Some(NatsConfig {
            servers: parse_urls(&turl).unwrap(),
            user: None,
            pass: None,
            token: Some("t0ken".into()),
            room: "main".into(),
            timeout: Duration::from_millis(5000),
        }),
        ..Config::ephemeral()
    })
    .unwrap();
    let mut gus = client(g.local_addr(), "gus");
    wait_list(&mut gus, "LIST fay@f gus");
    let _ = f.kill();
    let _ = f.wait();
}

#[test]
fn bad_nats_flags_are_refused_with_exit_code_2() {
    let cases: &[(&[&str], &str)] = &[
        (&["--nats", "ws://127.0.0.1:4222"], "ws"),
        (&["--nats", ""], "no NATS server"),
        (
            &[
                "--nats",
                "127.0.0.1:1",
                "--link",
                "127.0.0.1:2",
                "--link-key",
                "k",
            ],
            "not both",
        ),
        (&["--nats", "127.0.0.1:1", "--name", "nats"], "taken"),
        (&["--nats", "127.0.0.1:1", "--nats-room", "a.b"], "room"),
        (
            &["--nats", "127.0.0.1:1", "--nats-user", "u"],
            "--nats-pass",
        ),
        (
            &["--nats", "127.0.0.1:1", "--nats-timeout-ms", "5"],
            "nats-timeout-ms",
        ),
    ];
    for (args, says) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_tcphub"))
            .args(["serve", "--port", "0"])
            .args(*args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(stderr.trim().lines().count() <= 6, "{args:?}: {stderr}");
    }
}

#[test]
fn a_hub_in_a_cluster_records_its_own_clients_only() {
    let cluster = Cluster::start(1);
    let dir = std::env::temp_dir().join(format!("tcphub-nats-record-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("a.scenario");
    let config = Config {
        name: Some("a".into()),
        record: Some(file.clone()),
        nats: Some(NatsConfig {
            servers: parse_urls(&cluster.url(0)).unwrap(),
            user: None,
            pass: None,
            token: None,
            room: "main".into(),
            timeout: Duration::from_millis(5000),
        }),
        ..Config::ephemeral()
    };
    let a = Hub::start(config).unwrap();
    let b = hub("b", &cluster.url(0), 5000);
    let mut ann = client(a.local_addr(), "ann");
    let mut bob = client(b.local_addr(), "bob");
    wait_list(&mut ann, "LIST ann bob@b");
    bob.send("hi from b");
    skip_to(&mut ann, "MSG bob@b hi from b");
    ann.send("hi from a");
    skip_to(&mut bob, "MSG ann@a hi from a");
    ann.call("/quit", "BYE");
    a.shutdown();
    let text = std::fs::read_to_string(&file).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    // ann is the one client recorded; what reached her from hub b is among
    // her expectations; nothing of the NATS connection is in the file.
    assert!(text.contains("c1: send hi from a"), "{text}");
    assert!(text.contains("c1: expect MSG bob@b hi from b"), "{text}");
    assert!(!text.contains("c2:"), "{text}");
    for nats in ["PUB ", "ROSTER", "HELLO", "tcphub.main"] {
        assert!(!text.contains(nats), "{nats} in {text}");
    }
    drop(b);
}
