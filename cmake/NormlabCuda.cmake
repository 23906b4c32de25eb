# normlab_enable_cuda(): the CUDA language for the project's nvcc-built programs (the GPU tests,
# the device report, the GPU benchmark), the same wherever it is called. Finds nvcc (PATH or
# /usr/local/cuda) as NORMLAB_NVCC; without it, does nothing else. With it: the architectures
# (cache entry NORMLAB_CUDA_ARCHITECTURES, CMake syntax, default sm_80 and sm_90 machine code plus
# compute_90 PTX; never "native", so that configuring needs no GPU), the CUDA language, the
# toolkit, cuDNN (NORMLAB_CUDNN) and NORMLAB_NVCC_WARNINGS (warnings as errors). A macro, because
# enable_language must run at directory scope.
macro(normlab_enable_cuda)
  find_program(NORMLAB_NVCC nvcc HINTS /usr/local/cuda/bin)
  set(NORMLAB_CUDA_ARCHITECTURES "80-real;90" CACHE STRING
      "CUDA architectures of the nvcc builds (CMake syntax: 80-real = sm_80, 90 = sm_90 + PTX)")
  if(NORMLAB_NVCC)
    if(NOT CMAKE_CUDA_COMPILER)
      set(CMAKE_CUDA_COMPILER ${NORMLAB_NVCC})
    endif()
    set(CMAKE_CUDA_ARCHITECTURES ${NORMLAB_CUDA_ARCHITECTURES})
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    find_library(NORMLAB_CUDNN cudnn HINTS ${CUDAToolkit_LIBRARY_DIR})
    set(NORMLAB_NVCC_WARNINGS -Werror all-warnings -Xcompiler=-Wall,-Wextra)
  endif()
endmacro()
