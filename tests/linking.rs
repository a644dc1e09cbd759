//! Linked hubs (docs/linking.md), as clients see them: names `<nick>@<hub>`,
//! netjoin and netsplit, exactly-once delivery and per-sender order through
//! a tree of hubs, interest propagation, dead-link detection, reconnection,
//! and refusals on the link port.
//!
//! Every hub is in this process on `127.0.0.1` port 0, with a short link
//! timeout. Waits are bounded: a test that would hang fails instead.
//! Where a test needs a link to misbehave (go silent, be counted), a relay
//! thread sits between two hubs.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::{Peer, client_as as client, skip_to, wait_list};
use tcphub::{Config, Hub};

const KEY: &str = "classroom";
/// Short, so dead links are found fast; long enough for a busy CI machine.
const LINK_TIMEOUT: Duration = Duration::from_millis(300);

/// A hub named `name`, accepting links if `listen`, dialling `links`.
fn hub(name: &str, listen: bool, links: &[SocketAddr]) -> Hub {
    hub_with(name, listen, links, Some(KEY), None)
}

fn hub_with(
    name: &str,
    listen: bool,
    links: &[SocketAddr],
    key: Option<&str>,
    link_port: Option<u16>,
) -> Hub {
    let config = Config {
        name: Some(name.to_string()),
        link_listen: listen.then(|| format!("127.0.0.1:{}", link_port.unwrap_or(0))),
        links: links.iter().map(|a| a.to_string()).collect(),
        link_key: key.map(str::to_string),
        link_timeout: LINK_TIMEOUT,
        ..Config::ephemeral()
    };
    Hub::start(config).expect("hub starts")
}

fn link_addr(hub: &Hub) -> SocketAddr {
    hub.link_addr().expect("the hub listens for links")
}

#[test]
fn two_hubs_are_one_chat_with_nick_at_hub_names() {
    let a = hub("a", true, &[]);
    let mut ann = client(a.local_addr(), "ann");
    let b = hub("b", false, &[link_addr(&a)]);
    let mut bob = client(b.local_addr(), "bob");
    // bob may come before or after the link: either way both see both.
    wait_list(&mut bob, "LIST ann@a bob");
    wait_list(&mut ann, "LIST ann bob@b");
    ann.settle();

    ann.send("hello from a");
    bob.expect("MSG ann@a hello from a");
    bob.send("  hi, ann ");
    ann.expect("MSG bob@b   hi, ann ");

    bob.call("/dm ann@a psst", "OK dm ann@a");
    ann.expect("DM bob@b psst");
    ann.call("/dm bob@b back", "OK dm bob@b");
    bob.expect("DM ann@a back");
    // <nick>@<own hub> is the local client
    ann.send("/dm ann@a me");
    ann.expect("DM ann me");
    ann.expect("OK dm ann@a");
    ann.send("/dm nobody@b x");
    ann.expect_err("no-such-nick");
    ann.send("/dm bob@nowhere x");
    ann.expect_err("no-such-nick");

    // A pub crosses once the subscription has (a chat line after /sub
    // follows the SUB over the link, so seeing it means the SUB is there).
    bob.call("/sub pickup", "OK sub pickup");
    bob.send("subscribed");
    ann.expect("MSG bob@b subscribed");
    ann.send("/pub pickup {\"id\":1}");
    bob.expect("EVENT pickup ann@a {\"id\":1}");

    bob.call("/nick robert", "OK nick robert");
    ann.expect("NICK bob@b robert@b");
    ann.call("/nick anna", "OK nick anna");
    bob.expect("NICK ann@a anna@a");
    wait_list(&mut bob, "LIST anna@a robert");

    bob.call("/quit", "BYE");
    ann.expect("LEAVE robert@b");
    ann.sync();
}

