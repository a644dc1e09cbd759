//! The vendor: a store that has orders picked up.
//!
//! Every `interval` it publishes a `pickup` event whose payload is a made-up
//! order (JSON). It subscribes to `delivered`, and when one of *its* orders
//! comes back delivered, it says "thank you for delivering `<orderId>`".
//! With `count`, it stops after that many orders, once they are all
//! delivered, or after `wait` if some never are.

use std::time::Duration;

use log::debug;

use super::order::{self, Order, Rng};
use super::{Action, AgentError, Behaviour, Now};
use crate::proto::server_line::ServerLine;

/// The vendor's settings (its `tcphub agent vendor` flags).
#[derive(Debug, Clone)]
pub struct VendorOptions {
    /// Time between two orders; the first goes out one interval after start.
    pub interval: Duration,
    /// Stop after this many orders (and their deliveries); `None`: never.
    pub count: Option<u32>,
    /// With `count`: how long to wait for deliveries after the last order.
    pub wait: Duration,
    /// Seed for the made-up data; `None`: a different run each time.
    pub seed: Option<u64>,
}

/// The vendor's timers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VendorTimer {
    /// Time to publish the next order.
    NextOrder,
    /// The last order went out `wait` ago: stop waiting for deliveries.
    GiveUp,
}

/// A vendor's state: its store, and the orders not yet delivered.
#[derive(Debug)]
pub struct Vendor {
    options: VendorOptions,
    rng: Rng,
    store: String,
    tag: String,
    published: u32,
    /// Order ids published and not yet seen on `delivered`, oldest first.
    outstanding: Vec<String>,
    /// True once `count` orders went out.
    closing: bool,
}

impl Vendor {
    pub fn new(options: VendorOptions) -> Vendor {
        let mut rng = Rng::new(options.seed.unwrap_or_else(Rng::seed_from_clock));
        let store = order::random_store(&mut rng);
        let tag = order::random_tag(&mut rng);
        Vendor {
            options,
            rng,
            store,
            tag,
            published: 0,
            outstanding: Vec::new(),
            closing: false,
        }
    }

    /// Order ids published and not yet delivered.
    pub fn outstanding(&self) -> &[String] {
        &self.outstanding
    }
}

impl Behaviour for Vendor {
    type Timer = VendorTimer;

