#!/bin/bash
# Runs one benchmark in another checkout (an earlier commit, say) and in this one, alternately,
# ROUNDS times, so both sets of numbers come from the same session on the same machine: this VM's
# speed drifts by up to 3x between days, so only numbers taken side by side compare.
# Not a test; prints each run's table under a label.
# Usage: Scripts/bench-compare.sh OTHER_CHECKOUT "bench-pipes.sh 3 20000000" [ROUNDS]
#   e.g. git worktree add --detach /tmp/swale-old <commit>; Scripts/bench-compare.sh /tmp/swale-old "bench-switch.sh 3 10000000"
set -euo pipefail
other=$(cd "$1" && pwd)
bench=$2
rounds=${3:-1}
here=$(cd "$(dirname "$0")/.." && pwd)
for r in $(seq "$rounds"); do
    for tree in "$other" "$here"; do
        echo "== round $r: $(git -C "$tree" log -1 --format='%h %s' | cut -c1-70) ($tree)"
        # shellcheck disable=SC2086
        (cd "$tree" && Scripts/$bench)
    done
done
