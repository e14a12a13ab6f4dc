#!/bin/sh
# Sets up a fresh machine and runs every test: unit tests anywhere, integration tests with real
# namespaces, veth pairs and TAP devices when root (they skip with a message otherwise).
set -eu
cd "$(dirname "$0")/.."
Scripts/setup.sh
export PATH="/opt/swift/usr/bin:$PATH"
swift build --build-tests
swift test --skip-build
