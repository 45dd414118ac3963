# Warnings for everything pyhost builds (the library, the command, tests, benchmarks,
# examples, fuzzers). Included once from the top CMakeLists.txt before any target is
# made: add_compile_options reaches every target of that directory and below.
# Third-party headers (pybind11, abseil, GoogleTest, CPython) come in as system
# includes, so their warnings stay out of this.
#
#   PYHOST_WERROR=ON   warnings are errors (scripts/test.sh, scripts/sanitize.sh)
#
# Both compilers: -Wall -Wextra, less -Wmissing-field-initializers (designated and
# partial aggregate initializers of options structs are the intended style), and
# a function with external linkage but no prior declaration is flagged: it belongs in
# an anonymous namespace (or static) or is declared in its header. gcc calls that
# -Wmissing-declarations in C++; clang calls it -Wmissing-prototypes (C and C++).
# clang only: -Wthread-safety checks the ABSL_GUARDED_BY / ABSL_EXCLUSIVE_LOCKS_REQUIRED
# / ABSL_LOCKS_EXCLUDED annotations against every use of the absl::Mutex they name
# (gcc ignores the annotations).
option(PYHOST_WERROR "Treat compiler warnings as errors" OFF)

add_compile_options(-Wall -Wextra -Wno-missing-field-initializers)
if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  add_compile_options(-Wthread-safety -Wmissing-prototypes)
else()
  add_compile_options(-Wmissing-declarations $<$<COMPILE_LANGUAGE:C>:-Wmissing-prototypes>)
endif()
if(PYHOST_WERROR)
  add_compile_options(-Werror)
endif()
