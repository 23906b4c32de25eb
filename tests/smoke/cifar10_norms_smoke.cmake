# CTest driver of the example's smoke run: runs cifar10_norms on a CIFAR-10 subset, then checks
# that every output exists and is well-formed (PNG signature + IHDR size, CSV header + rows), and
# that each norm's final test accuracy is well above chance (> 30%; chance is 10% +- 0.95% on
# 1,000 images). The tuned recipe without augmentation is used because GroupNorm and LayerNorm
# start slowly under the original one (17-24% after 2 epochs on 5,000 images); this run reaches
# about 55% (BN), 41% (GN), 39% (LN).
# Expects -DEXE=... -DDATA=... -DOUT=...
file(REMOVE_RECURSE ${OUT})
execute_process(COMMAND ${EXE} --data ${DATA} --out ${OUT} --epochs 3 --limit-train 10000 --limit-test 1000
                        --recipe tuned --no-augment
                RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "cifar10_norms exited with ${result}")
endif()

foreach(file summary.txt results.md)
  if(NOT EXISTS ${OUT}/${file})
    message(FATAL_ERROR "missing output ${file}")
  endif()
endforeach()
file(READ ${OUT}/summary.txt summary)
if(NOT summary MATCHES "Total params: 40,394")
  message(FATAL_ERROR "summary.txt does not report 40,394 parameters")
endif()

function(check_png path)
  if(NOT EXISTS ${path})
    message(FATAL_ERROR "missing output ${path}")
  endif()
  file(READ ${path} head LIMIT 24 HEX)
  # 8-byte signature, then the IHDR chunk: length 13, "IHDR", width, height (big-endian).
  if(NOT head MATCHES "^89504e470d0a1a0a0000000d49484452")
    message(FATAL_ERROR "${path} is not a PNG")
  endif()
  string(SUBSTRING ${head} 32 8 width_hex)
  string(SUBSTRING ${head} 40 8 height_hex)
  math(EXPR width "0x${width_hex}")
  math(EXPR height "0x${height_hex}")
  if(width LESS 100 OR height LESS 100)
    message(FATAL_ERROR "${path} is only ${width}x${height}")
  endif()
  message(STATUS "${path}: PNG ${width}x${height}")
endfunction()

check_png(${OUT}/curves.png)
foreach(norm bn gn ln)
  check_png(${OUT}/misclassified_${norm}.png)
  check_png(${OUT}/confusion_${norm}.png)
  if(NOT EXISTS ${OUT}/${norm}.ckpt)
    message(FATAL_ERROR "missing ${norm}.ckpt")
  endif()
  file(STRINGS ${OUT}/${norm}.csv lines)
  list(LENGTH lines count)
  list(GET lines 0 header)
  if(NOT header STREQUAL "epoch,lr,train_loss,train_acc,test_loss,test_acc,seconds,images_per_second" OR NOT count EQUAL 4)
    message(FATAL_ERROR "${norm}.csv: unexpected header or ${count} lines")
  endif()
  list(GET lines 2 last)
  string(REPLACE "," ";" fields "${last}")
  list(GET fields 5 test_acc)
  if(test_acc LESS_EQUAL 30)
    message(FATAL_ERROR "${norm}: test accuracy ${test_acc}% is not well above chance")
  endif()
  message(STATUS "${norm}: final test accuracy ${test_acc}%")
endforeach()
