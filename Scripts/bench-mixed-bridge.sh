#!/bin/bash
# App -> switch -> app on a bridge that also has a kernel port (a TAP), against the same bridge
# without it, with the bridge's forwarding thread placed on the receiver's CPU (swaled
# --forwarding-cpus FW_CPU, default 1; "0,1" leaves it free). A bridge with kernel ports runs its
# thread at nice -10 (forwardingNice); a reader sharing that thread's core gets the core only when
# the thread steps down for it (Bridge.lendPriority). Sender on CPU 0, receiver on CPU 1, as the
# C ring's processes; the receiver counts only the sender's frames (--from), not what the kernel
# sends on the TAP. Prints, per round: the C ring, then for each bridge the receiver's Mpps and the
# share of the frames that arrived (the rest were dropped at its full ring). Not a test: prints
# numbers.
# Usage: Scripts/bench-mixed-bridge.sh [ROUNDS] [FRAMES]; SWALED_ARGS as for the other benchmarks.
ROUNDS=${1:-5}
N=${2:-10000000}
FW_CPU=${FW_CPU:-1}
SWALED_ARGS="--forwarding-cpus $FW_CPU ${SWALED_ARGS:-}"
source "$(dirname "$0")/bench-common.sh"
cc -O2 -o "$DIR/ringref" Scripts/bench/ringref.c
TAP=swmx$$
trap 'ip link del $TAP 2>/dev/null || true; kill $SPID $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$DIR"' EXIT
ctl() { SWALE_SOCKET=$SOCK $B/swalectl "$@" > /dev/null; }

swale() { # -> "Mpps delivered-%"
    timeout 120 $B/swale-pktgen --socket "$SOCK" -i vale0:sb -f rx -n "$N" --timeout 3 -T 0 --json -a 1 \
        -s 02:00:00:00:00:02 --announce --from 02:00:00:00:00:01 > "$DIR/rx.out" & local rp=$!
    sleep 0.3
    timeout 120 $B/swale-pktgen --socket "$SOCK" -i vale0:sa -f tx -n "$N" -l 60 -b 32 -T 0 --json -a 0 \
        -s 02:00:00:00:00:01 -d 02:00:00:00:00:02 > /dev/null
    wait $rp
    tail -1 "$DIR/rx.out" | python3 -c "
import json, sys
s = json.load(sys.stdin)
print('%.2f %.1f' % (s['pps'] / 1e6, 100 * s['packets'] / $N))"
}

ctl bridge add vale0
swale > /dev/null  # the ports exist from here on, and so does the thread
FW=$(grep -l '^swale-vale0$' /proc/$SPID/task/*/comm 2>/dev/null | head -1 | cut -d/ -f5 || true)
[ -n "$FW" ] || { echo "no forwarding thread swale-vale0 in swaled" >&2; exit 1; }
printf "%-6s %8s | %-22s | %-22s | %8s\n" round ring "with a TAP: Mpps, arrived" "apps only: Mpps, arrived" ring
with="" without=""
for r in $(seq "$ROUNDS"); do
    before=$(timeout 60 "$DIR/ringref" -n "$N" -b 32 -a 0,1 | sed 's/.*mpps=//')
    ctl port add vale0 tap "$TAP"
    # The thread is raised while the bridge has a kernel port (swaled needs CAP_SYS_NICE for it).
    [ "$r" = 1 ] && echo "forwarding thread's nice with the TAP: $(awk '{print $19}' /proc/$SPID/task/$FW/stat)"
    read -r m1 d1 < <(swale)
    ctl port del vale0 "$TAP"
    read -r m2 d2 < <(swale)
    after=$(timeout 60 "$DIR/ringref" -n "$N" -b 32 -a 0,1 | sed 's/.*mpps=//')
    printf "%-6s %8.2f | %8.2f %12s | %8.2f %12s | %8.2f\n" "$r" "$before" "$m1" "$d1%" "$m2" "$d2%" "$after"
    with="$with $m1" without="$without $m2"
done
echo "Mpps min/median/max: with a TAP $(echo $with | tr ' ' '\n' | summary); apps only $(echo $without | tr ' ' '\n' | summary)"