#[test]
fn netjoin_and_netsplit_when_a_hub_goes_down() {
    let a = hub("a", true, &[]);
    let mut ann = client(a.local_addr(), "ann");
    let b = hub("b", true, &[]);
    let mut b1 = client(b.local_addr(), "b1");
    let mut b2 = client(b.local_addr(), "b2");
    b1.settle();
    b2.settle();
    // c links both: a - c - b
    let c = hub("c", false, &[link_addr(&a), link_addr(&b)]);
    // Netjoin: ann hears of every client that has just become reachable.
    let mut joins: Vec<String> = (0..2).map(|_| ann.recv()).collect();
    joins.sort();
    assert_eq!(joins, ["JOIN b1@b", "JOIN b2@b"]);
    wait_list(&mut ann, "LIST ann b1@b b2@b");
    b1.settle();
    wait_list(&mut b1, "LIST ann@a b1 b2");

    // The middle hub goes down: a and b are split, nobody else is affected.
    c.shutdown();
    let mut leaves: Vec<String> = (0..2).map(|_| ann.recv()).collect();
    leaves.sort();
    assert_eq!(leaves, ["LEAVE b1@b", "LEAVE b2@b"]);
    b1.expect("LEAVE ann@a");
    wait_list(&mut ann, "LIST ann");
    b1.send("still here");
    skip_to(&mut b2, "MSG b1 still here");
}

/// A client's lines reach everyone, on any hub, once and in order: `hubs`
/// is the tree, `sender` the hub index the talker is on.
fn exactly_once_in_order(hubs: &[Hub], sender: usize) {
    const LINES: usize = 3000;
    let mut peers: Vec<Peer> = hubs
        .iter()
        .map(|h| client(h.local_addr(), &format!("p-{}", h.name())))
        .collect();
    let names: Vec<String> = hubs
        .iter()
        .map(|h| format!("p-{}@{}", h.name(), h.name()))
        .collect();
    for (i, peer) in peers.iter_mut().enumerate() {
        let mut list: Vec<String> = names.clone();
        list[i] = format!("p-{}", hubs[i].name());
        list.sort();
        wait_list(peer, &format!("LIST {}", list.join(" ")));
    }
    for (i, peer) in peers.iter_mut().enumerate() {
        if i != sender {
            // Another peer's "ready" may come before our OK.
            peer.send("/sub load");
            skip_to(peer, "OK sub load");
            peer.send(&format!("ready-{i}"));
        }
    }
    let talker = format!("p-{}@{}", hubs[sender].name(), hubs[sender].name());
    // Every subscription has crossed once the talker saw every "ready".
    let mut waiting: Vec<String> = (0..hubs.len())
        .filter(|&i| i != sender)
        .map(|i| format!("MSG {} ready-{i}", names[i]))
        .collect();
    while !waiting.is_empty() {
        let line = peers[sender].recv();
        waiting.retain(|w| *w != line);
    }
    let (peer, mut writer) = peers.remove(sender).split();
    let writing = thread::spawn(move || {
        let mut batch = String::new();
        for n in 0..LINES {
            batch.push_str(&format!("line {n}\n/pub load {n}\n"));
        }
        batch.push_str("done\n");
        writer.write_all(batch.as_bytes()).unwrap();
        writer
    });
    for p in peers.iter_mut() {
        // Skip what came before the load ("ready" lines of the others).
        let first = format!("MSG {talker} line 0");
        skip_to(p, &first);
        for n in 0..LINES {
            p.expect(&format!("EVENT load {talker} {n}"));
            if n + 1 < LINES {
                p.expect(&format!("MSG {talker} line {}", n + 1));
            }
        }
        p.expect(&format!("MSG {talker} done"));
        // Nothing twice: the very next line is the answer to our ping.
        p.sync();
    }
    drop(writing.join().unwrap());
    drop(peer);
}

#[test]
fn a_chain_of_three_delivers_exactly_once_in_order_over_two_hops() {
    let a = hub("a", true, &[]);
    let b = hub("b", true, &[link_addr(&a)]);
    let c = hub("c", false, &[link_addr(&b)]);
    exactly_once_in_order(&[a, b, c], 2);
}

#[test]
fn a_star_of_three_delivers_exactly_once_in_order() {
    let hubb = hub("hub", true, &[]);
    let at = link_addr(&hubb);
    let x = hub("x", false, &[at]);
    let y = hub("y", false, &[at]);
    exactly_once_in_order(&[x, hubb, y], 0);
}

/// Reads the one line the link port answers, and checks it closes after.
fn link_port_answer(addr: SocketAddr, send: &[u8]) -> String {
    let mut peer = Peer::connect(addr, "raw-link");
    peer.send_raw(send);
    let line = peer.recv();
    peer.expect_closed();
    line
}

