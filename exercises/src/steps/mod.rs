//! Your code, one file per step.
//!
//! In the teaching repository these files are the reference solutions (the
//! starters are in `src/starters/`). In a student's handout they are the
//! starters: fill in each `todo!()`, then run `cargo test --test grade stepN`.
//! Steps 5 to 7 build on your own earlier steps: step 6 wraps your step 5
//! router, and step 7 uses your step 4 framer and your step 6 router.

pub mod step1_echo;
pub mod step2_shared_list;
pub mod step3_dispatcher;
pub mod step4_framing;
pub mod step5_commands;
pub mod step6_events;
pub mod step7_slow_consumers;
pub mod step8_udp_vs_tcp;
