# tcphub: the commands a newcomer needs. `make help` lists them.
#
# Tests and benchmarks open thousands of sockets, each a file descriptor,
# and std cannot raise the limit: so the recipes that need it raise it here.
SHELL := /bin/bash
CARGO ?= cargo
NOFILE := ulimit -n 20000 2>/dev/null || ulimit -n $$(ulimit -Hn) 2>/dev/null || true
# Where `make run`, `make debug` and `make trace` listen: `make run PORT=3001`,
# `make run HOST=0.0.0.0` (every interface: other laptops can connect).
HOST ?= 127.0.0.1
PORT ?= 3000

.PHONY: help run build test fmt lint check

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 12

run: ## start the hub on HOST:PORT, 127.0.0.1:3000 by default (RUST_LOG=debug to see every thread)
	$(CARGO) run --release -- serve --host $(HOST) --port $(PORT)

build: ## build the release binary (target/release/tcphub)
	$(CARGO) build --release

test: ## what CI runs: format check, clippy, every test, then the one-minute soak
	$(MAKE) --no-print-directory nats-server
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(NOFILE); $(CARGO) test --workspace
	$(MAKE) --no-print-directory soak-ci

fmt: ## format the code
	$(CARGO) fmt --all

lint: ## clippy, warnings as errors
	$(CARGO) clippy --workspace --all-targets -- -D warnings

.PHONY: nats-server

# The NATS tests (tests/nats.rs) and `make nats-demo` start real nats-server
# processes: the Debian package, installed here when missing.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
nats-server: ## install nats-server (Debian package) if it is missing
	@command -v nats-server >/dev/null || test -x /usr/sbin/nats-server || { \
	  echo "installing nats-server: the NATS tests need the real server"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq nats-server; }

.PHONY: soak soak-ci

# SOAK_SECONDS: how long `make soak` runs (10 minutes by default).
SOAK_SECONDS ?= 600

soak: ## one hub under churn, floods, slow/dead readers and garbage, canaries checking (10 min; SOAK_SECONDS=60)
	$(CARGO) build --release --bins --examples
	$(NOFILE); SOAK_SECONDS=$(SOAK_SECONDS) ./target/release/examples/soak

soak-ci: ## the one-minute soak on the debug build, the last step of `make test` (~70 s)
	$(CARGO) build --bins --examples
	$(NOFILE); SOAK_SECONDS=60 ./target/debug/examples/soak

.PHONY: handout

handout: ## the students' copy of exercises/ (starters, no solutions): target/handout/ + .tar.gz
	bash exercises/make-handout.sh target/handout

.PHONY: demo simulate student-copies net-demo nats-demo nats-bench

nats-bench: nats-server ## one hub alone vs a hop through a link vs a hop through NATS: deliveries/s, p99, CPU of every process (~2 min)
	$(CARGO) build --release --quiet
	bash examples/nats-bench.sh

nats-demo: nats-server ## three hubs on a 3-node NATS cluster, a client on each; a node killed and restarted (~15 s)
	$(CARGO) build --quiet
	bash examples/nats-demo.sh

net-demo: ## two linked hubs in two network namespaces; a cable pulled and put back (root, ~15 s)
	$(CARGO) build --quiet
	bash examples/net-demo.sh

demo: ## the hub + logger, driver and vendor agents together (~12 s, stops by itself)
	$(CARGO) build --quiet
	bash examples/demo.sh

student-copies: ## the exercises' student copies (answers out, blanks in) under target/student-copies/
	$(CARGO) build --quiet
	mkdir -p target/student-copies
	for f in docs/scenarios/exercises/*.scenario; do \
	  target/debug/tcphub simulate --student-copy $$f > target/student-copies/$$(basename $$f); done
	@ls target/student-copies

simulate: ## run every built-in scenario against an in-process hub
	$(CARGO) build --quiet
	target/debug/tcphub simulate $$(target/debug/tcphub simulate --list | cut -d' ' -f1)

.PHONY: bench compare compare-docs

bench: ## quick fan-out bench of the threaded hub (1 x 100, 64-byte lines)
	$(CARGO) build --release
	$(NOFILE); ./target/release/tcphub bench fanout --publishers 1 --subscribers 100 --messages 10000

# COMPARE_FLAGS: e.g. --quick (one short repetition), --reps 5, --full (adds sustained 1x10, 1x1000, 10x100).
compare: ## threaded hub vs async, poll and Node twins vs the relay ceiling, three load shapes: report and chart in target/compare/
	$(CARGO) build --release --bins --examples
	$(NOFILE); ./target/release/examples/compare $(COMPARE_FLAGS)

compare-docs: ## (maintainer) copy target/compare's report into docs/: benchmarks.md, .svg, async-comparison.md figures
	$(CARGO) build --release --example compare
	./target/release/examples/compare --publish target/compare

.PHONY: debug trace

GDB ?= rust-gdb
STRACE_SYSCALLS := accept4,recvfrom,sendmsg,futex

debug: ## the hub (HOST:PORT) under rust-gdb with the breakpoints of docs/debugging.md
	$(CARGO) build --quiet
	$(GDB) -q -x docs/gdb/walkthrough.gdb --args target/debug/tcphub serve --host $(HOST) --port $(PORT)

trace: ## the hub (HOST:PORT) under strace -f, thread names shown: docs/blocking-io.md
	$(CARGO) build --quiet
	strace -f -Y -tt -e trace=$(STRACE_SYSCALLS) -e signal=none target/debug/tcphub serve --host $(HOST) --port $(PORT)
