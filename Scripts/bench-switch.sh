#!/bin/bash
# App -> switch -> app throughput with swale-pktgen (not a test; prints numbers):
#   unicast between two app ports (the receiver's MAC learned), 60- and 1514-byte frames;
#   broadcast from one port to three others (four ports), 60- and 1514-byte frames;
# min/median/max of RUNS runs, plus the learning table alone at 1M entries.
# VLAN_FILTERING=on: the bridge filters VLANs (every port in VLAN 1, PVID, untagged: the same
# forwarding through the 802.1Q path); VLAN_FILTERING=trunk: also the receivers are trunk ports
# (VLAN 1 leaves tagged), so every frame gets a tag pushed on its way out.
# Usage: Scripts/bench-switch.sh [RUNS] [FRAMES]
RUNS=${1:-3}
N=${2:-20000000}
BATCH=${BATCH:-256}
source "$(dirname "$0")/bench-common.sh"
if [ "${VLAN_FILTERING:-off}" != off ]; then
    SWALE_SOCKET=$SOCK $B/swalectl bridge add vale0 >/dev/null
    SWALE_SOCKET=$SOCK $B/swalectl bridge set vale0 --vlan-filtering on >/dev/null
    if [ "$VLAN_FILTERING" = trunk ]; then
        for p in dst r1 r2 r3; do SWALE_SOCKET=$SOCK $B/swalectl vlan add "vale0:$p" 1 --pvid >/dev/null; done
    fi
fi

run_case() { # name len receivers...
    local name=$1 len=$2; shift 2
    local mpps="" gbps=""
    for r in $(seq "$RUNS"); do
        local rxfiles=() i=0 RXP=""
        for port in "$@"; do
            i=$((i+1))
            timeout 120 $B/swale-pktgen --socket "$SOCK" -i "vale0:$port" -f rx -n "$N" --timeout 3 -T 0 --json \
                --announce -s "02:00:00:00:01:0$i" > "$DIR/rx$i.out" & RXP="$RXP $!"
            rxfiles+=("$DIR/rx$i.out")
        done
        PIDS="$RXP"
        sleep 0.5
        local dst=02:00:00:00:01:01
        [ "$name" = broadcast ] && dst=ff:ff:ff:ff:ff:ff
        timeout 120 $B/swale-pktgen --socket "$SOCK" -i vale0:src -f tx -n "$N" -l "$len" -b "$BATCH" -d "$dst" -T 0 --json > "$DIR/tx.out"
        wait $RXP
        # Delivered rate: the sum of what each receiver measured (first to last frame, as pkt-gen does);
        # the sender runs unthrottled, so frames a receiver could not take are dropped and counted.
        local rate; rate=$(python3 -c "
import json,sys
pps=sum(json.loads(open(f).read().strip().splitlines()[-1])['pps'] for f in sys.argv[1:])
print(pps/1e6)" "${rxfiles[@]}")
        mpps="$mpps $rate"
        gbps="$gbps $(python3 -c "print($rate*1e6*$len*8/1e9)")"
    done
    printf "%-28s %-26s %s\n" "$name ($len B, $# rx)" "$(echo $mpps | tr ' ' '\n' | summary)" "$(echo $gbps | tr ' ' '\n' | summary)"
}
printf "%-28s %-26s %s\n" "case" "Mpps delivered min/med/max" "Gbit/s min/med/max"
run_case unicast 60 dst
run_case unicast 1514 dst
run_case broadcast 60 r1 r2 r3
run_case broadcast 1514 r1 r2 r3
$B/swale-bench --entries 1048576 --lookups 50000000 --runs 3 ${BENCH_VLANS:+--vlans $BENCH_VLANS}
