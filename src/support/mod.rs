//! Small helpers the programs share, none of them a step of the data path:
//! JSON (written and read), durations like `2s`, telling a timeout from
//! other IO errors, starting a server process and reading its address, and
//! making network text safe to print on a terminal.

pub mod duration;
pub mod json;
pub mod server_process;
pub mod terminal;
pub mod timeouts;
