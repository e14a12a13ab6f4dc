#!/bin/bash
# A netmap program on Swale (Tests/netmap/nmapp.c under LD_PRELOAD=libswale-netmap.so) next to
# swale-pktgen on the same path in the same run: a pipe (X{1 -> X}1) and the switch (app port ->
# app port), 60-byte frames, at most BATCH per sync. Prints Mpps of each and the per-run ratio
# netmap/pktgen; the emulation's cost is 1 - ratio. Not a test: prints numbers.
# Usage: Scripts/bench-netmap.sh [RUNS] [FRAMES]   (BATCH=256 by default)
RUNS=${1:-3}
N=${2:-10000000}
BATCH=${BATCH:-256}
source "$(dirname "$0")/bench-common.sh"
cc -O2 -I Sources/CSwaleABI/include -I Sources/CSwaleNetmap/include -o "$DIR/nmapp" Tests/netmap/nmapp.c
LIB=$PWD/$B/libswale-netmap.so
export SWALE_SOCKET=$SOCK

pktgen() { # NAME_TX NAME_RX -> Mpps at the receiver
    timeout 120 $B/swale-pktgen --socket "$SOCK" -i "$2" -f rx -n "$N" --timeout 5 -T 0 --json > "$DIR/rx.out" & local rp=$!
    sleep 0.3
    timeout 120 $B/swale-pktgen --socket "$SOCK" -i "$1" -f tx -n "$N" -l 60 -b "$BATCH" -T 0 --json > /dev/null
    wait $rp
    tail -1 "$DIR/rx.out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pps"] / 1e6)'
}

netmap() { # NAME_TX NAME_RX -> Mpps at the receiver
    LD_PRELOAD=$LIB timeout 120 "$DIR/nmapp" rx "$2" "$N" 5000 poll nocheck > "$DIR/nrx.out" & local rp=$!
    for _ in $(seq 50); do grep -q ready "$DIR/nrx.out" 2>/dev/null && break; sleep 0.1; done
    LD_PRELOAD=$LIB timeout 120 "$DIR/nmapp" tx "$1" "$N" 60 poll "batch=$BATCH" nocheck > /dev/null
    wait $rp
    sed -n 's/.* \([0-9]*\) pps$/\1/p' "$DIR/nrx.out" | tail -1 | awk '{print $1 / 1e6}'
}

printf "%-8s %-5s %10s %10s %7s\n" path run "pktgen" "netmap" "ratio"
for path in pipe switch; do
    ratios=""
    for r in $(seq "$RUNS"); do
        if [ $path = pipe ]; then t="vale0:bp{1"; x="vale0:bp}1"; else t="vale0:ba"; x="vale0:bb"; fi
        p=$(pktgen "${t/\{/<}" "${x/\}/>}")
        n=$(netmap "$t" "$x")
        ratio=$(python3 -c "print(f'{$n / $p:.2f}')")
        ratios="$ratios $ratio"
        printf "%-8s %-5s %10.2f %10.2f %7s\n" $path $r "$p" "$n" "${ratio}x"
    done
    printf "%-8s %-5s %29s\n" $path "min/median/max ratio" "$(echo $ratios | tr ' ' '\n' | summary)"
done
