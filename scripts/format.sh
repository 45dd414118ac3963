#!/usr/bin/env bash
# Rewrites every tracked C/C++ file (see scripts/format_files.sh) in place with
# clang-format-14 and the repository's .clang-format. scripts/check_format.sh checks.
# Usage: scripts/format.sh [FILE...]   (default: all of them; files given that are
# not C/C++ are skipped: clang-format would rewrite a CMakeLists.txt as C++)
set -euo pipefail
files=()
for f in "$@"; do
  case "$f" in
    *.h | *.hpp | *.inc | *.c | *.cc | *.cpp) files+=("$(realpath "$f")") ;;
    *) echo "format.sh: skipping $f (not C/C++)" >&2 ;;
  esac
done
[ $# -gt 0 ] && [ ${#files[@]} -eq 0 ] && exit 0
cd "$(dirname "$0")/.."
source scripts/format_files.sh
if [ ${#files[@]} -gt 0 ]; then
  "$clang_format" --style=file -i "${files[@]}"
else
  format_files | xargs -0 -r "$clang_format" --style=file -i
fi
