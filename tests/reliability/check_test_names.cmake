# Fails when a Catch2 TEST_CASE name would not run under CTest: catch_discover_tests turns each
# name into a CTest test whose command passes the name to the executable, so a ';' splits it
# into two names that match no test (and "pass" without running anything), and a leading '-' is
# read as an option. Expects -DTESTS_DIR=<the tests directory>.
file(GLOB_RECURSE sources ${TESTS_DIR}/*.cpp)
set(bad "")
foreach(source ${sources})
  file(READ ${source} content)
  string(REGEX MATCH "TEST_CASE\\([ \t\r\n]*\"(-|[^\";]*;)[^\"]*\"" found "${content}")
  if(found)
    string(REPLACE ";" "<;>" found "${found}")
    string(APPEND bad "\n  ${source}: ${found}")
  endif()
endforeach()
if(bad)
  message(FATAL_ERROR "test names CTest cannot run (no ';', no leading '-'):${bad}")
endif()
list(LENGTH sources count)
message(STATUS "checked the test names of ${count} files")
