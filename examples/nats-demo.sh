#!/usr/bin/env bash
# make nats-demo: three hubs on a 3-node NATS cluster, a client on each; one
# node is killed mid-chat and started again. About 15 s; stops by itself.
#
# Everything is on 127.0.0.1 with ports the programs pick themselves (read
# back from their output). Hub a is told about node0 only: when node0 dies
# it fails over to a node it learnt from the cluster (INFO connect_urls).
# Every line is prefixed with who printed it, [ann] [bob] [cid] are the
# clients (tcphub client --pretty), [demo] says what the script does.
# Whatever happens (Ctrl-C included), the trap kills everything left.
set -uo pipefail

BIN=${BIN:-${CARGO_TARGET_DIR:-target}/debug/tcphub}
# shellcheck source=examples/nats-lib.sh
source "$(dirname "$0")/nats-lib.sh"

node 0
node 1 -1 "nats://${route[0]}"
node 2 -1 "nats://${route[0]}"
sleep 1 # the routes mesh (node1 and node2 find each other through node0)

# on <name> <node>: hub <name> told about that node only.
on() {
    hub "$1" "$BIN" --nats "nats://${client[$2]}"
    say "hub $1 on ${hub_addr[$1]}, told about node$2 only"
}
on a 0
on b 1
on c 2

# client <nick> <hub> <script>: tcphub client --pretty fed by a timed script.
client() {
    local nick=$1 addr=${hub_addr[$2]} script=$3
    bash -c "$script" | "$BIN" client --pretty --nick "$nick" "$addr" 2>&1 |
        sed -u "s/^/[$nick] /" &
    pids+=("$!")
}
client ann a 'sleep 1.5; echo "hello from hub a"; sleep 5; echo "I am back, through another node"; sleep 4; echo /list; sleep 1; echo /quit'
client bob b 'sleep 2; echo "hi ann, bob on hub b"; sleep 6.5; echo "welcome back"; sleep 2; echo /list; sleep 1; echo /quit'
client cid c 'sleep 2.5; echo "/dm ann@a a secret from cid"; sleep 3; echo "cid still here, node0 or not"; sleep 5; echo /quit'

sleep 3.5
say "killing node0 (kill -9 ${node_pid[0]}): hub a was on it"
kill -9 "${node_pid[0]}"
wait "${node_pid[0]}" 2>/dev/null # reaped quietly: no "Killed" line from bash
sleep 4
say "starting node0 again on ${client[0]}, routed to node1 and node2"
node 0 "${client[0]##*:}" "nats://${route[1]},nats://${route[2]}"
sleep 4.5
say "done"
