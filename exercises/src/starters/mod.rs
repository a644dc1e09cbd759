//! The starting point of every step, as a student gets it: the shape of the
//! solution (types, signatures, what each function must do) with `todo!()`
//! bodies. The handout puts these files where the solutions are
//! (`src/steps/`); here they stay beside them so that `cargo test` can
//! prove every check fails on them (`tests/starters_fail.rs`).

pub mod step1_echo;
pub mod step2_shared_list;
pub mod step3_dispatcher;
pub mod step4_framing;
pub mod step5_commands;
pub mod step6_events;
pub mod step7_slow_consumers;
pub mod step8_udp_vs_tcp;
