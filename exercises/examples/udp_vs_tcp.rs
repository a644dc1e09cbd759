//! Step 8's story: the same 20 numbered messages over UDP and over TCP,
//! through a relay that misbehaves, and what arrived.
//!
//! `cargo run -p exercises --example udp_vs_tcp [SEED]` (default seed 1).
//! It runs your `src/steps/step8_udp_vs_tcp.rs`.

use exercises::checks::step8::messages;
use exercises::steps::step8_udp_vs_tcp::{run_tcp, run_udp};

fn main() {
    let seed = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let sent = messages();
    println!(
        "sent {} messages, each `#NN hello\\n`, seed {seed}\n",
        sent.len()
    );
    udp_story(seed, &sent);
    println!();
    tcp_story(seed, &sent);
}

/// Prints which datagrams arrived, in arrival order, and which were lost.
fn udp_story(seed: u64, sent: &[String]) {
    let got = run_udp(seed, sent);
    let numbers: Vec<String> = got.iter().map(|d| label(d)).collect();
    let lost: Vec<String> = sent
        .iter()
        .filter(|m| !got.iter().any(|d| d == m.as_bytes()))
        .map(|m| label(m.as_bytes()))
        .collect();
    let whole = got.iter().all(|d| sent.iter().any(|m| m.as_bytes() == d));
    println!("UDP: {} datagrams arrived (one recv each):", got.len());
    println!("  arrived: {}", numbers.join(" "));
    println!("  lost:    {}", lost.join(" "));
    println!("  every datagram one whole message: {}", yes(whole));
    println!(
        "  in the order sent: {}",
        yes(got.windows(2).all(|w| w[0] < w[1]))
    );
}

/// Prints each read, and checks the stream against what was sent.
fn tcp_story(seed: u64, sent: &[String]) {
    let reads = run_tcp(seed, sent);
    println!("TCP: {} writes became {} reads:", sent.len(), reads.len());
    for (i, r) in reads.iter().enumerate() {
        println!(
            "  read {:2}: {:>2} bytes  {}",
            i + 1,
            r.len(),
            r.escape_ascii()
        );
    }
    let same = reads.concat() == sent.concat().into_bytes();
    println!("  every byte, in order: {}", yes(same));
    println!(
        "  reads line up with messages: {}",
        yes(reads.len() == sent.len() && reads.iter().zip(sent).all(|(r, m)| r == m.as_bytes()))
    );
}

/// `#07` out of `#07 hello\n`.
fn label(message: &[u8]) -> String {
    String::from_utf8_lossy(message.get(..3).unwrap_or(message)).into_owned()
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}
