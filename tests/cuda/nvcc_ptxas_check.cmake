# Compiles the CUDA kernels with nvcc for the real targets and checks ptxas's report: every
# kernel must use no local memory (0 bytes stack frame) and spill no register. Run by ctest
# (cuda:nvcc_no_spills:<family>) as
#   cmake -DNVCC=... -DFLAGS="..." -DSOURCE=... -DOBJECT=... -DREPORT=... -P nvcc_ptxas_check.cmake
# The report (ptxas -v for every kernel and architecture) is kept at REPORT.
separate_arguments(flags UNIX_COMMAND "${FLAGS}")
execute_process(COMMAND ${NVCC} ${flags} -c ${SOURCE} -o ${OBJECT}
                RESULT_VARIABLE status OUTPUT_VARIABLE out ERROR_VARIABLE err)
file(WRITE ${REPORT} "${out}${err}")
if(NOT status EQUAL 0)
  message(FATAL_ERROR "nvcc failed (${status}); report in ${REPORT}:\n${out}${err}")
endif()

string(REGEX MATCHALL "Compiling entry function '[^']*' for '[^']*'" entries "${err}")
string(REGEX MATCHALL "[0-9]+ bytes stack frame, [0-9]+ bytes spill stores, [0-9]+ bytes spill loads"
       properties "${err}")
list(LENGTH entries kernel_count)
list(LENGTH properties property_count)
if(kernel_count EQUAL 0 OR NOT kernel_count EQUAL property_count)
  message(FATAL_ERROR "unexpected ptxas report (${kernel_count} kernels, ${property_count} "
                      "property lines); see ${REPORT}")
endif()
set(failures "")
foreach(i RANGE 1 ${kernel_count})
  math(EXPR index "${i} - 1")
  list(GET properties ${index} line)
  if(NOT line MATCHES "^0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads$")
    list(GET entries ${index} entry)
    string(APPEND failures "  ${entry}: ${line}\n")
  endif()
endforeach()
if(failures)
  message(FATAL_ERROR "kernels with local memory or spills (report in ${REPORT}):\n${failures}")
endif()
message(STATUS "${kernel_count} kernel builds, no local memory, no spills; report in ${REPORT}")