#[test]
fn bad_input_on_the_link_port_gets_one_err_and_a_close() {
    let a = hub("a", true, &[]);
    let b = hub("b", true, &[link_addr(&a)]);
    let mut ann = client(a.local_addr(), "ann");
    let mut bob = client(b.local_addr(), "bob");
    wait_list(&mut ann, "LIST ann bob@b");
    let at = link_addr(&a);
    let cases: &[(&[u8], &str)] = &[
        (b"garbage\n", "ERR bad-hello "),
        (b"\xff\xfe\n", "ERR bad-hello "),
        (b"HELLO 1 c wrong\n", "ERR bad-key "),
        (b"HELLO 1 c\n", "ERR bad-key "),
        (b"HELLO 2 c classroom\n", "ERR bad-version "),
        (b"HELLO 1 a classroom\n", "ERR name-taken "),
        // b is reachable already: a second way to it would be a loop
        (b"HELLO 1 b classroom\n", "ERR loop "),
    ];
    for (send, answer) in cases {
        let got = link_port_answer(at, send);
        assert!(got.starts_with(answer), "{send:?}: got {got:?}");
    }
    // A hub whose burst names a hub already reachable: a loop too.
    let mut sneaky = Peer::connect(at, "sneaky");
    sneaky.send("HELLO 1 d classroom");
    sneaky.expect_prefix("HELLO 1 a classroom");
    sneaky.send("HUB b");
    loop {
        let line = sneaky.recv();
        if line.starts_with("ERR ") {
            assert!(line.starts_with("ERR loop "), "{line}");
            break;
        }
    }
    sneaky.expect_closed();
    // Garbage after a good handshake.
    let mut rude = Peer::connect(at, "rude");
    rude.send("HELLO 1 e classroom");
    rude.expect_prefix("HELLO 1 a classroom");
    rude.send("what is this");
    loop {
        let line = rude.recv();
        if line.starts_with("ERR ") {
            assert!(line.starts_with("ERR bad-line "), "{line}");
            break;
        }
    }
    rude.expect_closed();
    // Everyone else carries on, the existing link included.
    ann.settle();
    ann.send("fine");
    bob.settle();
    wait_list(&mut bob, "LIST ann@a bob");
    ann.send("still fine");
    skip_to(&mut bob, "MSG ann@a still fine");
}

#[test]
fn a_hub_without_a_key_refuses_every_link() {
    let lone = hub_with("lone", true, &[], None, None);
    let got = link_port_answer(link_addr(&lone), b"HELLO 1 x anything\n");
    assert!(got.starts_with("ERR no-key "), "{got}");
    // and a hub cannot dial without one
    let config = Config {
        links: vec![link_addr(&lone).to_string()],
        ..Config::ephemeral()
    };
    assert!(Hub::start(config).is_err());
}

/// A TCP relay between two hubs that can go silent (a cable pulled:
/// nothing passes, nothing is closed) and counts the `EVENT` lines it
/// carries towards the dialled hub.
struct Relay {
    addr: SocketAddr,
    /// Connections accepted before this number pass nothing.
    silenced_below: Arc<AtomicUsize>,
    accepted: Arc<AtomicUsize>,
    /// `EVENT` lines carried from the dialler's side to the listener's... and
    /// the other way: from the listening hub to the dialling one.
    events_to_dialler: Arc<AtomicUsize>,
}

impl Relay {
    fn start(to: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let relay = Relay {
            addr: listener.local_addr().unwrap(),
            silenced_below: Arc::new(AtomicUsize::new(0)),
            accepted: Arc::new(AtomicUsize::new(0)),
            events_to_dialler: Arc::new(AtomicUsize::new(0)),
        };
        let (silenced, accepted) = (relay.silenced_below.clone(), relay.accepted.clone());
        let events = relay.events_to_dialler.clone();
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(inward) = conn else { return };
                let Ok(outward) = TcpStream::connect(to) else {
                    continue;
                };
                let generation = accepted.fetch_add(1, Ordering::SeqCst);
                for (from, into, count) in [
                    (
                        inward.try_clone().unwrap(),
                        outward.try_clone().unwrap(),
                        None,
                    ),
                    (outward, inward, Some(events.clone())),
                ] {
                    let silenced = silenced.clone();
                    thread::spawn(move || pump(from, into, generation, silenced, count));
                }
            }
        });
        relay
    }

    /// From now on, the connections open so far pass nothing.
    fn go_silent(&self) {
        self.silenced_below
            .store(self.accepted.load(Ordering::SeqCst), Ordering::SeqCst);
    }

    fn events(&self) -> usize {
        self.events_to_dialler.load(Ordering::SeqCst)
    }
}

