#!/bin/bash
# How often Swale and the C ring (Scripts/bench/ringref.c) each fall into a slow mode, run after
# run on the same machine: a ring run, a ring run after 0.3 s idle (the time swale-pktgen's
# receiver waits for its sender), and a Swale run (a pipe: swale-pktgen tx on X<1, rx on X>1),
# RUNS times. A column has a slow mode when its runs fall into two groups whose medians are 2x or
# more apart (split where the groups separate best in log scale); the lower group is "slow". If
# Swale's slow runs are the machine's, the columns show them about equally often and at the same
# depth; if Swale had a slow mode of its own, its column would show more. The in-mode ratio
# (Swale's runs in a mode against the ring's median in that mode) is what Swale does against the
# ring in the same state.
# Not a test: prints numbers. Usage: Scripts/bench-slow-modes.sh [RUNS] [BATCH] [FRAMES]
# MODE=unpinned leaves the processes where the scheduler puts them (default: CPU 0 -> 1).
# SWALE_PATH=switch measures app -> switch -> app instead of the pipe (unicast to a receiver that
# announces its MAC; SWALED_ARGS="--flow-control 2000" for the waiting variant).
RUNS=${1:-60}
BATCH=${2:-1}
N=${3:-1000000}
MODE=${MODE:-pinned}
SWALE_PATH=${SWALE_PATH:-pipe}
case "$SWALE_PATH" in
pipe) tx="vale0:modes<1" rx="vale0:modes>1" ;;
switch) tx="vale0:ma" rx="vale0:mb" ;;
*) echo "SWALE_PATH is pipe or switch, not '$SWALE_PATH'" >&2; exit 2 ;;
esac
source "$(dirname "$0")/bench-common.sh"
source "$(dirname "$0")/bench-ringref.sh"

# With the switch, a fourth column: the C relay (the minimal copying middle party with Swale's
# layout), right after the Swale run; RELAY_CPU places its copier (default: floating), as
# SWALED_ARGS="--forwarding-cpus 1" places the forwarding thread.
printf "%-4s %10s %14s %10s %10s\n" run ring "ring-after-idle" "$SWALE_PATH" relay | tee "$DIR/runs"
for r in $(seq "$RUNS"); do
    x=$(ring "$BATCH" "$MODE" "$N")
    sleep 0.3
    y=$(ring "$BATCH" "$MODE" "$N")
    read -r z _ < <(swale "$tx" "$rx" "$BATCH" "$MODE" "$N")
    w=-
    [ "$SWALE_PATH" = switch ] && w=$(ring "$BATCH" "$MODE" "$N" relay)
    printf "%-4s %10s %14s %10s %10s\n" "$r" "$x" "$y" "$z" "$w" | tee -a "$DIR/runs"
done
python3 - "$DIR/runs" "$MODE" "$BATCH" "$SWALE_PATH" <<'EOF'
import math, statistics, sys
rows = [l.split() for l in open(sys.argv[1]).read().splitlines()[1:]]
path = sys.argv[4]
names = ((1, "ring"), (2, "ring after idle"), (3, path)) + (((4, "relay"),) if path == "switch" else ())
cols = {name: [float(r[i]) for r in rows] for i, name in names}
split = {}
for name, xs in cols.items():
    # The split of the sorted runs that best separates two groups in log scale (Otsu's rule); two
    # modes when the groups' medians are 2x or more apart, the slow one below the split.
    v = sorted(math.log(x) for x in xs)
    def spread(i):
        a, b = v[:i], v[i:]
        return len(a) * len(b) * (statistics.fmean(b) - statistics.fmean(a)) ** 2
    at = max(range(1, len(v)), key=spread, default=0)
    two = 0 < at and math.exp(statistics.median(v[at:]) - statistics.median(v[:at])) >= 2
    cut = math.exp((v[at - 1] + v[at]) / 2) if two else 0  # between the groups, clear of rounding
    slow = [x for x in xs if x < cut]
    fast = [x for x in xs if x >= cut]
    split[name] = (slow, fast)
    med = lambda v: f"{statistics.median(v):.2f}" if v else "-"
    print(f"{sys.argv[2]} batch {sys.argv[3]}, {name}: slow in {len(slow)} of {len(xs)} runs "
          f"(median {med(slow)} Mpps), the others median {med(fast)} Mpps")
if not split[path][0]:
    print(f"{path}: one mode (no two groups of runs 2x apart)")
for i, mode in ((0, "slow"), (1, "fast")):
    p, r = split[path][i], split["ring"][i] + split["ring after idle"][i]
    if p and r:
        m = statistics.median(r)
        print(f"{path} / ring in the {mode} mode: median {statistics.median(p) / m:.2f}, "
              f"lowest {min(p) / m:.2f} (each run against the ring's median in that mode)")
if path == "switch":
    ratios = [z / w for z, w in zip(cols[path], cols["relay"])]
    print(f"switch / relay, run by run: lowest {min(ratios):.2f}, median {statistics.median(ratios):.2f}")
    fast = statistics.median(split["ring"][1] + split["ring after idle"][1])
    for name in (path, "relay"):
        xs = cols[name]
        print(f"{name} against the ring's fast-mode median: lowest {min(xs) / fast:.2f}, "
              f"median {statistics.median(xs) / fast:.2f}, runs below 0.5x: {sum(x < fast / 2 for x in xs)} of {len(xs)}")
EOF
