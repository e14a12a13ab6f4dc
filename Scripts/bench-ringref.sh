# Sourced by the app-path benchmarks (bench-app-path.sh, bench-slow-modes.sh) after
# bench-common.sh: builds the C reference (Scripts/bench/ringref.c) and runs it, and Swale, the
# same way for both.
cc -O2 -o "$DIR/ringref" Scripts/bench/ringref.c

# ring BATCH pinned|unpinned FRAMES [relay] -> Mpps. Pinned: producer on CPU 0, consumer on CPU 1.
# With "relay": ringref -r -i (producer -> copier -> consumer, netmap's and Swale's layout), the
# copier on RELAY_CPU (default -1: where the scheduler puts it).
ring() {
    local a=""; [ "$2" = pinned ] && a="-a 0,1"
    timeout 120 "$DIR/ringref" -n "$3" -b "$1" $a ${4:+-r ${RELAY_CPU:--1} -i} | sed -n 's/.*mpps=//p'
}

# swale TX RX BATCH pinned|unpinned FRAMES [SOCKET] -> "Mpps sleeps/1k invol/1k": swale-pktgen
# receives on RX (announcing 02:00:00:00:00:02, so that a switch learns it) and, 0.3 s later, sends
# 60-byte frames to it on TX; pinned: sender on CPU 0, receiver on CPU 1. Also the receiver's
# sleeps and involuntary context switches per 1000 frames: the marks of a slow mode.
swale() {
    local at="" ar="" sock=${6:-$SOCK}; [ "$4" = pinned ] && at="-a 0" && ar="-a 1"
    timeout 120 $B/swale-pktgen --socket "$sock" -i "$2" -f rx -n "$5" --timeout 3 -T 0 --json $ar \
        -s 02:00:00:00:00:02 --announce > "$DIR/rx.out" & local rp=$!
    sleep 0.3
    timeout 120 $B/swale-pktgen --socket "$sock" -i "$1" -f tx -n "$5" -l 60 -b "$3" -T 0 --json $at \
        -d 02:00:00:00:00:02 > /dev/null
    wait $rp
    tail -1 "$DIR/rx.out" | python3 -c '
import json, sys
s = json.load(sys.stdin); k = max(s["packets"], 1) / 1000
print("%.2f %.2f %.2f" % (s["pps"] / 1e6, s["wake"]["sleeps"] / k, s["involuntary_switches"] / k))'
}
