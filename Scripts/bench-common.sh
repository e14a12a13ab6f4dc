# Sourced by the bench-*.sh scripts: builds in release mode, starts a private swaled on a temporary
# socket, and stops it (and any PIDS the script records) on exit, however the script ends.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
swift build -c release >/dev/null
B=.build/release
DIR=$(mktemp -d /tmp/swale-bench.XXXXXX)
SOCK=$DIR/swaled.sock
PIDS=""
# SWALED_ARGS: extra swaled options, e.g. "--forwarding-nice 0" to compare.
$B/swaled --socket "$SOCK" --log-level warning ${SWALED_ARGS:-} & SPID=$!
trap 'kill $SPID 2>/dev/null || true; for p in $PIDS; do kill $p 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$DIR"' EXIT
for _ in $(seq 50); do [ -S "$SOCK" ] && break; sleep 0.1; done
# min / median / max of the numbers on stdin
summary() { sort -g | awk '{a[NR]=$1} END {printf "%.2f / %.2f / %.2f", a[1], a[int((NR+1)/2)], a[NR]}'; }
