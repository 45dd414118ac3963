#!/bin/sh
# Builds pyhost's libFuzzer targets (tests/fuzz) with clang, coverage instrumentation
# and AddressSanitizer, in a build directory of their own, and runs each for a bounded
# time starting from its committed seed corpus (tests/fuzz/corpus/<target>/, read
# only; new inputs go to the build directory). Exits non-zero if a target finds a
# crash, a sanitizer report or a broken property; the input is saved as
# <build>/fuzz-artifacts/<target>-crash-... (replay: <fuzzer binary> <file>).
#
#   scripts/fuzz.sh            # 60 s per target
#   scripts/fuzz.sh 600        # longer
#   PYHOST_FUZZ_BUILD_DIR=/tmp/fuzz scripts/fuzz.sh
set -eu
cd "$(dirname "$0")/.."
seconds=${1:-60}
build=${PYHOST_FUZZ_BUILD_DIR:-build-fuzz}
launcher=""
if command -v ccache >/dev/null 2>&1; then
  launcher="-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache"
fi
# shellcheck disable=SC2086  # $launcher is zero or two words
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DPYHOST_BUILD_FUZZERS=ON \
  -DPYHOST_BUILD_TESTS=OFF -DPYHOST_BUILD_BENCHMARKS=OFF -DPYHOST_BUILD_EXAMPLES=OFF $launcher
cmake --build "$build" -j2 --target serve_line_fuzzer json_python_fuzzer
mkdir -p "$build/fuzz-artifacts"
for target in serve_line json_python; do
  scratch="$build/fuzz-corpus/$target"
  mkdir -p "$scratch"
  echo "== fuzzing $target for ${seconds}s"
  # Leaks are CPython's own at exit, not findings.
  ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 \
    "$build/tests/fuzz/${target}_fuzzer" -max_total_time="$seconds" -timeout=30 \
    -rss_limit_mb=4096 -max_len=8192 -print_final_stats=1 \
    -artifact_prefix="$build/fuzz-artifacts/$target-" "$scratch" "tests/fuzz/corpus/$target"
done
echo "== fuzz.sh: no findings"
