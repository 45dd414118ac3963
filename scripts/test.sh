#!/usr/bin/env bash
# Installs what is missing, builds everything and runs the whole test suite: the fuzz
# targets for a bounded time (scripts/fuzz.sh, its own clang build), the fidelity
# subset against python3 (scripts/fidelity.sh --fast), then ctest, whose summary ends
# the output. ctest runs every test, the soak tests labeled "slow" included, each under
# its own timeout (tests/CMakeLists.txt: 120 s, 3000 s for the slow ones).
# Usage: scripts/test.sh [BUILD_DIR]   (default: build; fuzzing: PYHOST_FUZZ_SECONDS, 30)
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"

scripts/install-deps.sh
scripts/check_layers.py
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPYHOST_BUILD_TESTS=ON
cmake --build "$build" -j2
scripts/check_install.sh "$build"
PYHOST_FUZZ_BUILD_DIR="$build-fuzz" scripts/fuzz.sh "${PYHOST_FUZZ_SECONDS:-30}"
scripts/fidelity.sh --fast --fail-unexplained --pyhost "$PWD/$build/cli/pyhost"
ctest --test-dir "$build" --output-on-failure -j2
