//! More tests of the tests: code that is *almost* right, with one typical
//! student mistake each, must fail the check too. `starters_fail.rs` shows a
//! check rejects code that does nothing; this shows it rejects the mistake
//! the step is about (no thread per client, a buffer without a bound, no
//! write timeout, ...). Each mutant is the reference solution with one thing
//! changed. Not copied into the handout.

use std::net::TcpListener;
use std::time::Duration;

use exercises::checks;
use exercises::shared::{ClientId, Frame, Framer, Out, Router};
use exercises::steps::*;
use exercises::support::{Outcome, run_bounded};

/// A mutant's check gets this long before it counts as failed by timeout.
const LIMIT: Duration = Duration::from_secs(30);

/// Runs `check` against a mutant and asserts it does not pass.
fn must_fail(mutant: &str, check: impl FnOnce() + Send + 'static) {
    match run_bounded(mutant, LIMIT, check) {
        Outcome::Passed => panic!("{mutant}: the check PASSED on this mistake"),
        Outcome::Failed(why) => eprintln!("{mutant}: caught: {why}"),
        Outcome::TimedOut => eprintln!("{mutant}: caught by timeout ({LIMIT:?})"),
    }
}

/// Step 1 without a thread per client: one connection at a time.
fn echo_one_at_a_time(listener: TcpListener) {
    for stream in listener.incoming().flatten() {
        let _ = step1_echo::echo(stream);
    }
}

#[test]
fn step1_catches_one_client_at_a_time() {
    must_fail("step1-one-at-a-time", || {
        checks::step1::check(echo_one_at_a_time)
    });
}

/// Step 4 with no bound: everything is kept until the `\n`, and a long line
/// is only reported then.
struct Unbounded(step4_framing::LineFramer);

impl Framer for Unbounded {
    fn feed(&mut self, bytes: &[u8]) -> Vec<Frame> {
        let max = checks::step4::MAX_LINE;
        self.0
            .feed(bytes)
            .into_iter()
            .map(|f| match f {
                Frame::Line(l) if l.len() > max => Frame::TooLong,
                other => other,
            })
            .collect()
    }
    fn buffered(&self) -> usize {
        self.0.buffered()
    }
}

/// Step 4 that forgets the unfinished tail between reads.
struct ForgetsTail(step4_framing::LineFramer, usize);

impl Framer for ForgetsTail {
    fn feed(&mut self, bytes: &[u8]) -> Vec<Frame> {
        let frames = self.0.feed(bytes);
        self.0 = step4_framing::LineFramer::new(self.1);
        frames
    }
    fn buffered(&self) -> usize {
        0
    }
}

/// Step 4 that keeps the `\r` of `\r\n`.
struct KeepsCr(step4_framing::LineFramer);

impl Framer for KeepsCr {
    fn feed(&mut self, bytes: &[u8]) -> Vec<Frame> {
        // Hide every `\r` from the real framer, then put it back.
        let hidden: Vec<u8> = bytes
            .iter()
            .map(|&b| if b == b'\r' { 0x01 } else { b })
            .collect();
        self.0
            .feed(&hidden)
            .into_iter()
            .map(|f| match f {
                Frame::Line(l) => Frame::Line(
                    l.into_iter()
                        .map(|b| if b == 0x01 { b'\r' } else { b })
                        .collect(),
                ),
                other => other,
            })
            .collect()
    }
    fn buffered(&self) -> usize {
        self.0.buffered()
    }
}

#[test]
fn step4_catches_an_unbounded_buffer() {
    must_fail("step4-unbounded", || {
        checks::step4::check(|_| Unbounded(step4_framing::LineFramer::new(1 << 40)))
    });
}

#[test]
fn step4_catches_a_forgotten_tail() {
    must_fail("step4-forgets-tail", || {
        checks::step4::check(|max| ForgetsTail(step4_framing::LineFramer::new(max), max))
    });
}