fn pump(
    mut from: TcpStream,
    mut into: TcpStream,
    generation: usize,
    silenced: Arc<AtomicUsize>,
    count: Option<Arc<AtomicUsize>>,
) {
    let mut buf = [0u8; 16 * 1024];
    let mut line_start = true;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if generation < silenced.load(Ordering::SeqCst) {
            continue; // the cable is pulled: swallow everything
        }
        if let Some(count) = &count {
            for (i, &b) in buf[..n].iter().enumerate() {
                if line_start && buf[i..n].starts_with(b"EVENT ") {
                    count.fetch_add(1, Ordering::SeqCst);
                }
                line_start = b == b'\n';
            }
        }
        if into.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    if generation >= silenced.load(Ordering::SeqCst) {
        let _ = into.shutdown(Shutdown::Both);
    }
}

#[test]
fn a_silent_link_is_a_netsplit_and_the_link_comes_back() {
    let a = hub("a", true, &[]);
    let relay = Relay::start(link_addr(&a));
    let b = hub("b", false, &[relay.addr]);
    let mut ann = client(a.local_addr(), "ann");
    let mut bob = client(b.local_addr(), "bob");
    wait_list(&mut ann, "LIST ann bob@b");
    ann.settle();
    bob.settle();

    let cut = Instant::now();
    relay.go_silent();
    // Neither TCP connection is closed; the heartbeats stop arriving.
    ann.expect("LEAVE bob@b");
    bob.expect("LEAVE ann@a");
    let noticed = cut.elapsed();
    assert!(
        noticed >= LINK_TIMEOUT / 2 && noticed < Duration::from_secs(5),
        "{noticed:?}"
    );
    // b dials again (through the relay, which passes new connections):
    // a netjoin, within the 1 s backoff and some slack.
    ann.expect("JOIN bob@b");
    bob.expect("JOIN ann@a");
    ann.send("back");
    bob.expect("MSG ann@a back");
}

#[test]
fn a_dialled_hub_that_restarts_is_linked_again() {
    let a = hub("a", true, &[]);
    let port = link_addr(&a).port();
    let b = hub("b", false, &[link_addr(&a)]);
    let mut bob = client(b.local_addr(), "bob");
    let ann = client(a.local_addr(), "ann");
    wait_list(&mut bob, "LIST ann@a bob");
    a.shutdown();
    drop(ann);
    skip_to(&mut bob, "LEAVE ann@a");
    // a comes back on the same link port; b's linker finds it.
    let a = hub_with("a", true, &[], Some(KEY), Some(port));
    let mut amy = client(a.local_addr(), "amy");
    wait_list(&mut bob, "LIST amy@a bob");
    amy.send("hello again");
    skip_to(&mut bob, "MSG amy@a hello again");
}

