//! The test of the tests: every check must FAIL on its step's starter.
//!
//! `tests/grade.rs` shows each check passes on the reference solution; this
//! file shows the same check does not pass on code that does nothing (the
//! handed-out starter, all `todo!()`). A check that passed on both would
//! grade nothing. Each run has a deadline, so a starter that blocks counts
//! as failing (it would fail a student's `cargo test` the same way) and
//! cannot hang the suite. Not copied into the handout.

use std::time::{Duration, Instant};

use exercises::checks;
use exercises::starters::*;
use exercises::support::{Outcome, run_bounded};

/// A starter's check gets this long before it counts as failed by timeout.
const LIMIT: Duration = Duration::from_secs(20);

/// Runs `check` against a starter and asserts it does not pass.
fn must_fail(step: &str, check: impl FnOnce() + Send + 'static) {
    let started = Instant::now();
    let outcome = run_bounded(step, LIMIT, check);
    let took = started.elapsed();
    match outcome {
        Outcome::Passed => panic!("{step}: the check PASSED on the starter: it grades nothing"),
        Outcome::Failed(why) => eprintln!("{step}: starter fails in {took:?}: {why}"),
        Outcome::TimedOut => eprintln!("{step}: starter fails by timeout ({LIMIT:?})"),
    }
}

#[test]
fn step1_starter_fails() {
    must_fail("step1", || checks::step1::check(step1_echo::serve));
}

#[test]
fn step2_starter_fails() {
    must_fail("step2", || checks::step2::check(step2_shared_list::serve));
}

#[test]
fn step3_starter_fails() {
    must_fail("step3", || checks::step3::check(step3_dispatcher::serve));
}

#[test]
fn step4_starter_fails() {
    must_fail("step4", || {
        checks::step4::check(step4_framing::LineFramer::new)
    });
}

#[test]
fn step5_starter_fails() {
    must_fail("step5", || {
        checks::step5::check(step5_commands::ChatRouter::new)
    });
}

#[test]
fn step6_starter_fails() {
    must_fail("step6", || {
        checks::step6::check(step6_events::EventRouter::new)
    });
}

#[test]
fn step7_starter_fails() {
    must_fail("step7", || {
        checks::step7::check(step7_slow_consumers::serve)
    });
}

#[test]
fn step8_starter_fails() {
    must_fail("step8", || {
        checks::step8::check(step8_udp_vs_tcp::run_udp, step8_udp_vs_tcp::run_tcp)
    });
}
