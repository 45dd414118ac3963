# pyhost_library(NAME SOURCES ... [DEPS target ...] [EXTERNAL target ...])
# One static library per source folder, named pyhost_<folder>. DEPS are the pyhost
# folders below it (the only ones it may include: scripts/check_layers.py checks the
# includes against the same order); EXTERNAL are the packages it uses. Sources include
# from the project root ("bindings/py_string.h", "pyhost/host.h").
function(pyhost_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;EXTERNAL" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}>)
  target_link_libraries(${name} PUBLIC ${ARG_DEPS} ${ARG_EXTERNAL})
  set_property(GLOBAL APPEND PROPERTY PYHOST_LIBRARIES ${name})
endfunction()