#[test]
fn a_pub_crosses_a_link_only_when_someone_beyond_wants_it() {
    let a = hub("a", true, &[]);
    let relay = Relay::start(link_addr(&a));
    // b dials a through the relay; what a sends b is counted.
    let b = hub("b", false, &[relay.addr]);
    let mut ann = client(a.local_addr(), "ann");
    let mut bob = client(b.local_addr(), "bob");
    wait_list(&mut ann, "LIST ann bob@b");
    bob.settle();

    // Nobody on b subscribes: nothing crosses.
    for n in 0..50 {
        ann.send(&format!("/pub t1 {n}"));
    }
    ann.send("barrier-1");
    bob.expect("MSG ann@a barrier-1");
    assert_eq!(relay.events(), 0);

    // bob wants t1: t1 crosses, t2 does not.
    bob.call("/sub t1", "OK sub t1");
    bob.send("sub-done");
    skip_to(&mut ann, "MSG bob@b sub-done");
    for n in 0..20 {
        ann.send(&format!("/pub t1 {n}"));
        ann.send(&format!("/pub t2 {n}"));
    }
    ann.send("barrier-2");
    for n in 0..20 {
        bob.expect(&format!("EVENT t1 ann@a {n}"));
    }
    bob.expect("MSG ann@a barrier-2");
    assert_eq!(relay.events(), 20);

    // `*` wants everything; then nothing again.
    bob.call("/sub *", "OK sub *");
    bob.call("/unsub t1", "OK unsub t1");
    bob.send("star");
    skip_to(&mut ann, "MSG bob@b star");
    ann.send("/pub t2 x");
    bob.expect("EVENT t2 ann@a x");
    assert_eq!(relay.events(), 21);
    bob.call("/unsub *", "OK unsub *");
    bob.send("none");
    skip_to(&mut ann, "MSG bob@b none");
    ann.send("/pub t1 y");
    ann.send("barrier-3");
    bob.expect("MSG ann@a barrier-3");
    assert_eq!(relay.events(), 21);
}

#[test]
fn interest_propagates_over_two_hops() {
    let a = hub("a", true, &[]);
    let b = hub("b", true, &[link_addr(&a)]);
    let relay = Relay::start(link_addr(&b));
    let c = hub("c", false, &[relay.addr]);
    let mut ann = client(a.local_addr(), "ann");
    let mut bea = client(b.local_addr(), "bea");
    let mut cid = client(c.local_addr(), "cid");
    wait_list(&mut cid, "LIST ann@a bea@b cid");
    wait_list(&mut ann, "LIST ann bea@b cid@c");
    // bea (on b) wants t: a's pub goes to b and stops there.
    bea.settle();
    bea.call("/sub t", "OK sub t");
    bea.send("ready");
    skip_to(&mut ann, "MSG bea@b ready");
    ann.send("/pub t 1");
    bea.expect("EVENT t ann@a 1");
    ann.send("after");
    skip_to(&mut cid, "MSG ann@a after");
    assert_eq!(relay.events(), 0, "nobody on c wants t");
    // cid (two hops away) wants it too.
    cid.call("/sub t", "OK sub t");
    cid.send("ready");
    skip_to(&mut ann, "MSG cid@c ready");
    ann.send("/pub t 2");
    cid.expect("EVENT t ann@a 2");
    assert_eq!(relay.events(), 1);
    // and when cid leaves, the interest goes with it
    cid.call("/quit", "BYE");
    skip_to(&mut ann, "LEAVE cid@c");
    ann.send("/pub t 3");
    skip_to(&mut bea, "EVENT t ann@a 2");
    skip_to(&mut bea, "EVENT t ann@a 3");
}

// ---- tcphub simulate across linked hubs ---------------------------------

/// Runs a built-in scenario; returns whether it passed, and its timeline.
fn simulate(name: &str) -> (bool, String) {
    use std::sync::Mutex;
    use tcphub::scenario::{self, run::HubToUse, run::Outcome};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);
    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let loaded = scenario::load(name).expect("built-in loads");
    let out = Captured::default();
    let report = scenario::run::run(&loaded, &HubToUse::InProcess, Box::new(out.clone()))
        .expect("the run starts");
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    (matches!(report.outcome, Outcome::Passed { .. }), text)
}

#[test]
fn simulate_caps_linked_runs_the_story_on_three_hubs() {
    let (passed, timeline) = simulate("caps-linked");
    assert!(passed, "{timeline}");
    assert!(timeline.contains("linked a - b - c"), "{timeline}");
    assert!(timeline.contains("connect to hub c"), "{timeline}");
    assert!(
        timeline.contains("driver  <- EVENT pickup vendor@c"),
        "{timeline}"
    );
}

#[test]
fn simulate_netsplit_shows_each_side_leave() {
    let (passed, timeline) = simulate("netsplit");
    assert!(passed, "{timeline}");
    assert!(timeline.contains("ann  <- LEAVE cid@c"), "{timeline}");
    assert!(timeline.contains("cid  <- LEAVE ann@a"), "{timeline}");
}

