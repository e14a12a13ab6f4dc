#!/bin/sh
# The long versions of the hostile-client tests (CI runs short ones): 10^6 mutated control
# requests through the service, a 30-second scribbler, 1000 SIGKILLed clients. Then, as root,
# the 10-minute soak (Scripts/soak.py). Bounded: about 20 minutes on 2 cores.
set -eu
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
swift build --build-tests
SWALE_FUZZ_ROUNDS=1000000 swift test --skip-build --filter ControlFuzzTests
SWALE_HOSTILE_SECONDS=30 swift test --skip-build --filter OperationsTests.testHostileClientDoesNotDisturbOtherPorts
SWALE_KILLS=1000 swift test --skip-build --filter OperationsTests.testKillLoopLeaksNothing
swift test --skip-build --filter MutatedNameFuzzTests
swift build -c release
python3 Scripts/soak.py --minutes "${SOAK_MINUTES:-10}" --no-build
