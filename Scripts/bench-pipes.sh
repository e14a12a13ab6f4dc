#!/bin/bash
# Pipe throughput between two processes (swale-pktgen tx on X<1, rx on X>1), 60-byte frames,
# batch 1, 32 and 256; min/median/max of RUNS runs. Not a test: prints numbers.
# Usage: Scripts/bench-pipes.sh [RUNS] [FRAMES]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
N=${2:-20000000}
export PATH="/opt/swift/usr/bin:$PATH"
swift build -c release >/dev/null
B=.build/release
DIR=$(mktemp -d /tmp/swale-bench.XXXXXX)
SOCK=$DIR/swaled.sock
$B/swaled --socket "$SOCK" --log-level warning & SPID=$!
trap 'kill $SPID 2>/dev/null; wait $SPID 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 50); do [ -S "$SOCK" ] && break; sleep 0.1; done
stats() { sort -g | awk '{a[NR]=$1} END {printf "%.2f %.2f %.2f", a[1]/1e6, a[int((NR+1)/2)]/1e6, a[NR]/1e6}'; }
printf "%-8s %-28s\n" "batch" "Mpps min / median / max"
for b in 1 32 256; do
    vals=""
    for r in $(seq "$RUNS"); do
        timeout 120 $B/swale-pktgen --socket "$SOCK" -i "vale0:bench>1" -f rx -n "$N" --timeout 5 -T 0 --json > "$DIR/rx.out" & RP=$!
        sleep 0.3
        timeout 120 $B/swale-pktgen --socket "$SOCK" -i "vale0:bench<1" -f tx -n "$N" -l 60 -b "$b" -T 0 --json > "$DIR/tx.out"
        wait $RP
        vals="$vals $(tail -1 "$DIR/rx.out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pps"])')"
    done
    read -r mn md mx <<< "$(echo $vals | tr ' ' '\n' | stats)"
    printf "%-8s %s / %s / %s\n" "$b" "$mn" "$md" "$mx"
done
