#!/usr/bin/env bash
# make demo: the hub and the three agents of the lab, talking through it.
#
# Starts a hub on a free port, then a logger and a driver, then a vendor that
# places a few orders and stops once they are delivered. Every process's
# output (stdout and stderr) is prefixed with its name, so the interleaving
# shows who reacted to what. When the vendor is done, the hub is stopped, and
# the driver and logger notice it went away and exit on their own.
# Whatever happens (Ctrl-C included), the trap kills everything left.
set -uo pipefail

BIN=${BIN:-target/debug/tcphub}
ORDERS=${ORDERS:-4}
INTERVAL=${INTERVAL:-2s}
SPEED=${SPEED:-2}
# RECORD=FILE: the hub records the demo into FILE (serve --record).
RECORD=${RECORD:-}

tmp=$(mktemp -d)
pids=()

cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null
    done
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Runs a command in the background with its output prefixed by [name].
start() {
    local name=$1
    shift
    "$@" > >(sed -u "s/^/[$name] /") 2>&1 &
    pids+=("$!")
}

# The hub's stdout goes to a file first: its one line tells the port.
"$BIN" serve --port 0 ${RECORD:+--record "$RECORD"} >"$tmp/hub.out" 2> >(sed -u "s/^/[hub] /" >&2) &
hub=$!
pids+=("$hub")
addr=""
for _ in $(seq 50); do
    addr=$(sed -n 's/^listening on //p' "$tmp/hub.out")
    [ -n "$addr" ] && break
    sleep 0.1
done
if [ -z "$addr" ]; then
    echo "[demo] the hub did not start" >&2
    exit 1
fi
echo "[hub] listening on $addr"

start logger "$BIN" agent logger --addr "$addr"
start driver "$BIN" agent driver --addr "$addr" --speed "$SPEED"
sleep 0.5 # let them subscribe before the first order
echo "[demo] vendor: $ORDERS orders, one every $INTERVAL; driver at speed $SPEED"
"$BIN" agent vendor --addr "$addr" --count "$ORDERS" --interval "$INTERVAL" \
    > >(sed -u "s/^/[vendor] /") 2>&1
status=$?

echo "[demo] vendor finished (exit $status); stopping the hub"
kill "$hub" 2>/dev/null
sleep 1 # the driver and logger notice and exit by themselves
exit "$status"
