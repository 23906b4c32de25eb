# CTest driver of the GPU path of the example, run through the emulator: cifar10_norms with its
# CUDA backend compiled by g++ (cifar10_norms_emulated) trains every norm with --device cuda on a
# few real images. Checks the exit code, that it trained on cuda:0 (no CPU fallback), and that
# each norm wrote its checkpoint and a finite final row.
# Expects -DEXE=... -DDATA=... -DOUT=...
file(REMOVE_RECURSE ${OUT})
execute_process(COMMAND ${EXE} --device cuda --data ${DATA} --out ${OUT} --epochs 1 --batch 8
                        --limit-train 16 --limit-test 16 --threads 1
                RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE err)
message(STATUS "${out}${err}")
if(NOT result EQUAL 0)
  message(FATAL_ERROR "cifar10_norms_emulated exited with ${result}")
endif()
if(NOT out MATCHES ", cuda:0, 1 threads" OR err MATCHES "training on the CPU instead")
  message(FATAL_ERROR "cifar10_norms_emulated did not train on cuda:0")
endif()
foreach(norm bn gn ln)
  if(NOT EXISTS ${OUT}/${norm}.ckpt)
    message(FATAL_ERROR "missing ${norm}.ckpt")
  endif()
  file(STRINGS ${OUT}/${norm}.csv lines)
  list(GET lines 1 row)
  if(row MATCHES "nan|inf")
    message(FATAL_ERROR "${norm}.csv: non-finite metrics: ${row}")
  endif()
endforeach()
