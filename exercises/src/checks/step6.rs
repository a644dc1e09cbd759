//! Step 6 check: events (`/sub`, `/unsub`, `/pub`, `*`).

use crate::checks::step5::{heard, says};
use crate::shared::Router;

/// Grades an event router. `new()` makes a fresh, empty one; it must still
/// do everything step 5's router does.
///
/// Checks subscribing (to a topic and to `*`), that each subscriber gets
/// one `EVENT` per publication (never the publisher), the empty payload's
/// trailing space, payloads kept byte for byte, every refusal, `/unsub`,
/// that `EVENT` carries the current nick, and that leaving drops a client's
/// subscriptions.
pub fn check<R: Router>(new: fn() -> R) {
    let mut r = new();
    for id in 1..=3 {
        r.connect(id);
    }
    says(&mut r, 2, "/ping", &[(2, &["PONG"])]);
    says(&mut r, 1, "/sub pickup", &[(1, &["OK sub pickup"])]);
    says(&mut r, 2, "/sub *", &[(2, &["OK sub *"])]);
    let ev = "EVENT pickup guest-3 A-1";
    says(&mut r, 3, "/pub pickup A-1", &[(1, &[ev]), (2, &[ev])]);
    // The publisher never hears its own event, even when subscribed.
    says(
        &mut r,
        1,
        "/pub pickup x",
        &[(2, &["EVENT pickup guest-1 x"])],
    );
    says(
        &mut r,
        3,
        "/pub other y",
        &[(2, &["EVENT other guest-3 y"])],
    );
    // Subscribed twice (`*` and the topic): still one EVENT.
    says(&mut r, 2, "/sub pickup", &[(2, &["OK sub pickup"])]);
    says(&mut r, 2, "/sub pickup", &[(2, &["OK sub pickup"])]);
    let ev = "EVENT pickup guest-3 ";
    says(&mut r, 3, "/pub pickup", &[(1, &[ev]), (2, &[ev])]);
    let ev = "EVENT a.b-c_9 guest-3  two  spaces ";
    says(&mut r, 3, "/pub a.b-c_9  two  spaces ", &[(2, &[ev])]);

    refusals(&mut r);

    says(&mut r, 2, "/unsub *", &[(2, &["OK unsub *"])]);
    says(
        &mut r,
        2,
        "/unsub never-was",
        &[(2, &["OK unsub never-was"])],
    );
    says(&mut r, 3, "/pub other z", &[]);
    says(&mut r, 1, "/unsub pickup", &[(1, &["OK unsub pickup"])]);
    // The event carries the publisher's nick as it is now.
    r.handle(3, "/nick vendor");
    let ev = "EVENT pickup vendor B-2";
    says(&mut r, 3, "/pub pickup B-2", &[(2, &[ev])]);

    // Leaving drops the subscriptions: with 2 gone (it had `pickup`) and 1
    // unsubscribed, a publication on `pickup` reaches nobody, newcomers
    // included (they subscribed to nothing).
    assert_eq!(heard(r.disconnect(2)).len(), 2, "LEAVE to the two others");
    says(&mut r, 3, "/pub pickup C-3", &[]);
    r.connect(4);
    says(&mut r, 3, "/pub pickup D-4", &[]);
    assert_eq!(heard(r.connect(5)).len(), 4, "WELCOME + 3 JOINs");
    says(&mut r, 5, "/pub pickup E-5", &[]);
}

fn refusals<R: Router>(r: &mut R) {
    for line in ["/sub", "/unsub", "/pub"] {
        says(r, 1, line, &[(1, &["ERR usage"])]);
    }
    let too_long = format!("/sub {}", "t".repeat(65));
    for line in [
        "/sub a b",
        "/sub a/b",
        too_long.as_str(),
        "/pub * x",
        "/pub a/b x",
    ] {
        says(r, 1, line, &[(1, &["ERR bad-topic"])]);
    }
    let max = format!("t{}", "x".repeat(63));
    let ok = format!("OK sub {max}");
    says(r, 1, &format!("/sub {max}"), &[(1, &[ok.as_str()])]);
    says(r, 1, "/SUB x", &[(1, &["ERR unknown-command"])]);
}
