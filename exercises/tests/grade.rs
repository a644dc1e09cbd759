//! Grades the code in `src/steps/`, one test per step:
//! `cargo test --test grade` for all, `cargo test --test grade step4` for
//! one. In the teaching repository `src/steps/` holds the reference
//! solutions, so every test here passes; in a handout it holds your code.
//!
//! Each check runs on its own thread with a deadline, so code that blocks
//! forever fails with "did not finish" instead of hanging `cargo test`.

use std::time::Duration;

use exercises::checks;
use exercises::steps::*;
use exercises::support::{Outcome, run_bounded};

/// The most any one step's check may take (the slowest takes a few seconds).
const LIMIT: Duration = Duration::from_secs(60);

/// Runs one check and turns its outcome into a test result.
fn grade(step: &str, check: impl FnOnce() + Send + 'static) {
    match run_bounded(step, LIMIT, check) {
        Outcome::Passed => {}
        Outcome::Failed(why) => panic!("{step}: {why}"),
        Outcome::TimedOut => panic!("{step}: the check did not finish within {LIMIT:?}"),
    }
}

#[test]
fn step1_echo() {
    grade("step1", || checks::step1::check(step1_echo::serve));
}

#[test]
fn step2_shared_list() {
    grade("step2", || checks::step2::check(step2_shared_list::serve));
}

#[test]
fn step3_dispatcher() {
    grade("step3", || checks::step3::check(step3_dispatcher::serve));
}

#[test]
fn step4_framing() {
    grade("step4", || {
        checks::step4::check(step4_framing::LineFramer::new)
    });
}

#[test]
fn step5_commands() {
    grade("step5", || {
        checks::step5::check(step5_commands::ChatRouter::new)
    });
}

#[test]
fn step6_events() {
    grade("step6", || {
        checks::step6::check(step6_events::EventRouter::new)
    });
}

#[test]
fn step7_slow_consumers() {
    grade("step7", || {
        checks::step7::check(step7_slow_consumers::serve)
    });
}

#[test]
fn step8_udp_vs_tcp() {
    grade("step8", || {
        checks::step8::check(step8_udp_vs_tcp::run_udp, step8_udp_vs_tcp::run_tcp)
    });
}
