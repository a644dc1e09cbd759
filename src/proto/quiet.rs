//! When a quiet client is cut off: `--line-timeout-ms` and
//! `--idle-timeout-ms`, as arithmetic on ages. No clock here: the server
//! reads its own clock and passes how long ago things happened.
//!
//! Two different silences. A client that starts a line and never ends it
//! (slowloris) holds a place and a buffer for ever: the *line* timeout. A
//! client that sends nothing at all (a laptop whose lid closed) holds a
//! place: the *idle* timeout, off unless asked for. Both servers and both
//! twins that do not block in `read()` with a timeout (the readiness loop,
//! the async twin) ask this module what to wait for and what has expired.

use std::time::Duration;

use crate::proto::client_line::Refusal;
use crate::proto::server_line::ErrorCode;

/// The two timeouts of one client's input (`None`: off).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quiet {
    pub line: Option<Duration>,
    pub idle: Option<Duration>,
}

impl Quiet {
    /// How long until one of them can expire, given how long ago the
    /// unfinished line began (`None`: no line in progress) and how long ago
    /// the last bytes came. `None`: nothing to wait for.
    pub fn wait(&self, line_age: Option<Duration>, idle_age: Duration) -> Option<Duration> {
        let line_left = line_age
            .zip(self.line)
            .map(|(age, limit)| limit.saturating_sub(age));
        let idle_left = self.idle.map(|limit| limit.saturating_sub(idle_age));
        match (line_left, idle_left) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The `ERR` to send (then close) if one of them has expired; the line
    /// timeout first, as the threaded hub's reader does.
    pub fn expired(&self, line_age: Option<Duration>, idle_age: Duration) -> Option<Refusal> {
        if let (Some(age), Some(limit)) = (line_age, self.line)
            && age >= limit
        {
            let text = format!("a line must arrive within {} ms", limit.as_millis());
            return Some(Refusal::new(ErrorCode::LineTimeout, text));
        }
        if let Some(limit) = self.idle.filter(|&limit| idle_age >= limit) {
            let text = format!("nothing received for {} ms", limit.as_millis());
            return Some(Refusal::new(ErrorCode::IdleTimeout, text));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn off_means_nothing_to_wait_for() {
        let q = Quiet::default();
        assert_eq!(q.wait(Some(5 * MS), 5 * MS), None);
        assert_eq!(q.expired(Some(MS * 100_000), MS * 100_000), None);
    }

    #[test]
    fn the_nearer_deadline_is_waited_for_and_the_line_one_wins_a_tie() {
        let q = Quiet {
            line: Some(300 * MS),
            idle: Some(1000 * MS),
        };
        assert_eq!(q.wait(None, 400 * MS), Some(600 * MS));
        assert_eq!(q.wait(Some(100 * MS), 400 * MS), Some(200 * MS));
        assert_eq!(q.expired(Some(299 * MS), 999 * MS), None);
        let line = q.expired(Some(300 * MS), 1000 * MS).expect("expired");
        assert_eq!(line.code, ErrorCode::LineTimeout);
        assert_eq!(line.text, "a line must arrive within 300 ms");
        let idle = q.expired(None, 1000 * MS).expect("expired");
        assert_eq!(idle.code, ErrorCode::IdleTimeout);
        assert_eq!(idle.text, "nothing received for 1000 ms");
    }
}