#[test]
fn step4_catches_a_kept_cr() {
    must_fail("step4-keeps-cr", || {
        checks::step4::check(|max| KeepsCr(step4_framing::LineFramer::new(max)))
    });
}

/// Wraps a router and rewrites what it says, to make a one-mistake mutant.
struct Twisted<R> {
    inner: R,
    twist: fn(ClientId, &str, Vec<Out>) -> Vec<Out>,
}

impl<R: Router> Router for Twisted<R> {
    fn connect(&mut self, id: ClientId) -> Vec<Out> {
        self.inner.connect(id)
    }
    fn handle(&mut self, id: ClientId, line: &str) -> Vec<Out> {
        let outs = self.inner.handle(id, line);
        (self.twist)(id, line, outs)
    }
    fn disconnect(&mut self, id: ClientId) -> Vec<Out> {
        self.inner.disconnect(id)
    }
    fn nick(&self, id: ClientId) -> Option<&str> {
        self.inner.nick(id)
    }
}

/// Chat also goes back to its sender (Node: forgetting the
/// `if (s !== socket)` in the broadcast loop).
fn echoes_chat(id: ClientId, line: &str, mut outs: Vec<Out>) -> Vec<Out> {
    if let Some(Out::Line(_, msg)) = outs.first().cloned()
        && !line.starts_with('/')
    {
        outs.push(Out::Line(id, msg));
    }
    outs
}

/// `/quit` says `BYE` but the others never hear `LEAVE`.
fn no_leave(_id: ClientId, _line: &str, outs: Vec<Out>) -> Vec<Out> {
    outs.into_iter()
        .filter(|o| !matches!(o, Out::Line(_, l) if l.starts_with("LEAVE ")))
        .collect()
}

/// The publisher gets its own `EVENT` too.
fn hears_itself(id: ClientId, line: &str, mut outs: Vec<Out>) -> Vec<Out> {
    if line.starts_with("/pub ")
        && let Some(Out::Line(_, ev)) = outs.first().cloned()
    {
        outs.push(Out::Line(id, ev));
    }
    outs
}

#[test]
fn step5_catches_chat_echoed_to_its_sender() {
    must_fail("step5-echoes-chat", || {
        checks::step5::check(|| Twisted {
            inner: step5_commands::ChatRouter::new(),
            twist: echoes_chat,
        })
    });
}

#[test]
fn step5_catches_a_quit_without_leave() {
    must_fail("step5-no-leave", || {
        checks::step5::check(|| Twisted {
            inner: step5_commands::ChatRouter::new(),
            twist: no_leave,
        })
    });
}

#[test]
fn step6_catches_a_publisher_hearing_itself() {
    must_fail("step6-hears-itself", || {
        checks::step6::check(|| Twisted {
            inner: step6_events::EventRouter::new(),
            twist: hears_itself,
        })
    });
}

/// Step 7 without a (useful) write timeout: an hour.
fn hub_without_timeout(listener: TcpListener, _timeout: Duration) {
    step7_slow_consumers::serve(listener, Duration::from_secs(3600));
}

#[test]
fn step7_catches_a_hub_without_write_timeout() {
    must_fail("step7-no-timeout", || {
        checks::step7::check(hub_without_timeout)
    });
}

/// A perfect network: every datagram arrives, in order.
fn udp_perfect(_seed: u64, messages: &[String]) -> Vec<Vec<u8>> {
    messages.iter().map(|m| m.as_bytes().to_vec()).collect()
}

/// TCP as people first imagine it: one read per write.
fn tcp_one_read_per_write(_seed: u64, messages: &[String]) -> Vec<Vec<u8>> {
    udp_perfect(0, messages)
}

#[test]
fn step8_catches_a_network_that_never_misbehaves() {
    must_fail("step8-perfect-udp", || {
        checks::step8::check(udp_perfect, step8_udp_vs_tcp::run_tcp)
    });
    must_fail("step8-tcp-keeps-boundaries", || {
        checks::step8::check(step8_udp_vs_tcp::run_udp, tcp_one_read_per_write)
    });
}
