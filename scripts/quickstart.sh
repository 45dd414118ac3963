#!/usr/bin/env bash
# Installs what is missing, builds pyhost and runs the example agent loop.
# Usage: scripts/quickstart.sh [BUILD_DIR]   (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"

scripts/install-deps.sh
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$build" -j2 --target pyhost_cli agent_loop
"$build/examples/agent_loop"