    fn role(&self) -> &'static str {
        "vendor"
    }

    fn start(&mut self, now: Now, out: &mut Vec<Action<VendorTimer>>) {
        out.push(Action::Send("/sub delivered".into()));
        let how_many = match self.options.count {
            Some(n) => format!("{n} order(s)"),
            None => "until stopped".to_string(),
        };
        out.push(Action::Say(format!(
            "{} is open: an order every {}, {how_many}",
            self.store,
            crate::support::duration::show(self.options.interval)
        )));
        out.push(Action::At(
            now.instant + self.options.interval,
            VendorTimer::NextOrder,
        ));
    }

    fn on_line(&mut self, line: &ServerLine, _now: Now, out: &mut Vec<Action<VendorTimer>>) {
        let ServerLine::Event { topic, payload, .. } = line else {
            return;
        };
        if *topic != "delivered" {
            return;
        }
        let Some(id) = order::json_field(payload, "orderId") else {
            debug!("a delivered event without an orderId: {payload}");
            return;
        };
        let Some(i) = self.outstanding.iter().position(|o| *o == id) else {
            // Another vendor's order, or one we were already thanked for.
            debug!("delivered {id}: not an order of ours waiting");
            return;
        };
        self.outstanding.remove(i);
        out.push(Action::Say(format!("thank you for delivering {id}")));
        if self.closing && self.outstanding.is_empty() {
            out.push(Action::Say(format!(
                "all {} order(s) delivered; closing",
                self.published
            )));
            out.push(Action::Finish);
        }
    }

    fn on_timer(&mut self, timer: VendorTimer, now: Now, out: &mut Vec<Action<VendorTimer>>) {
        match timer {
            VendorTimer::NextOrder => {
                self.published += 1;
                let order = Order::random(&mut self.rng, &self.store, &self.tag, self.published);
                out.push(Action::Send(format!("/pub pickup {}", order.to_json())));
                out.push(Action::Say(format!(
                    "order {} for {} is ready for pickup",
                    order.order_id, order.customer
                )));
                self.outstanding.push(order.order_id);
                if self.options.count.is_some_and(|n| self.published >= n) {
                    self.closing = true;
                    out.push(Action::At(
                        now.instant + self.options.wait,
                        VendorTimer::GiveUp,
                    ));
                } else {
                    out.push(Action::At(
                        now.instant + self.options.interval,
                        VendorTimer::NextOrder,
                    ));
                }
            }
            VendorTimer::GiveUp => {
                if !self.outstanding.is_empty() {
                    out.push(Action::Fail(AgentError::Undelivered {
                        missing: self.outstanding.clone(),
                        waited: self.options.wait,
                    }));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Instant, SystemTime};

    fn now(at: Instant) -> Now {
        Now {
            instant: at,
            wall: SystemTime::UNIX_EPOCH,
        }
    }

    fn vendor(count: Option<u32>) -> Vendor {
        Vendor::new(VendorOptions {
            interval: Duration::from_secs(5),
            count,
            wait: Duration::from_secs(10),
            seed: Some(1),
        })
    }

    fn delivered(payload: &str) -> ServerLine<'_> {
        ServerLine::Event {
            topic: "delivered",
            from: "driver",
            payload,
        }
    }

    /// The payload of the one `/pub pickup` in `actions`.
    fn pickup(actions: &[Action<VendorTimer>]) -> String {
        actions
            .iter()
            .find_map(|a| match a {
                Action::Send(line) => line.strip_prefix("/pub pickup ").map(str::to_string),
                _ => None,
            })
            .expect("a /pub pickup")
    }

    #[test]
    fn subscribes_then_publishes_an_order_every_interval() {
        let t0 = Instant::now();
        let mut v = vendor(None);
        let mut out = Vec::new();
        v.start(now(t0), &mut out);
        assert_eq!(out[0], Action::Send("/sub delivered".into()));
        assert!(out.contains(&Action::At(
            t0 + Duration::from_secs(5),
            VendorTimer::NextOrder
        )));

        out.clear();
        let t1 = t0 + Duration::from_secs(5);
        v.on_timer(VendorTimer::NextOrder, now(t1), &mut out);
        let payload = pickup(&out);
        for field in ["store", "orderId", "customer", "address"] {
            assert!(
                order::json_field(&payload, field).is_some(),
                "{field}: {payload}"
            );
        }
        assert!(out.contains(&Action::At(
            t1 + Duration::from_secs(5),
            VendorTimer::NextOrder
        )));
        assert_eq!(v.outstanding().len(), 1);
    }

    #[test]
    fn thanks_for_its_own_deliveries_only() {
        let t0 = Instant::now();
        let mut v = vendor(None);
        let mut out = Vec::new();
        v.on_timer(VendorTimer::NextOrder, now(t0), &mut out);
        let payload = pickup(&out);
        let id = order::json_field(&payload, "orderId").unwrap();

        out.clear();
        v.on_line(&delivered(r#"{"orderId":"ZZZZ-001"}"#), now(t0), &mut out);
        v.on_line(&delivered("not json"), now(t0), &mut out);
        assert!(out.is_empty(), "{out:?}");

        v.on_line(&delivered(&payload), now(t0), &mut out);
        assert_eq!(
            out,
            vec![Action::Say(format!("thank you for delivering {id}"))]
        );
        // Thanked once, not twice.
        out.clear();
        v.on_line(&delivered(&payload), now(t0), &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn with_count_it_finishes_after_the_last_delivery() {
        let t0 = Instant::now();
        let mut v = vendor(Some(2));
        let mut out = Vec::new();
        v.on_timer(VendorTimer::NextOrder, now(t0), &mut out);
        let first = pickup(&out);
        out.clear();
        v.on_timer(VendorTimer::NextOrder, now(t0), &mut out);
        let second = pickup(&out);
        // No third order: a give-up timer instead.
        assert!(out.contains(&Action::At(
            t0 + Duration::from_secs(10),
            VendorTimer::GiveUp
        )));
        assert!(
            !out.iter()
                .any(|a| matches!(a, Action::At(_, VendorTimer::NextOrder)))
        );

        out.clear();
        v.on_line(&delivered(&second), now(t0), &mut out);
        assert!(!out.contains(&Action::Finish));
        v.on_line(&delivered(&first), now(t0), &mut out);
        assert_eq!(out.last(), Some(&Action::Finish));
    }

    #[test]
    fn with_count_it_gives_up_on_missing_deliveries() {
        let t0 = Instant::now();
        let mut v = vendor(Some(1));
        let mut out = Vec::new();
        v.on_timer(VendorTimer::NextOrder, now(t0), &mut out);
        let id = order::json_field(&pickup(&out), "orderId").unwrap();
        out.clear();
        v.on_timer(VendorTimer::GiveUp, now(t0), &mut out);
        assert_eq!(
            out,
            vec![Action::Fail(AgentError::Undelivered {
                missing: vec![id],
                waited: Duration::from_secs(10)
            })]
        );
    }
}
