//! Runs your step 7 hub on a port, so any client can talk to it and
//! `tcphub check` can grade it like any other protocol v1 server:
//!
//! ```sh
//! cargo run -p exercises --example serve_step7 -- 3001
//! tcphub check 127.0.0.1:3001 --write-timeout-ms 2000
//! ```
//!
//! It prints `listening on <addr>` once ready, like `tcphub serve`. The
//! argument is the port (default 3001; 0 picks a free one). The write
//! timeout is 2 s, the hub's default.

use std::net::TcpListener;
use std::process::ExitCode;
use std::time::Duration;

use exercises::steps::step7_slow_consumers::serve;

fn main() -> ExitCode {
    let port = match std::env::args().nth(1).map(|p| p.parse::<u16>()) {
        None => 3001,
        Some(Ok(port)) => port,
        Some(Err(_)) => {
            eprintln!("serve_step7: the argument is a port number (0 to 65535)");
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind(("127.0.0.1", port)) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("serve_step7: cannot listen on 127.0.0.1:{port}: {e}");
            return ExitCode::from(2);
        }
    };
    match listener.local_addr() {
        Ok(addr) => println!("listening on {addr}"),
        Err(e) => {
            eprintln!("serve_step7: {e}");
            return ExitCode::from(2);
        }
    }
    serve(listener, Duration::from_secs(2));
    ExitCode::SUCCESS
}