/// A relay for one link that can stop reading from the listening hub's
/// side (the far end of a link that stopped taking its lines), while that
/// hub keeps hearing from it: the dialler's lines pass, whole lines only,
/// and once the dialler's side is gone the relay sends `PING` itself. So
/// the listening hub can only notice the stall by its writes.
struct StallingRelay {
    addr: SocketAddr,
    stalled: Arc<AtomicUsize>,
}

impl StallingRelay {
    fn start(to: SocketAddr) -> StallingRelay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stalled = Arc::new(AtomicUsize::new(0));
        let flag = stalled.clone();
        thread::spawn(move || {
            let Ok((inward, _)) = listener.accept() else {
                return;
            };
            let outward = TcpStream::connect(to).unwrap();
            let writer = Arc::new(std::sync::Mutex::new(outward.try_clone().unwrap()));
            let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
            // The dialler's lines to the hub, whole lines only.
            let (to_hub, from_dialler) = (writer.clone(), inward.try_clone().unwrap());
            thread::spawn(move || {
                use std::io::BufRead;
                let mut lines = std::io::BufReader::new(from_dialler);
                let mut line = String::new();
                while matches!(lines.read_line(&mut line), Ok(n) if n > 0) {
                    if to_hub.lock().unwrap().write_all(line.as_bytes()).is_err() {
                        return;
                    }
                    line.clear();
                }
                // Nothing closes the hub's side: it must find out itself.
            });
            // Once stalled, PINGs of our own, so the hub keeps hearing
            // from the link even after the dialler has given up.
            let (stall, finished) = (flag.clone(), done.clone());
            thread::spawn(move || {
                loop {
                    if stall.load(Ordering::SeqCst) == 1
                        && writer.lock().unwrap().write_all(b"PING\n").is_err()
                    {
                        break;
                    }
                    if Arc::strong_count(&stall) <= 2 {
                        break; // the test is over
                    }
                    thread::sleep(Duration::from_millis(50));
                }
                finished.store(true, Ordering::SeqCst);
            });
            // The hub's lines to the dialler, until stalled: then this
            // side is not read any more.
            let (mut from_hub, mut into) = (outward, inward);
            let mut buf = [0u8; 16 * 1024];
            loop {
                if flag.load(Ordering::SeqCst) == 1 {
                    // Holds the socket, unread, until the pinger is done.
                    while !done.load(Ordering::SeqCst) {
                        thread::sleep(Duration::from_millis(20));
                    }
                    return;
                }
                let _ = from_hub.set_read_timeout(Some(Duration::from_millis(20)));
                match from_hub.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => {
                        if into.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                    Err(e) if tcphub::support::timeouts::is_timeout(&e) => {}
                    Err(_) => return,
                }
            }
        });
        StallingRelay { addr, stalled }
    }

    /// From now on the hub's side of the link is not read.
    fn stall(&self) {
        self.stalled.store(1, Ordering::SeqCst);
    }
}

/// `GET /stats` from a monitor, parsed.
fn stats(monitor: SocketAddr) -> tcphub::support::json::Value {
    let body = tcphub::top::fetch(&monitor.to_string()).expect("the monitor answers");
    tcphub::support::json::parse(&body).expect("JSON")
}

