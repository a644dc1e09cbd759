//! Protocol v1, rule by rule, over real sockets, against every server in
//! the project.
//!
//! The rules live in one place: the library's checks (`src/check/`), the
//! same ones `tcphub check ADDR` runs against anyone's server. This file
//! only instantiates them: the `conformance!` macro makes one `#[test]` per
//! check and server (`threaded::half_close`, `node_twin::pubsub`, ...), and
//! each test starts a fresh server with the limits its check asks for
//! (`common::Launcher`).

mod common;

/// Instantiates every check for one server launcher. A test's name is its
/// check's name with `_` for `-`. With `skip_if`, each test first asks that
/// function whether the server can run here (the Node twin needs `node`)
/// and, if not, prints the reason and returns.
macro_rules! conformance {
    ($name:ident, $start:path) => {
        conformance!($name, $start, skip_if = runs_everywhere);
    };
    ($name:ident, $start:path, skip_if = $missing:path) => {
        mod $name {
            use super::*;
            conformance!(@tests $start, $missing;
                guest_numbers,
                welcome,
                quit,
                eof_and_reset,
                half_close,
                server_full,
                chat_verbatim,
                nick_rules,
                list_sorted,
                dm,
                pubsub,
                topic_rules,
                ping_help_errors,
                line_endings_and_splits,
                line_too_long,
                bad_utf8,
                garbage_isolated,
                no_loss_and_order,
                slow_consumer,
                max_pending,
                line_timeout,
                idle_timeout,
                per_ip_cap,
                max_subs,
                guest_no_reuse,
                slot_free_at_leave,
                dm_needs_text,
                dm_text_after_one_space,
                dm_to_self,
                quit_takes_no_arguments,
                commands_exact,
                spaces_in_names,
                pub_star,
                nick_same_name,
                sub_overlap_once,
                event_empty_payload,
                too_long_at_once,
            );
        }
    };
    (@tests $start:path, $missing:path; $($test:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                if let Some(reason) = $missing() {
                    eprintln!("skipped: {reason}");
                    return;
                }
                common::run_check($start, check_name(stringify!($test)));
            }
        )*

        /// The list above is the library's list, name for name and in
        /// order: a check added to `tcphub::check::CHECKS` needs its line
        /// (`out-of-descriptors` has tests of its own, below).
        #[test]
        fn every_check_has_a_test() {
            let here: Vec<String> = vec![$(stringify!($test).replace('_', "-")),*];
            let library: Vec<&str> = tcphub::check::CHECKS
                .iter()
                .map(|c| c.name)
                .filter(|n| *n != "out-of-descriptors")
                .collect();
            assert_eq!(here, library);
        }
    };
}

/// `half_close` -> `half-close`: a test's name gives its check's name.
fn check_name(test: &str) -> &'static str {
    let name = test.replace('_', "-");
    tcphub::check::CHECKS
        .iter()
        .map(|c| c.name)
        .find(|n| *n == name)
        .unwrap_or_else(|| panic!("no check named {name}"))
}

/// For servers that need nothing beyond this crate.
fn runs_everywhere() -> Option<String> {
    None
}

conformance!(threaded, common::start_threaded);
// The same hub with `--record`: its NOTICE after WELCOME breaks nothing.
conformance!(threaded_recording, common::start_threaded_recording);
conformance!(async_twin, common::start_async);
conformance!(poll_twin, common::start_poll);
conformance!(
    node_twin,
    common::start_node,
    skip_if = common::node_missing
);

// ---- out of descriptors: each server under `ulimit -n 40` -----------------
// (not in the macro: the launcher starts these servers as child processes
// under `sh -c "ulimit -n 40 && exec ..."`, the threaded hub included)

#[test]
fn threaded_out_of_descriptors() {
    common::run_check(common::start_threaded, "out-of-descriptors");
}

#[test]
fn poll_twin_out_of_descriptors() {
    common::run_check(common::start_poll, "out-of-descriptors");
}

/// Node closes the extra connections without a word (libuv's EMFILE
/// trick, tests/limits.rs): not hanging, so it passes.
#[test]
fn node_twin_out_of_descriptors() {
    if let Some(reason) = common::node_missing() {
        eprintln!("skipped: {reason}");
        return;
    }
    common::run_check(common::start_node, "out-of-descriptors");
}

#[test]
fn async_twin_out_of_descriptors() {
    common::run_check(common::start_async, "out-of-descriptors");
}
