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
NATS=${NATS:-$(command -v nats-server || echo /usr/sbin/nats-server)}
if [ ! -x "$NATS" ]; then
    echo "[demo] nats-server is not installed: make nats-server (or apt-get install nats-server)" >&2
    exit 1
fi

tmp=$(mktemp -d)
pids=()
cleanup() {
    # Newest first: clients and hubs stop before the nodes they use.
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        kill "${pids[i]}" 2>/dev/null
    done
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "[demo] $*"; }

# Waits (up to 5 s) for a line matching $2 in file $1; prints its last word.
wait_for() {
    for _ in $(seq 50); do
        local found
        found=$(grep -m1 "$2" "$1" 2>/dev/null | awk '{print $NF}')
        if [ -n "$found" ]; then
            echo "$found"
            return 0
        fi
        sleep 0.1
    done
    echo "[demo] gave up waiting for '$2' in $1" >&2
    return 1
}

# node <i> [client port] [routes]: one nats-server; sets node_pid[i],
# client[i], route[i].
declare -a node_pid client route
node() {
    local i=$1 port=${2:--1} routes=${3:-}
    local log="$tmp/node$i.log"
    : >"$log"
    "$NATS" -a 127.0.0.1 -p "$port" -n "node$i" --cluster_name demo \
        --cluster nats://127.0.0.1:-1 ${routes:+--routes "$routes"} 2>"$log" &
    node_pid[i]=$!
    pids+=("$!")
    client[i]=$(wait_for "$log" "Listening for client connections") || exit 1
    route[i]=$(wait_for "$log" "Listening for route connections") || exit 1
    say "node$i: clients on ${client[i]}, routes on ${route[i]} (pid ${node_pid[i]})"
}

node 0
node 1 -1 "nats://${route[0]}"
node 2 -1 "nats://${route[0]}"
sleep 1 # the routes mesh (node1 and node2 find each other through node0)

# hub <name> <node>: one tcphub serve on a free port; sets hub_addr[name].
declare -A hub_addr
hub() {
    local name=$1 url="nats://${client[$2]}"
    "$BIN" serve --port 0 --name "$name" --nats "$url" >"$tmp/$name.out" \
        2> >(grep --line-buffered -E "WARN|connected to NATS|said BYE" | sed -u "s/^/[hub $name] /" >&2) &
    pids+=("$!")
    hub_addr[$name]=$(wait_for "$tmp/$name.out" "^listening on") || exit 1
    say "hub $name on ${hub_addr[$name]}, told about node$2 only"
}
hub a 0
hub b 1
hub c 2

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
