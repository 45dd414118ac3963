#!/usr/bin/env bash
# Installs what is missing, checks the code's form, builds everything and runs the whole
# test suite, each step timed:
#   format    scripts/check_format.sh: every C/C++ file as clang-format-14 makes it
#   layers    scripts/check_layers.py: no folder includes one above it, no cycle
#   build     the g++ build (library, command, tests, benchmarks, examples), warnings
#             as errors (cmake/Warnings.cmake)
#   install   scripts/check_install.sh: the installed tree and a consumer built on it
#   fuzz      the fuzz targets for a bounded time (scripts/fuzz.sh, its own clang build)
#   fidelity  a subset of CPython's tests, pyhost against python3 (scripts/fidelity.sh)
#   sanitize  clang -Wthread-safety -Werror build under ASan+UBSan, its tests run there
#             (scripts/sanitize.sh, its own build directory)
# then prints the steps' durations and runs ctest, whose summary ends the output. ctest
# runs every test, the soak tests labeled "slow" included, each under its own timeout
# (tests/CMakeLists.txt: 120 s, 3000 s for the slow ones).
# Usage: scripts/test.sh [BUILD_DIR]   (default: build; fuzzing: PYHOST_FUZZ_SECONDS, 30)
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"

durations=()
step() {
  local name="$1" start="$SECONDS"
  shift
  echo "== test.sh: $name"
  "$@"
  durations+=("$(printf '  %-9s %5d s' "$name" $((SECONDS - start)))")
}

step deps scripts/install-deps.sh
step format scripts/check_format.sh
step layers scripts/check_layers.py
step configure cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPYHOST_BUILD_TESTS=ON \
  -DPYHOST_WERROR=ON
step build cmake --build "$build" -j2
step install scripts/check_install.sh "$build"
step fuzz env PYHOST_FUZZ_BUILD_DIR="$build-fuzz" scripts/fuzz.sh "${PYHOST_FUZZ_SECONDS:-30}"
step fidelity scripts/fidelity.sh --fast --fail-unexplained --pyhost "$PWD/$build/cli/pyhost"
step sanitize scripts/sanitize.sh "$build-sanitize"

echo "== test.sh: steps before the test suite took $SECONDS s:"
printf '%s\n' "${durations[@]}"
echo "== test.sh: the test suite (ctest, every test, slow ones included)"
ctest --test-dir "$build" --output-on-failure -j2
