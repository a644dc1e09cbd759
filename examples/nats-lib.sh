# What make nats-demo and make nats-bench share (sourced, not run): the
# nats-server binary, a temp dir, a trap that stops everything started,
# and starting nodes and hubs on ports they pick themselves.
#
# After `node i [port] [routes]`: node_pid[i], client[i] (host:port for
# clients), route[i] (for other nodes' --routes).
# After `hub NAME BIN ARGS...`: hub_addr[NAME], hub_pid[NAME].

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

# hub NAME BIN [serve flags...]: `BIN serve --port 0 --name NAME flags`;
# its warnings (and NATS connects) on stderr, prefixed.
declare -A hub_addr hub_pid
hub() {
    local name=$1 bin=$2
    shift 2
    "$bin" serve --port 0 --name "$name" "$@" >"$tmp/$name.out" \
        2> >(grep --line-buffered -E "WARN|connected to NATS|said BYE" | sed -u "s/^/[hub $name] /" >&2) &
    hub_pid[$name]=$!
    pids+=("$!")
    hub_addr[$name]=$(wait_for "$tmp/$name.out" "^listening on") || exit 1
}
