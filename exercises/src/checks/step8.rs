//! Step 8 check: TCP versus UDP through a relay that misbehaves.

/// The numbered messages both runs send: `#01 hello\n` to `#20 hello\n`.
pub fn messages() -> Vec<String> {
    (1..=20).map(|i| format!("#{i:02} hello\n")).collect()
}

/// A run of your step 8 code: given a seed and the messages, returns what
/// arrived. For UDP, one entry per datagram received; for TCP, one entry
/// per `read()` that returned bytes.
pub type Run = fn(u64, &[String]) -> Vec<Vec<u8>>;

/// Grades the UDP and TCP runs.
///
/// UDP, seeds 1 to 3: every datagram that arrives is exactly one message
/// (boundaries kept), none twice; over the three seeds at least one message
/// is lost and at least once they arrive out of order; and the same seed
/// gives the same result twice (the relay is deterministic).
///
/// TCP, seeds 1 and 2: the bytes that arrive are exactly the bytes sent, in
/// order (nothing lost); and the reads do not line up with the messages: at
/// least one read holds the end of one message and the start of the next
/// (merged), and at least one message is cut between two reads (split).
pub fn check(udp: Run, tcp: Run) {
    let sent = messages();
    let mut lost = 0;
    let mut reordered = 0;
    for seed in 1..=3 {
        let got = udp(seed, &sent);
        let mut index = Vec::new();
        for d in &got {
            let i = sent.iter().position(|m| m.as_bytes() == d.as_slice());
            let Some(i) = i else {
                panic!(
                    "UDP seed {seed}: a datagram is not one whole message: {:?}",
                    d.escape_ascii().to_string()
                );
            };
            assert!(!index.contains(&i), "UDP seed {seed}: message {i} twice");
            index.push(i);
        }
        lost += sent.len() - got.len();
        if index.windows(2).any(|w| w[0] > w[1]) {
            reordered += 1;
        }
        assert_eq!(udp(seed, &sent), got, "UDP seed {seed}: two runs differ");
    }
    assert!(lost > 0, "UDP: the relay never dropped a datagram");
    assert!(reordered > 0, "UDP: the relay never reordered datagrams");

    let stream: Vec<u8> = sent.concat().into_bytes();
    for seed in 1..=2 {
        let reads = tcp(seed, &sent);
        assert!(
            reads.concat() == stream,
            "TCP seed {seed}: the bytes that arrived are not the bytes sent"
        );
        let merged = reads
            .iter()
            .any(|r| r[..r.len().saturating_sub(1)].contains(&b'\n'));
        let split = reads.iter().any(|r| r.last() != Some(&b'\n'));
        assert!(
            merged,
            "TCP seed {seed}: no read held parts of two messages"
        );
        assert!(
            split,
            "TCP seed {seed}: no message was cut between two reads"
        );
    }
}
