# Builds everything with the sanitizers named in PYHOST_SANITIZE, a comma-separated
# -fsanitize= list (scripts/sanitize.sh uses address,undefined). Empty: none.
# Included once from the top CMakeLists.txt before any target is made.
#
# Undefined behaviour is made fatal (-fno-sanitize-recover=all): a UBSan report aborts
# the process, so the test that hit it fails instead of printing a line nobody reads.
# Frame pointers are kept so ASan's fast unwinder gives whole stacks, which the leak
# suppressions (tests/sanitizers/lsan.supp) match on.
set(PYHOST_SANITIZE "" CACHE STRING
  "Comma-separated -fsanitize= list for every target, e.g. address,undefined")

if(PYHOST_SANITIZE)
  if(PYHOST_BUILD_FUZZERS)
    message(FATAL_ERROR "PYHOST_SANITIZE and PYHOST_BUILD_FUZZERS are separate builds")
  endif()
  add_compile_options(-fsanitize=${PYHOST_SANITIZE} -fno-sanitize-recover=all
    -fno-omit-frame-pointer)
  if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    # What is not instrumented, and why: tests/sanitizers/ignorelist.txt.
    add_compile_options(
      -fsanitize-ignorelist=${CMAKE_CURRENT_SOURCE_DIR}/tests/sanitizers/ignorelist.txt)
  endif()
  add_link_options(-fsanitize=${PYHOST_SANITIZE})
endif()
