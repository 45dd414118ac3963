#!/usr/bin/env bash
# Fails, listing them, when any tracked C/C++ file differs from what clang-format-14
# makes of it with the repository's .clang-format (Google style, 100 columns).
# scripts/format.sh rewrites them. Usage: scripts/check_format.sh [-v]  (-v: the diffs)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/format_files.sh
verbose="${1:-}"
bad=()
count=0
while IFS= read -r -d '' file; do
  count=$((count + 1))
  if ! "$clang_format" --style=file "$file" | cmp -s - "$file"; then
    bad+=("$file")
    if [ "$verbose" = "-v" ]; then
      "$clang_format" --style=file "$file" | diff -u --label "$file" --label "$file (formatted)" \
        "$file" - || true
    fi
  fi
done < <(format_files)
if [ ${#bad[@]} -ne 0 ]; then
  echo "check_format: ${#bad[@]} of $count files are not formatted ($("$clang_format" --version)):"
  printf '  %s\n' "${bad[@]}"
  echo "check_format: run scripts/format.sh (scripts/check_format.sh -v shows the diffs)"
  exit 1
fi
echo "check_format: all $count files formatted"
