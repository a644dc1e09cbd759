#!/usr/bin/env bash
# make net-demo: two hubs on two "computers" (network namespaces joined by a
# virtual cable, a veth pair), linked; a client on each; then the cable is
# pulled (netsplit) and put back (netjoin). Needs root; stops by itself
# (~15 s) and removes everything it created.
#
# Every address lives inside the two namespaces this script creates
# (10.77.0.1 and 10.77.0.2): the machine's own network is not touched.
set -euo pipefail

BIN=${TCPHUB_BIN:-target/debug/tcphub}
if [ "$(id -u)" != 0 ]; then
    echo "make net-demo needs root (it creates network namespaces): try sudo make net-demo"
    exit 0
fi
command -v ip >/dev/null || { echo "make net-demo needs the ip command (iproute2)"; exit 0; }

A=tcphub-a-$$ B=tcphub-b-$$
VA=tha$$ VB=thb$$
TIMEOUT_MS=2000
OUT=$(mktemp -d)
pids=()

cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    ip netns del "$A" 2>/dev/null || true
    ip netns del "$B" 2>/dev/null || true
    rm -rf "$OUT"
}
trap cleanup EXIT

say() { printf '\n== %s\n' "$*"; }

say "two computers: namespaces $A and $B, a cable between them ($VA <-> $VB)"
ip netns add "$A"
ip netns add "$B"
ip link add "$VA" type veth peer name "$VB"
ip link set "$VA" netns "$A"
ip link set "$VB" netns "$B"
ip -n "$A" addr add 10.77.0.1/24 dev "$VA"
ip -n "$B" addr add 10.77.0.2/24 dev "$VB"
for ns in "$A" "$B"; do ip -n "$ns" link set lo up; done
ip -n "$A" link set "$VA" up
ip -n "$B" link set "$VB" up

say "hub a on 10.77.0.1 (links on :4000), hub b on 10.77.0.2 linking to it"
ip netns exec "$A" "$BIN" serve --host 10.77.0.1 --port 3000 --name a \
    --link-listen 10.77.0.1:4000 --link-key demo --link-timeout-ms $TIMEOUT_MS \
    >"$OUT/a.out" 2>"$OUT/a.log" &
pids+=($!)
sleep 0.5
ip netns exec "$B" "$BIN" serve --host 10.77.0.2 --port 3000 --name b \
    --link 10.77.0.1:4000 --link-key demo --link-timeout-ms $TIMEOUT_MS \
    >"$OUT/b.out" 2>"$OUT/b.log" &
pids+=($!)
sleep 1
sed 's/^/  a: /' "$OUT/a.out"
sed 's/^/  b: /' "$OUT/b.out"

# ann on a, bob on b: each client reads its lines from a timed script.
ann() {
    echo "/nick ann"; sleep 1.5
    echo "hello from computer a"; sleep 1
    echo "/dm bob@b are you there?"; sleep 7
    echo "/list"; sleep 0.5
}
bob() {
    echo "/nick bob"; sleep 1
    echo "/list"; sleep 11
    echo "/list"; sleep 0.5
}
ann | ip netns exec "$A" "$BIN" client 10.77.0.1:3000 | sed -u 's/^/  ann@a sees: /' &
pids+=($!)
sleep 0.2
bob | ip netns exec "$B" "$BIN" client 10.77.0.2:3000 | sed -u 's/^/  bob@b sees: /' &
pids+=($!)

sleep 3
say "pulling the cable (the link goes silent; TCP says nothing)"
ip -n "$B" link set "$VB" down
sleep $(( TIMEOUT_MS / 1000 + 2 ))
say "putting the cable back (b dials a again: a netjoin)"
ip -n "$B" link set "$VB" up
sleep 5
wait "${pids[2]}" "${pids[3]}" 2>/dev/null || true

say "what the hubs logged about the link"
grep -h -E "link|netsplit" "$OUT/a.log" "$OUT/b.log" | sed 's/^/  /' || true
say "done; namespaces removed"
