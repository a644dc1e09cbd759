//! Made-up delivery orders: the payload the vendor publishes.
//!
//! The lab needs varied, believable data (a store, an order id, a customer,
//! an address) without pulling in a random-number or JSON crate. So this
//! file has the smallest tools that do the job:
//!
//! - [`Rng`]: xorshift64*, a few lines of shifts and one multiply. Not for
//!   cryptography, plenty for picking a customer's name. Seeded from the
//!   clock, or from `--seed` for a repeatable run.
//! - [`Order::to_json`]: writes a flat JSON object of strings.
//! - [`json_field`]: reads one string field back out of such an object, so
//!   the vendor can recognise the `orderId` in a `delivered` event.

use crate::support::json;
use std::time::{SystemTime, UNIX_EPOCH};

/// A tiny pseudo-random generator (xorshift64*, by George Marsaglia and
/// Sebastiano Vigna). Same seed, same sequence: that is what `--seed` is for.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`. Any seed works, 0 included: the seed is mixed
    /// first (splitmix64), because xorshift stuck at state 0 stays 0 forever.
    pub fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Rng(if z == 0 { 1 } else { z })
    }

    /// A seed that differs from run to run: the clock's nanoseconds mixed
    /// with the process id (two vendors started in the same nanosecond still
    /// differ).
    pub fn seed_from_clock() -> u64 {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        nanos ^ (u64::from(std::process::id()) << 32)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n` must be at least 1). The tiny bias of `%` does
    /// not matter for made-up names.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// One item of a non-empty list.
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items.get(self.below(items.len())).copied().unwrap_or("")
    }
}

const STORES: &[&str] = &[
    "Flowers & Co",
    "Corner Bakery",
    "Green Grocer",
    "Book Nook",
    "Hardware Haven",
    "Tea Leaf",
];
const FIRST_NAMES: &[&str] = &[
    "Ada", "Alan", "Grace", "Linus", "Margaret", "Dennis", "Barbara", "Ken", "Radia", "Edsger",
];
const LAST_NAMES: &[&str] = &[
    "Lovelace", "Turing", "Hopper", "Torvalds", "Hamilton", "Ritchie", "Liskov", "Thompson",
    "Perlman", "Dijkstra",
];
const STREETS: &[&str] = &[
    "Elm St",
    "Oak Ave",
    "Maple Rd",
    "Harbor Blvd",
    "Pine Ln",
    "Station Sq",
];
const CITIES: &[&str] = &[
    "Springfield",
    "Riverton",
    "Lakeside",
    "Hill Valley",
    "Fairview",
];

/// Picks the store a vendor sells for (one per vendor process).
pub fn random_store(rng: &mut Rng) -> String {
    rng.pick(STORES).to_string()
}

/// A short random tag, like `K7QF`, that starts every order id of one vendor
/// process, so ids from two vendors (or two runs) do not collide.
pub fn random_tag(rng: &mut Rng) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    (0..4)
        .map(|_| char::from(ALPHABET[rng.below(ALPHABET.len())]))
        .collect()
}

/// One delivery order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// Who sells it (one store per vendor process).
    pub store: String,
    /// `<tag>-<number>`, unique per vendor run: how the vendor recognises
    /// its own orders when they come back `delivered`.
    pub order_id: String,
    /// Made-up name, for the driver's messages.
    pub customer: String,
    /// Made-up address, for the driver's messages.
    pub address: String,
}

impl Order {
    /// The `number`th order of a vendor whose tag is `tag`, with a random
    /// customer and address.
    pub fn random(rng: &mut Rng, store: &str, tag: &str, number: u32) -> Order {
        let customer = format!("{} {}", rng.pick(FIRST_NAMES), rng.pick(LAST_NAMES));
        let address = format!(
            "{} {}, {}",
            1 + rng.below(199),
            rng.pick(STREETS),
            rng.pick(CITIES)
        );
        Order {
            store: store.to_string(),
            order_id: format!("{tag}-{number:03}"),
            customer,
            address,
        }
    }

    /// The order as a one-line JSON object (a line protocol cannot carry a
    /// newline inside a payload).
    pub fn to_json(&self) -> String {
        format!(
            "{{\"store\":{},\"orderId\":{},\"customer\":{},\"address\":{}}}",
            json::string(&self.store),
            json::string(&self.order_id),
            json::string(&self.customer),
            json::string(&self.address)
        )
    }
}

/// The value of string field `name` in a JSON object, like
/// `{"orderId":"K7QF-001"}` -> `K7QF-001`.
///
/// Reads the payload with the shared JSON reader ([`json::parse`]), so it
/// returns `None` (never panics) on anything a peer might publish that is
/// not a JSON object with that string field.
pub fn json_field(json: &str, name: &str) -> Option<String> {
    json::parse(json)
        .ok()?
        .get(name)?
        .as_str()
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_orders_different_seed_different_orders() {
        let orders = |seed| {
            let mut rng = Rng::new(seed);
            let tag = random_tag(&mut rng);
            (1..=5)
                .map(|n| Order::random(&mut rng, "S", &tag, n))
                .collect::<Vec<_>>()
        };
        assert_eq!(orders(7), orders(7));
        assert_ne!(orders(7), orders(8));
        // Varied: five orders do not all go to the same customer.
        let customers: std::collections::HashSet<_> =
            orders(7).into_iter().map(|o| o.customer).collect();
        assert!(customers.len() > 1);
    }

    #[test]
    fn seed_zero_is_fine() {
        let mut rng = Rng::new(0);
        assert_ne!(rng.next_u64(), rng.next_u64());
    }

    #[test]
    fn order_json_round_trips_through_json_field() {
        let order = Order {
            store: "Joe's \"Best\" \\ Shop".into(),
            order_id: "K7QF-001".into(),
            customer: "Ada Lovelace".into(),
            address: "12 Elm St, Springfield".into(),
        };
        let json = order.to_json();
        assert!(json.starts_with("{\"store\":"), "{json}");
        assert!(!json.contains('\n'));
        assert_eq!(json_field(&json, "orderId").as_deref(), Some("K7QF-001"));
        assert_eq!(json_field(&json, "store"), Some(order.store.clone()));
        assert_eq!(json_field(&json, "address"), Some(order.address));
        assert_eq!(json_field(&json, "missing"), None);
    }

    #[test]
    fn json_field_tolerates_spaces_and_junk() {
        assert_eq!(
            json_field(r#"{ "a" : "orderId", "orderId" : "x-1" }"#, "orderId").as_deref(),
            Some("x-1")
        );
        for junk in [
            "",
            "{",
            "not json",
            r#"{"orderId":"#,
            r#"{"orderId":"open"#,
            r#"{"orderId":7}"#,
        ] {
            assert_eq!(json_field(junk, "orderId"), None, "{junk}");
        }
    }
}
