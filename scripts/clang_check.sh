#!/usr/bin/env bash
# Compiles everything (library, command, tests, benchmarks, examples) with clang and
# -Werror, in a build directory of its own: clang's -Wthread-safety checks the absl
# lock annotations, -Wmissing-prototypes flags external functions nobody declared
# (cmake/Warnings.cmake has the full list). Compile only: nothing is run.
# Usage: scripts/clang_check.sh [BUILD_DIR]   (default: build-clang)
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build-clang}"
launcher=()
if command -v ccache >/dev/null 2>&1; then
  launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DPYHOST_WERROR=ON \
  -DPYHOST_BUILD_TESTS=ON -DPYHOST_BUILD_BENCHMARKS=ON -DPYHOST_BUILD_EXAMPLES=ON \
  "${launcher[@]}"
cmake --build "$build" -j2
echo "== clang_check.sh: no warnings"
