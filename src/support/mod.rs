//! Small helpers the programs share, none of them a step of the data path:
//! JSON, durations like `2s`, and telling a timeout from other IO errors.

pub mod duration;
pub mod json;
pub mod timeouts;
