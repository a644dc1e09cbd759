//! Build your own hub: eight steps from an echo server to the design of
//! tcphub (reader threads, one channel, one dispatcher that does every write).
//!
//! - [`steps`] is the code you write, one file per step.
//! - [`checks`] grades it: each step's check is a function that takes your
//!   server's entry point (or your type) and drives it like a client would.
//!   `cargo test --test grade` runs every check against [`steps`].
//! - [`shared`] holds the few types and traits the steps and the checks agree
//!   on, so one check can grade anybody's code.
//! - [`support`] is the socket helpers the checks use: every read, write and
//!   connect has a timeout, so a wrong answer fails the test instead of
//!   hanging it.

pub mod checks;
pub mod shared;
pub mod steps;
pub mod support;

// not-in-handout: the next two lines are removed from the student copy.
/// The starting point of every step, as handed out (bodies are `todo!()`).
pub mod starters;