/// The contract (docs/linking.md): a link that cannot take its lines
/// within the link timeout is cut like a slow client, a netsplit, and the
/// hub's own clients are not held up meanwhile.
#[test]
fn a_link_that_stops_taking_its_lines_is_cut_and_local_clients_go_on() {
    let timeout = Duration::from_millis(1000);
    let config = |name: &str| Config {
        name: Some(name.to_string()),
        link_key: Some(KEY.to_string()),
        link_timeout: timeout,
        // Big enough that only the link timeout can cut the link.
        max_pending: 512 << 20,
        ..Config::ephemeral()
    };
    let a = Hub::start(Config {
        link_listen: Some("127.0.0.1:0".into()),
        monitor: Some("127.0.0.1:0".into()),
        ..config("a")
    })
    .unwrap();
    let monitor = a.monitor_addr().unwrap();
    let relay = StallingRelay::start(link_addr(&a));
    let b = Hub::start(Config {
        links: vec![relay.addr.to_string()],
        ..config("b")
    })
    .unwrap();
    let mut ann = client(a.local_addr(), "ann");
    let mut bob = client(b.local_addr(), "bob");
    wait_list(&mut ann, "LIST ann bob@b");
    bob.send("/sub flood");
    skip_to(&mut bob, "OK sub flood");
    bob.send("subscribed");
    skip_to(&mut ann, "MSG bob@b subscribed");

    relay.stall();
    let stalled = Instant::now();
    // A local publisher floods `flood`, which b wants: a's lines to the
    // link pile up in its kernel buffers, then in the hub.
    let (publisher, _) = Peer::join(a.local_addr(), "pub");
    let stop = publisher.stream().try_clone().unwrap();
    let flooder = thread::spawn(move || {
        let mut s = publisher.stream().try_clone().unwrap();
        let lines = format!("/pub flood {}\n", "x".repeat(1000)).repeat(8);
        // Whole lines, blocking, about 8 MB/s (the hub keeps what the
        // link does not take): until the test shuts the socket down.
        while s.write_all(lines.as_bytes()).is_ok() {
            thread::sleep(Duration::from_millis(1));
        }
        drop(publisher);
    });
    // The live view flags the link before it is cut: bytes pending, for
    // half the link timeout or more.
    let mut flagged = false;
    // Meanwhile a local client is answered at once.
    let mut worst_ping = Duration::ZERO;
    let mut left = false;
    while !left {
        let s = stats(monitor);
        let link = s.field("links").items().first().cloned();
        let Some(link) = link else { break };
        if link.field("at_risk").is_true() && link.field("pending_bytes").u64() > Some(0) {
            flagged = true;
        }
        let asked = Instant::now();
        ann.send("/ping");
        let mut line = ann.recv();
        while line != "PONG" {
            if line == "LEAVE bob@b" {
                break;
            }
            line = ann.recv();
        }
        worst_ping = worst_ping.max(asked.elapsed());
        left = line == "LEAVE bob@b";
        assert!(
            stalled.elapsed() < timeout + Duration::from_secs(10),
            "never cut"
        );
        thread::sleep(Duration::from_millis(20));
    }
    if !left {
        skip_to(&mut ann, "LEAVE bob@b");
    }
    let cut = stalled.elapsed();
    let _ = stop.shutdown(Shutdown::Both);
    flooder.join().unwrap();
    assert!(
        cut < timeout + Duration::from_secs(5),
        "the link was cut after {cut:?}"
    );
    assert!(
        worst_ping < Duration::from_millis(750),
        "a local /ping waited {worst_ping:?} during the stall"
    );
    assert!(flagged, "the live view never flagged the link at risk");
    // Cut by its writes (the hub heard PINGs all along), like a slow client.
    let s = stats(monitor);
    assert_eq!(s.field("hub").field("cut_off").u64(), Some(1), "{s:?}");
    assert!(s.field("links").items().is_empty());
    // b, hearing nothing, has split too.
    skip_to(&mut bob, "LEAVE ann@a");
    ann.send("/ping");
    skip_to(&mut ann, "PONG");
    drop(relay);
    b.shutdown();
    a.shutdown();
}

#[test]
fn a_linked_hub_records_its_own_clients_only() {
    let dir = std::env::temp_dir().join(format!("tcphub-link-record-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("a.scenario");
    let a = Hub::start(Config {
        name: Some("a".into()),
        link_listen: Some("127.0.0.1:0".into()),
        link_key: Some(KEY.into()),
        link_timeout: LINK_TIMEOUT,
        record: Some(file.clone()),
        ..Config::ephemeral()
    })
    .expect("hub starts");
    let b = hub("b", false, &[link_addr(&a)]);
    let mut ann = client(a.local_addr(), "ann");
    let mut bob = client(b.local_addr(), "bob");
    wait_list(&mut ann, "LIST ann bob@b");
    bob.send("hi from b");
    skip_to(&mut ann, "MSG bob@b hi from b");
    ann.call("/quit", "BYE");
    a.shutdown();
    let text = std::fs::read_to_string(&file).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(text.contains("c1: expect MSG bob@b hi from b"), "{text}");
    assert!(!text.contains("c2:"), "{text}");
    for link in ["HELLO", "PING", "HUB b", "JOIN bob@b\n"] {
        assert!(
            !text.contains(&format!(": send {link}")),
            "{link} in {text}"
        );
    }
    drop(b);
}
