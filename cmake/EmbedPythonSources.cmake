# pyhost_embed_python_sources(OUTPUT file.cc SOURCES a.py ...)
# Generates a C++ file defining, for modules/NAME.py, `extern const char kNAMESource[]`
# holding the file's text, so the Python that runs inside every interpreter ships in
# the binary (no files to find at run time). Re-runs when a source changes.
function(pyhost_embed_python_sources)
  cmake_parse_arguments(ARG "" "OUTPUT" "SOURCES" ${ARGN})
  set(abs_sources "")
  foreach(src IN LISTS ARG_SOURCES)
    list(APPEND abs_sources ${CMAKE_CURRENT_SOURCE_DIR}/${src})
  endforeach()
  add_custom_command(
    OUTPUT ${ARG_OUTPUT}
    COMMAND ${CMAKE_COMMAND} -DOUTPUT=${ARG_OUTPUT} "-DSOURCES=${abs_sources}"
            -P ${CMAKE_CURRENT_FUNCTION_LIST_DIR}/EmbedPythonSourcesScript.cmake
    DEPENDS ${abs_sources} ${CMAKE_CURRENT_FUNCTION_LIST_DIR}/EmbedPythonSourcesScript.cmake
    COMMENT "Embedding Python sources"
    VERBATIM)
endfunction()
