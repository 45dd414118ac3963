#!/usr/bin/env bash
# Installs a built tree into a temporary prefix, builds tests/consumer (a project of its
# own) against it with find_package(pyhost), and runs it: the installed API is complete
# and usable without Python's or pybind11's headers.
# Usage: scripts/check_install.sh [BUILD_DIR]   (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
prefix="$(mktemp -d)"
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix/install" > /dev/null
if find "$prefix/install/include" -name '*.h' | grep -v '/include/pyhost/' | grep -q .; then
  echo "check_install: headers installed outside include/pyhost/:" >&2
  find "$prefix/install/include" -name '*.h' | grep -v '/include/pyhost/' >&2
  exit 1
fi
cmake -S tests/consumer -B "$prefix/consumer" -DCMAKE_PREFIX_PATH="$prefix/install" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
cmake --build "$prefix/consumer" -j2 > /dev/null
"$prefix/consumer/consumer"
echo "check_install: installed $(find "$prefix/install/include/pyhost" -name '*.h' | wc -l) public headers; the consumer built and ran"
