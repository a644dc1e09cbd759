#!/usr/bin/env bash
# How many clients two hubs carry as one chat: 5,000 idle clients on each
# of two hubs (release builds), joined through NATS (MODE=nats, one
# nats-server) or a link (MODE=link); while they are held, a probe on hub b
# asks /list and counts the names. Prints both hubs' bench conns reports,
# the count, and every process's resident memory. Needs `ulimit -n` of
# 20,000+ (the script raises it; root may need to). ~40 s.
set -uo pipefail

BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/tcphub}
MODE=${MODE:-nats}
PER_HUB=${PER_HUB:-5000}
ulimit -n 40000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
# shellcheck source=examples/nats-lib.sh
source "$(dirname "$0")/nats-lib.sh"

max=$((PER_HUB + 10))
if [ "$MODE" = nats ]; then
    node 0
    hub a "$BIN" --max-clients "$max" --nats "nats://${client[0]}"
    hub b "$BIN" --max-clients "$max" --nats "nats://${client[0]}"
else
    hub a "$BIN" --max-clients "$max" --link-listen 127.0.0.1:0 --link-key k
    hub b "$BIN" --max-clients "$max" --link "$(sed -n 's/^links on //p' "$tmp/a.out")" --link-key k
fi
sleep 1
hold=$((PER_HUB / 250 + 10))
conns=()
for h in a b; do
    "$BIN" bench conns --addr "${hub_addr[$h]}" --pid "${hub_pid[$h]}" --count "$PER_HUB" \
        --hold-s "$hold" --timeout-s 120 2>/dev/null >"$tmp/conns-$h.txt" &
    conns+=("$!")
done
# The probe, once both ramps are surely done (the bench holds them).
sleep $((hold - 2))
exec 3<>"/dev/tcp/${hub_addr[b]%:*}/${hub_addr[b]##*:}"
read -r -t 5 welcome <&3
echo "/list" >&3
while read -r -t 10 line <&3; do
    case $line in
    LIST*)
        names=$(wc -w <<<"${line#LIST }")
        from_a=$(tr ' ' '\n' <<<"$line" | grep -c '@a$')
        echo "[demo] $MODE: /list on hub b ($welcome): $names names, $from_a of them @a"
        break
        ;;
    esac
done
exec 3>&-
for h in a b; do
    echo "[demo] hub $h resident: $(grep VmRSS "/proc/${hub_pid[$h]}/status" | awk '{print $2, $3}')"
done
[ "$MODE" = nats ] && echo "[demo] nats-server resident: $(grep VmRSS "/proc/${node_pid[0]}/status" | awk '{print $2, $3}')"
wait "${conns[@]}"
for h in a b; do
    echo "[hub $h] $(grep -E '^welcomed' "$tmp/conns-$h.txt")"
done
