# Sourced by check_format.sh and format.sh: the C/C++ files clang-format owns and the
# clang-format it runs. Every tracked *.h, *.cc and *.c except the fuzz corpora (inputs,
# not code); generated sources live in the build directory, never tracked.
clang_format="${CLANG_FORMAT:-clang-format-14}"
if ! command -v "$clang_format" >/dev/null 2>&1; then
  echo "$clang_format not found (Debian: apt-get install clang-format-14; or set CLANG_FORMAT)" >&2
  exit 2
fi
format_files() {
  git ls-files -z -- '*.h' '*.cc' '*.c' ':!:tests/fuzz/corpus/**'
}
