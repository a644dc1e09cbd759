//! The driver: picks orders up and delivers them.
//!
//! It subscribes to `pickup`. For every pickup event it waits 1 s (driving
//! to the store), publishes `in-transit`, waits 3 s more (driving to the
//! customer), and publishes `delivered`, both with the order's payload
//! unchanged. Delays are divided by `speed`. Orders are independent: a
//! second pickup during a delivery gets its own timers, so one driver can
//! carry many orders at once.

use std::time::Duration;

use super::order;
use super::{Action, Behaviour, Now, scaled};
use crate::proto::server_line::ServerLine;

/// Driving from the hub to the store, at speed 1.
pub const TO_STORE: Duration = Duration::from_secs(1);
/// Driving from the store to the customer, at speed 1.
pub const TO_CUSTOMER: Duration = Duration::from_secs(3);

/// The driver's timers, each carrying the order's payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriverTimer {
    /// At the store: publish `in-transit`.
    InTransit(String),
    /// At the customer's: publish `delivered`.
    Delivered(String),
}

/// A driver has no state but its speed: every order lives in its timers.
#[derive(Debug, Clone)]
pub struct Driver {
    speed: f64,
}

impl Driver {
    /// A driver whose delays are divided by `speed` (1.0: 1 s and 3 s).
    pub fn new(speed: f64) -> Driver {
        Driver { speed }
    }
}

/// The order id in a payload, for messages; payloads from others may lack one.
fn order_id(payload: &str) -> String {
    order::json_field(payload, "orderId").unwrap_or_else(|| "(an order without orderId)".into())
}

impl Behaviour for Driver {
    type Timer = DriverTimer;

    fn role(&self) -> &'static str {
        "driver"
    }

    fn start(&mut self, _now: Now, out: &mut Vec<Action<DriverTimer>>) {
        out.push(Action::Send("/sub pickup".into()));
    }

    fn on_line(&mut self, line: &ServerLine, now: Now, out: &mut Vec<Action<DriverTimer>>) {
        let ServerLine::Event {
            topic,
            from,
            payload,
        } = line
        else {
            return;
        };
        if *topic != "pickup" {
            return;
        }
        out.push(Action::Say(format!(
            "pickup {} from {from}: driving to the store",
            order_id(payload)
        )));
        out.push(Action::At(
            now.instant + scaled(TO_STORE, self.speed),
            DriverTimer::InTransit(payload.to_string()),
        ));
    }

    fn on_timer(&mut self, timer: DriverTimer, now: Now, out: &mut Vec<Action<DriverTimer>>) {
        match timer {
            DriverTimer::InTransit(payload) => {
                out.push(Action::Send(format!("/pub in-transit {payload}")));
                out.push(Action::Say(format!(
                    "in transit: {} to {}",
                    order_id(&payload),
                    order::json_field(&payload, "address").unwrap_or_default()
                )));
                out.push(Action::At(
                    now.instant + scaled(TO_CUSTOMER, self.speed),
                    DriverTimer::Delivered(payload),
                ));
            }
            DriverTimer::Delivered(payload) => {
                out.push(Action::Send(format!("/pub delivered {payload}")));
                out.push(Action::Say(format!("delivered: {}", order_id(&payload))));
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

    #[test]
    fn a_pickup_becomes_in_transit_after_1s_then_delivered_after_3s_more() {
        let payload = r#"{"orderId":"K7QF-001","address":"1 Elm St"}"#;
        let t0 = Instant::now();
        let mut d = Driver::new(1.0);
        let mut out = Vec::new();
        d.start(now(t0), &mut out);
        assert_eq!(out, vec![Action::Send("/sub pickup".into())]);

        out.clear();
        let pickup = ServerLine::Event {
            topic: "pickup",
            from: "vendor",
            payload,
        };
        d.on_line(&pickup, now(t0), &mut out);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(
            out[1],
            Action::At(t1, DriverTimer::InTransit(payload.into()))
        );

        out.clear();
        d.on_timer(DriverTimer::InTransit(payload.into()), now(t1), &mut out);
        assert_eq!(out[0], Action::Send(format!("/pub in-transit {payload}")));
        let t2 = t1 + Duration::from_secs(3);
        assert_eq!(
            out[2],
            Action::At(t2, DriverTimer::Delivered(payload.into()))
        );

        out.clear();
        d.on_timer(DriverTimer::Delivered(payload.into()), now(t2), &mut out);
        assert_eq!(out[0], Action::Send(format!("/pub delivered {payload}")));
    }

    #[test]
    fn speed_divides_the_delays_and_other_topics_are_ignored() {
        let t0 = Instant::now();
        let mut d = Driver::new(10.0);
        let mut out = Vec::new();
        let event = |topic: &'static str| ServerLine::Event {
            topic,
            from: "x",
            payload: "junk",
        };
        d.on_line(&event("delivered"), now(t0), &mut out);
        d.on_line(&ServerLine::Pong, now(t0), &mut out);
        assert!(out.is_empty());
        d.on_line(&event("pickup"), now(t0), &mut out);
        assert_eq!(
            out[1],
            Action::At(
                t0 + Duration::from_millis(100),
                DriverTimer::InTransit("junk".into())
            )
        );
    }
}
