#!/bin/bash
# Pipe throughput between two processes (swale-pktgen tx on X<1, rx on X>1), 60-byte frames,
# batch 1, 32 and 256; min/median/max of RUNS runs. Not a test: prints numbers.
# Usage: Scripts/bench-pipes.sh [RUNS] [FRAMES]
RUNS=${1:-3}
N=${2:-20000000}
source "$(dirname "$0")/bench-common.sh"
printf "%-8s %-28s\n" "batch" "Mpps min / median / max"
for b in 1 32 256; do
    vals=""
    for r in $(seq "$RUNS"); do
        timeout 120 $B/swale-pktgen --socket "$SOCK" -i "vale0:bench>1" -f rx -n "$N" --timeout 5 -T 0 --json > "$DIR/rx.out" & RP=$!
        sleep 0.3
        timeout 120 $B/swale-pktgen --socket "$SOCK" -i "vale0:bench<1" -f tx -n "$N" -l 60 -b "$b" -T 0 --json > "$DIR/tx.out"
        wait $RP
        vals="$vals $(tail -1 "$DIR/rx.out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pps"] / 1e6)')"
    done
    printf "%-8s %s\n" "$b" "$(echo $vals | tr ' ' '\n' | summary)"
done
