//! The readiness-loop twin (work in progress).
fn main() {}
