//! `tcphub serve --host`: IPv6 loopback in brackets, as people write it.

mod procs;

use std::time::Duration;

use procs::tcphub;
use tcphub::{Config, Hub};

/// True if this machine can listen on `::1` (some containers have no IPv6).
fn ipv6_loopback() -> bool {
    match std::net::TcpListener::bind("[::1]:0") {
        Ok(_) => true,
        Err(e) => {
            println!("skipped: no IPv6 loopback here ({e})");
            false
        }
    }
}

#[test]
fn host_in_brackets_binds_ipv6_loopback() {
    if !ipv6_loopback() {
        return;
    }
    let hub = Hub::start(Config {
        host: "[::1]".to_string(),
        ..Config::ephemeral()
    })
    .expect("[::1] binds");
    assert!(hub.local_addr().is_ipv6(), "{}", hub.local_addr());
    let socket = std::net::TcpStream::connect(hub.local_addr()).expect("connect");
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut line = String::new();
    use std::io::BufRead;
    std::io::BufReader::new(socket)
        .read_line(&mut line)
        .expect("read");
    assert_eq!(line, "WELCOME guest-1\n");
}

#[test]
fn serve_host_brackets_prints_the_ipv6_address() {
    if !ipv6_loopback() {
        return;
    }
    let serve = tcphub(&["serve", "--host", "[::1]", "--port", "0"]);
    let line = procs::line_containing(&serve.stdout, "listening on");
    assert!(line.starts_with("listening on [::1]:"), "{line}");
    // Loopback is not "every interface": no such note on stderr.
    std::thread::sleep(Duration::from_millis(100));
    let err: Vec<String> = serve.stderr.try_iter().collect();
    assert!(
        !err.iter().any(|l| l.contains("every interface")),
        "{err:?}"
    );
}
