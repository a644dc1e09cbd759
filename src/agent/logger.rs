//! The logger: writes down every event on every topic, with the time.
//!
//! It subscribes to `*`, so the hub sends it every published event, and
//! prints each as `HH:MM:SS.mmm [topic] from: payload`. The time is UTC
//! (the time of day without a time-zone database, which std does not have).

use std::time::{SystemTime, UNIX_EPOCH};

use super::{Action, Behaviour, Now};
use crate::proto::server_line::ServerLine;

/// The logger has no timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoTimer {}

/// The logger's (empty) state.
#[derive(Debug, Clone, Default)]
pub struct Logger;

/// The UTC time of day of `wall`, as `HH:MM:SS.mmm`.
pub fn time_of_day(wall: SystemTime) -> String {
    let since_epoch = wall.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        since_epoch.subsec_millis()
    )
}

impl Behaviour for Logger {
    type Timer = NoTimer;

    fn role(&self) -> &'static str {
        "logger"
    }

    fn start(&mut self, _now: Now, out: &mut Vec<Action<NoTimer>>) {
        out.push(Action::Send("/sub *".into()));
    }

    fn on_line(&mut self, line: &ServerLine, now: Now, out: &mut Vec<Action<NoTimer>>) {
        if let ServerLine::Event {
            topic,
            from,
            payload,
        } = line
        {
            out.push(Action::Say(format!(
                "{} [{topic}] {from}: {payload}",
                time_of_day(now.wall)
            )));
        }
    }

    fn on_timer(&mut self, timer: NoTimer, _now: Now, _out: &mut Vec<Action<NoTimer>>) {
        match timer {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn prints_every_event_with_the_time() {
        // 1970-01-02 10:20:30.456 UTC
        let wall =
            UNIX_EPOCH + Duration::from_millis(((24 + 10) * 3600 + 20 * 60 + 30) * 1000 + 456);
        let now = Now {
            instant: Instant::now(),
            wall,
        };
        let mut out = Vec::new();
        let mut logger = Logger;
        logger.start(now, &mut out);
        assert_eq!(out, vec![Action::Send("/sub *".into())]);
        out.clear();
        let event = ServerLine::Event {
            topic: "pickup",
            from: "vendor",
            payload: "{}",
        };
        logger.on_line(&event, now, &mut out);
        logger.on_line(&ServerLine::Join { nick: "x" }, now, &mut out);
        assert_eq!(
            out,
            vec![Action::Say("10:20:30.456 [pickup] vendor: {}".into())]
        );
    }
}
