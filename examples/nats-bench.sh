#!/usr/bin/env bash
# make nats-bench: what crossing NATS costs, measured with tcphub's own
# bench against release builds on this machine (docs/scale-out.md).
#
# Three runs of each, 1 publisher x 100 subscribers, 64-byte lines:
#   one hub alone        tcphub bench fanout --addr S --pid S
#   across a link        tcphub bench fanout --pub-addr L1 --sub-addr L2
#                        (two hubs linked on loopback, docs/linking.md)
#   across NATS          tcphub bench fanout --pub-addr A --sub-addr B
#                        (hub A on node0, hub B on node1 of a 2-node cluster)
# first unpaced-but-lead-limited for 5 s (deliveries/s), then paced at
# 1,000 lines/s for 5 s (latency p99). The NATS runs pass every process on
# the path (both hubs, both nodes) as --path-pid, so the bench reports each
# one's CPU per delivery. ~2 minutes.
set -uo pipefail

BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/tcphub}
RUNS=${RUNS:-3}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-5}
# shellcheck source=examples/nats-lib.sh
source "$(dirname "$0")/nats-lib.sh"

node 0
node 1 -1 "nats://${route[0]}"
sleep 1
hub s "$BIN"
hub l1 "$BIN" --link-listen 127.0.0.1:0 --link-key bench
links=$(sed -n 's/^links on //p' "$tmp/l1.out")
hub l2 "$BIN" --link "$links" --link-key bench
hub a "$BIN" --nats "nats://${client[0]}"
hub b "$BIN" --nats "nats://${client[1]}"
sleep 1 # a and b hear each other's presence

# field <json> <key>: one number out of the bench's --json line.
field() {
    sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p" <<<"$1"
}

bench() {
    "$BIN" bench fanout --subscribers 100 --duration-s "$SECONDS_PER_RUN" --warmup-s 1 \
        --json "$@" 2>/dev/null | tail -1
}

row() { printf '%-44s %s\n' "$1" "$2"; }

for shape in "lead-limited" "paced 1000/s"; do
    extra=()
    [ "$shape" = "paced 1000/s" ] && extra=(--rate 1000)
    for run in $(seq "$RUNS"); do
        out=$(bench --addr "${hub_addr[s]}" --pid "${hub_pid[s]}" "${extra[@]}")
        row "one hub, $shape, run $run" \
            "$(field "$out" deliveries_per_s) deliveries/s, p99 $(field "$out" latency_p99_us) us, lost $(field "$out" lost), hub $(field "$out" server_ns_per_delivery) ns/delivery"
    done
    for run in $(seq "$RUNS"); do
        out=$(bench --pub-addr "${hub_addr[l1]}" --sub-addr "${hub_addr[l2]}" "${extra[@]}")
        row "across a link, $shape, run $run" \
            "$(field "$out" deliveries_per_s) deliveries/s, p99 $(field "$out" latency_p99_us) us, lost $(field "$out" lost)"
    done
    for run in $(seq "$RUNS"); do
        out=$(bench --pub-addr "${hub_addr[a]}" --sub-addr "${hub_addr[b]}" "${extra[@]}" \
            --path-pid "${hub_pid[a]}" --path-pid "${hub_pid[b]}" \
            --path-pid "${node_pid[0]}" --path-pid "${node_pid[1]}")
        cpu=""
        for who in "hub A:${hub_pid[a]}" "hub B:${hub_pid[b]}" "node0:${node_pid[0]}" "node1:${node_pid[1]}"; do
            ns=$(sed -n "s/.*\"pid\":${who#*:},[^}]*\"ns_per_delivery\":\([0-9.]*\).*/\1/p" <<<"$out")
            cpu+=" ${who%%:*} ${ns%.*} ns"
        done
        row "across NATS, $shape, run $run" \
            "$(field "$out" deliveries_per_s) deliveries/s, p99 $(field "$out" latency_p99_us) us, lost $(field "$out" lost); CPU per delivery:$cpu"
    done
done
echo "machine: $(nproc) cores; load average before the last run: $(cut -d' ' -f1-3 /proc/loadavg)"
