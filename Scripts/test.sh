#!/bin/sh
# Sets up a fresh machine and runs every check and test: the format check, unit tests anywhere,
# integration tests with real namespaces, veth pairs and TAP devices when root.
# Not root: root-only tests skip with a message. Root: every test must run, so any skipped test makes
# this script fail, naming it. A format finding also fails the script, after the tests have run.
# The failures are repeated at the end, so whoever reads only the tail of the log sees them.
set -eu
cd "$(dirname "$0")/.."
Scripts/setup.sh
export PATH="/opt/swift/usr/bin:$PATH"
if Scripts/format-check.sh; then format_rc=0; else format_rc=1; fi
swift build --build-tests
log=$(mktemp /tmp/swale-test-log.XXXXXX)
status=$(mktemp /tmp/swale-test-status.XXXXXX)
trap 'rm -f "$log" "$status"' EXIT
# (set -e would end the group at a failing swift test before its status is written)
{ rc=0; swift test --skip-build 2>&1 || rc=$?; echo $rc >"$status"; } | tee "$log"
rc=$(cat "$status")
echo "== summary: swift test exit $rc; failures and skips below"
grep -E "error: |' failed \(|skipped" "$log" | grep -v "^Test Suite" || echo "(none)"
if [ "$(id -u)" -eq 0 ]; then
    skipped=$(grep -E "^Test Case '.*' skipped" "$log" | sed -E "s/^Test Case '([^']*)' skipped.*/\1/" | sort -u)
    if [ -n "$skipped" ]; then
        echo "== FAIL: tests skipped while running as root (as root every test must run):"
        echo "$skipped"
        [ "$rc" -ne 0 ] || rc=1
    fi
fi
if [ "$format_rc" -ne 0 ]; then
    echo "== FAIL: Scripts/format-check.sh found unformatted code (see the top of the log)"
    [ "$rc" -ne 0 ] || rc=1
fi
exit "$rc"
