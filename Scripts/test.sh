#!/bin/sh
# Sets up a fresh machine and runs every test: unit tests anywhere, integration tests with real
# namespaces, veth pairs and TAP devices when root (they skip with a message otherwise).
# The failures are repeated at the end, so whoever reads only the tail of the log sees them.
set -eu
cd "$(dirname "$0")/.."
Scripts/setup.sh
export PATH="/opt/swift/usr/bin:$PATH"
swift build --build-tests
log=$(mktemp /tmp/swale-test-log.XXXXXX)
status=$(mktemp /tmp/swale-test-status.XXXXXX)
trap 'rm -f "$log" "$status"' EXIT
{ swift test --skip-build 2>&1; echo $? >"$status"; } | tee "$log"
rc=$(cat "$status")
echo "== summary: exit $rc; failures and skips below"
grep -E "error: |' failed \(|skipped" "$log" | grep -v "^Test Suite" || echo "(none)"
exit "$rc"
