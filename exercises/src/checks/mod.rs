//! The grader: one module per step, each with a `check` function that takes
//! your code (a server's entry point, or a constructor for your type) and
//! panics, with a sentence saying what went wrong, if it does not do what
//! the step asks.
//!
//! The same functions grade the reference solutions and the starters in
//! this repository (`tests/grade.rs`, `tests/starters_fail.rs`), and your
//! code in a handout (`tests/grade.rs` again): the check is the contract.

pub mod step1;
pub mod step2;
pub mod step3;
pub mod step4;
pub mod step5;
pub mod step6;
pub mod step7;
pub mod step8;
