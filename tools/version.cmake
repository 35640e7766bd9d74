# Writes strata_version.h: the project version, plus `git describe` of the source tree when it
# is a git checkout with git installed. Run at every build (cmake -P), rewriting the header only
# when the text changes, so only the file that prints it is rebuilt.
set(text "${VERSION}")
find_package(Git QUIET)
if(GIT_FOUND AND EXISTS "${SRC}/.git")
  execute_process(COMMAND "${GIT_EXECUTABLE}" -C "${SRC}" describe --always --dirty
                  OUTPUT_VARIABLE describe OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE rc)
  if(rc EQUAL 0 AND NOT describe STREQUAL "")
    set(text "${VERSION} (git ${describe})")
  endif()
endif()
set(content "#pragma once\n#define STRATA_VERSION \"${text}\"\n")
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
endif()
if(NOT old STREQUAL content)
  file(WRITE "${OUT}" "${content}")
endif()
