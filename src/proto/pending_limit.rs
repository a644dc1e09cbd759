//! When a client's unsent bytes get it cut off: over the hard limit at
//! once, over the soft limit only when it stays there too long.
//!
//! Why two limits (Redis's `client-output-buffer-limit` does the same): a
//! reader that keeps up on average still falls behind during a burst, and a
//! single limit must either be big enough for the burst (then a reader that
//! has stopped may hold that much for ever) or small (then a burst cuts
//! healthy readers off; with 1 MiB, an unpaced 300,000-line burst cut all
//! 100 subscribers of a bench off, issue 17). The soft limit lets a burst
//! pass and still cuts a reader that stays behind; the hard limit bounds
//! memory whatever happens.
//!
//! No clock here: the caller passes the time, as milliseconds from any
//! start it likes, so the rule is a plain function its tests drive.

use std::fmt;

/// `--max-pending` (hard), `--soft-pending` and `--soft-pending-ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingLimits {
    /// More than this many bytes waiting: cut off at once.
    pub hard: usize,
    /// More than this many bytes waiting for `soft_ms` without a break:
    /// cut off.
    pub soft: usize,
    /// How long a client may stay over `soft`.
    pub soft_ms: u64,
}

/// One client's soft-limit clock: since when (ms) it has been over the
/// soft limit without a break.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OverSoft(Option<u64>);

impl OverSoft {
    /// Since when it has been over the soft limit (`None`: it is not).
    pub fn since_ms(&self) -> Option<u64> {
        self.0
    }
}

/// Which limit a client broke; its `Display` is the reason logged and
/// shown in the live view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breach {
    /// More than `--max-pending` bytes would be waiting.
    Hard { limit: usize },
    /// More than `--soft-pending` bytes for `--soft-pending-ms`.
    Soft { limit: usize, held_ms: u64 },
}

impl fmt::Display for Breach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Breach::Hard { limit } => write!(
                f,
                "not reading fast enough: more than {limit} bytes pending (--max-pending)"
            ),
            Breach::Soft { limit, held_ms } => write!(
                f,
                "not reading fast enough: more than {limit} bytes pending for {held_ms} ms (--soft-pending)"
            ),
        }
    }
}

impl PendingLimits {
    /// Only a hard limit (the soft one never applies): what a server that
    /// was given `--max-pending` alone gets.
    pub fn hard_only(hard: usize) -> Self {
        PendingLimits {
            hard,
            soft: usize::MAX,
            soft_ms: u64::MAX,
        }
    }

    /// True if keeping `pending` bytes breaks the hard limit: check before
    /// keeping more, so memory never passes it.
    pub fn over_hard(&self, pending: usize) -> Option<Breach> {
        (pending > self.hard).then_some(Breach::Hard { limit: self.hard })
    }

    /// Whether a client with `pending` bytes waiting at `now_ms` must be
    /// cut off; starts or stops its soft-limit clock `over`. Call it each
    /// time the count changes and now and then while it is behind (a
    /// client over the soft limit that gets nothing new must still be cut
    /// once its time is up).
    pub fn check(&self, over: &mut OverSoft, pending: usize, now_ms: u64) -> Option<Breach> {
        if let Some(breach) = self.over_hard(pending) {
            return Some(breach);
        }
        if pending <= self.soft {
            over.0 = None;
            return None;
        }
        let since = *over.0.get_or_insert(now_ms);
        let held_ms = now_ms.saturating_sub(since);
        (held_ms >= self.soft_ms).then_some(Breach::Soft {
            limit: self.soft,
            held_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: PendingLimits = PendingLimits {
        hard: 1000,
        soft: 100,
        soft_ms: 50,
    };

    #[test]
    fn over_the_hard_limit_is_cut_at_once() {
        let mut over = OverSoft::default();
        assert_eq!(
            LIMITS.check(&mut over, 1000, 0),
            None,
            "at the limit is fine"
        );
        assert_eq!(
            LIMITS.check(&mut over, 1001, 0),
            Some(Breach::Hard { limit: 1000 })
        );
        assert_eq!(LIMITS.over_hard(1001), Some(Breach::Hard { limit: 1000 }));
    }

    #[test]
    fn over_the_soft_limit_is_cut_only_when_held_without_a_break() {
        let mut over = OverSoft::default();
        assert_eq!(LIMITS.check(&mut over, 500, 10), None, "the clock starts");
        assert_eq!(over.since_ms(), Some(10));
        assert_eq!(LIMITS.check(&mut over, 900, 59), None, "49 ms: not yet");
        assert_eq!(
            LIMITS.check(&mut over, 101, 60),
            Some(Breach::Soft {
                limit: 100,
                held_ms: 50
            })
        );
        // A break below the limit starts the clock again.
        let mut over = OverSoft::default();
        LIMITS.check(&mut over, 500, 0);
        assert_eq!(LIMITS.check(&mut over, 100, 40), None);
        assert_eq!(over.since_ms(), None);
        assert_eq!(LIMITS.check(&mut over, 500, 80), None, "held 0 ms");
        assert_eq!(LIMITS.check(&mut over, 500, 129), None, "held 49 ms");
        assert!(LIMITS.check(&mut over, 500, 130).is_some());
    }

    #[test]
    fn hard_only_never_applies_the_soft_limit() {
        let limits = PendingLimits::hard_only(10);
        let mut over = OverSoft::default();
        assert_eq!(limits.check(&mut over, 10, u64::MAX - 1), None);
        assert_eq!(over.since_ms(), None);
        assert!(limits.check(&mut over, 11, 0).is_some());
    }

    #[test]
    fn reasons_name_the_flag() {
        let hard = Breach::Hard { limit: 7 }.to_string();
        assert!(hard.contains("more than 7 bytes pending (--max-pending)"));
        let soft = Breach::Soft {
            limit: 5,
            held_ms: 3,
        };
        assert!(soft.to_string().contains("for 3 ms (--soft-pending)"));
    }
}
