# tcphub: the commands a newcomer needs. `make help` lists them.
#
# Tests and benchmarks open thousands of sockets, each a file descriptor,
# and std cannot raise the limit: so the recipes that need it raise it here.
SHELL := /bin/bash
CARGO ?= cargo
NOFILE := ulimit -n 20000 2>/dev/null || ulimit -n $$(ulimit -Hn) 2>/dev/null || true

.PHONY: help run build test fmt lint check

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 12

run: ## start the hub on 127.0.0.1:3000 (RUST_LOG=debug to see every thread)
	$(CARGO) run --release -- serve --host 127.0.0.1 --port 3000

build: ## build the release binary (target/release/tcphub)
	$(CARGO) build --release

test: ## what CI runs: format check, clippy, every test
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(NOFILE); $(CARGO) test --workspace

fmt: ## format the code
	$(CARGO) fmt --all

lint: ## clippy, warnings as errors
	$(CARGO) clippy --workspace --all-targets -- -D warnings

.PHONY: demo simulate net-demo

net-demo: ## two linked hubs in two network namespaces; a cable pulled and put back (root, ~15 s)
	$(CARGO) build --quiet
	bash examples/net-demo.sh

demo: ## the hub + logger, driver and vendor agents together (~12 s, stops by itself)
	$(CARGO) build --quiet
	bash examples/demo.sh

simulate: ## run every built-in scenario against an in-process hub
	$(CARGO) build --quiet
	target/debug/tcphub simulate $$(target/debug/tcphub simulate --list | cut -d' ' -f1)

.PHONY: bench compare

bench: ## quick fan-out bench of the threaded hub (1 x 100, 64-byte lines)
	$(CARGO) build --release
	$(NOFILE); ./target/release/tcphub bench fanout --publishers 1 --subscribers 100 --messages 10000

compare: ## threaded hub vs async and Node twins: docs/benchmarks.md and .svg (~5 min)
	$(CARGO) build --release --bins --examples
	$(NOFILE); ./target/release/examples/compare

.PHONY: debug trace

GDB ?= rust-gdb
PORT ?= 3000
STRACE_SYSCALLS := accept4,recvfrom,writev,futex

debug: ## the hub (PORT=3000) under rust-gdb with the breakpoints of docs/debugging.md
	$(CARGO) build --quiet
	$(GDB) -q -x docs/gdb/walkthrough.gdb --args target/debug/tcphub serve --port $(PORT)

trace: ## the hub (PORT=3000) under strace -f, thread names shown: docs/blocking-io.md
	$(CARGO) build --quiet
	strace -f -Y -tt -e trace=$(STRACE_SYSCALLS) -e signal=none target/debug/tcphub serve --port $(PORT)
