//! Small helpers the programs share: not part of any server's data path.

pub mod duration;
pub mod json;
pub mod server_process;
