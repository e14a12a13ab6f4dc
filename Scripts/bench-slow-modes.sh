#!/bin/bash
# How often a pipe and the C ring (Scripts/bench/ringref.c) each fall into a slow mode, run after
# run on the same machine: a ring run, a ring run after 0.3 s idle (the time swale-pktgen's
# receiver waits for its sender), and a pipe run (swale-pktgen tx on X<1, rx on X>1), RUNS times.
# A run is "slow" when it is below half the median of its column. If the pipe's slow runs are the
# machine's, the columns show them about equally often and at the same depth; if the pipe had a
# slow mode of its own, its column would show more. The in-mode ratio (pipe / ring, medians of the
# runs in the same mode) is what the pipe does against the ring when both run in the same state.
# Not a test: prints numbers. Usage: Scripts/bench-slow-modes.sh [RUNS] [BATCH] [FRAMES]
# MODE=unpinned leaves the processes where the scheduler puts them (default: CPU 0 -> 1).
RUNS=${1:-60}
BATCH=${2:-1}
N=${3:-1000000}
MODE=${MODE:-pinned}
source "$(dirname "$0")/bench-common.sh"
cc -O2 -o "$DIR/ringref" Scripts/bench/ringref.c
a="" at="" ar=""
[ "$MODE" = pinned ] && a="-a 0,1" at="-a 0" ar="-a 1"

ring() { timeout 120 "$DIR/ringref" -n "$N" -b "$BATCH" $a | sed -n 's/.*mpps=//p'; }

pipe() {
    timeout 120 $B/swale-pktgen --socket "$SOCK" -i "vale0:modes>1" -f rx -n "$N" --timeout 3 -T 0 --json $ar \
        > "$DIR/rx.out" & local rp=$!
    sleep 0.3
    timeout 120 $B/swale-pktgen --socket "$SOCK" -i "vale0:modes<1" -f tx -n "$N" -l 60 -b "$BATCH" -T 0 --json $at \
        > /dev/null
    wait $rp
    tail -1 "$DIR/rx.out" | python3 -c 'import json, sys; print("%.2f" % (json.load(sys.stdin)["pps"] / 1e6))'
}

printf "%-4s %10s %14s %10s\n" run ring "ring-after-idle" pipe | tee "$DIR/runs"
for r in $(seq "$RUNS"); do
    x=$(ring)
    sleep 0.3
    y=$(ring)
    z=$(pipe)
    printf "%-4s %10s %14s %10s\n" "$r" "$x" "$y" "$z" | tee -a "$DIR/runs"
done
python3 - "$DIR/runs" "$MODE" "$BATCH" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]).read().splitlines()[1:]]
cols = {name: [float(r[i]) for r in rows] for i, name in ((1, "ring"), (2, "ring after idle"), (3, "pipe"))}
split = {}
for name, xs in cols.items():
    cut = statistics.median(xs) / 2
    slow = [x for x in xs if x < cut]
    fast = [x for x in xs if x >= cut]
    split[name] = (slow, fast)
    med = lambda v: f"{statistics.median(v):.2f}" if v else "-"
    print(f"{sys.argv[2]} batch {sys.argv[3]}, {name}: slow in {len(slow)} of {len(xs)} runs "
          f"(median {med(slow)} Mpps), the others median {med(fast)} Mpps")
for i, mode in ((0, "slow"), (1, "fast")):
    p, r = split["pipe"][i], split["ring"][i] + split["ring after idle"][i]
    if p and r:
        print(f"pipe / ring in the {mode} mode (medians): {statistics.median(p) / statistics.median(r):.2f}")
EOF
