//! The `tcphub` binary: parse the command line, hand it to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    tcphub::cli::run(tcphub::cli::Cli::parse())
}
