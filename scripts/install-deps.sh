#!/usr/bin/env bash
# Installs the Debian packages pyhost builds with, only those that are missing.
# Runs `apt-get update` once, and only when something has to be installed.
set -euo pipefail

packages=(
  cmake g++ make pkg-config
  python3 python3-dev          # libpython3.11 and its headers (the embedded runtime)
  pybind11-dev                 # embedding layer
  nlohmann-json3-dev           # the JSON values that cross the API
  libabsl-dev                  # Status/StatusOr, Mutex, strings
  libgtest-dev libgmock-dev    # tests
  libbenchmark-dev             # benchmarks
  clang libclang-rt-14-dev     # fuzz targets (libFuzzer) and the -Wthread-safety ASan+UBSan
                               # build: scripts/fuzz.sh, scripts/sanitize.sh
  clang-format-14              # the code's layout: scripts/check_format.sh
  libpython3.11-testsuite      # CPython's own tests, for scripts/fidelity.sh
  libseccomp-dev               # process isolation's seccomp filter (process/)
  python3-numpy python3-matplotlib  # the data_science policy's packages (process isolation)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q "${missing[@]}"
