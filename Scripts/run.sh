#!/bin/sh
# Sets up a fresh machine, builds Swale in release mode and runs swaled in the foreground with the
# default configuration (Config/swale.json). Stop it with Ctrl-C or SIGTERM.
set -eu
cd "$(dirname "$0")/.."
Scripts/setup.sh
export PATH="/opt/swift/usr/bin:$PATH"
swift build -c release
exec .build/release/swaled --config Config/swale.json "$@"
