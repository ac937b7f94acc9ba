# Shared build logic of the board projects. A board's CMakeLists sets its core
# (toolchain file), TTE_BOARD_FLASH_ORIGIN, TTE_BOARD_RAM_ORIGIN and
# TTE_BOARD_COUNTER_SOURCE, then includes this file, which adds the engine and
# the test programs whose generated data it is given.
set(TTE_BOARDS_DIR ${CMAKE_CURRENT_LIST_DIR}/..)
# Warnings are errors in the checkout's own board builds; a generated project defines the option first,
# OFF unless asked (a user's toolchain may be newer than ours).
set(TTE_ENGINE_WERROR ON CACHE BOOL "Treat engine and board warnings as errors")
add_subdirectory(${TTE_BOARDS_DIR}/../engine ${CMAKE_BINARY_DIR}/engine)

# Default regions: the STM32F746's limits, so an image that links for any
# board fits the paper's board.
set(TTE_FLASH_SIZE 1024K CACHE STRING "flash region size (linker syntax: 1024K, 1M)")
set(TTE_RAM_SIZE 320K CACHE STRING "RAM region size (linker syntax)")
set(TTE_STACK_SIZE 0x2000 CACHE STRING "bytes reserved for the main stack")
set(TTE_HEAP_SIZE 0x1000 CACHE STRING "bytes reserved for newlib's heap (stdio buffers)")
set(TTE_GOLDEN_CASES "" CACHE FILEPATH "generated golden kernel cases (boards/tools/firmware_data.py golden)")
set(TTE_TRAIN_MODEL "" CACHE FILEPATH "generated training model: model.cmake of a `tte generate` project")
set(TTE_PROFILE_MODEL OFF CACHE BOOL
  "with TTE_TRAIN_MODEL, build tte_bench (programs/bench_main.c, the model's inference block by block) instead of tte_train")

file(WRITE ${CMAKE_BINARY_DIR}/tte_memory.ld
  "MEMORY\n{\n"
  "    FLASH (rx) : ORIGIN = ${TTE_BOARD_FLASH_ORIGIN}, LENGTH = ${TTE_FLASH_SIZE}\n"
  "    RAM (rwx)  : ORIGIN = ${TTE_BOARD_RAM_ORIGIN}, LENGTH = ${TTE_RAM_SIZE}\n"
  "}\n"
  "TTE_STACK_SIZE = ${TTE_STACK_SIZE};\n"
  "TTE_HEAP_SIZE = ${TTE_HEAP_SIZE};\n")

# OBJECT: the vector table and handlers are linked even though nothing calls them.
add_library(tte_board OBJECT
  ${TTE_BOARDS_DIR}/common/startup.c
  ${TTE_BOARDS_DIR}/common/stack.c
  ${TTE_BOARD_COUNTER_SOURCE})
target_include_directories(tte_board PUBLIC ${TTE_BOARDS_DIR}/common ${TTE_BOARDS_DIR}/programs)
target_compile_options(tte_board PUBLIC -Wall -Wextra $<$<BOOL:${TTE_ENGINE_WERROR}>:-Werror>)
set_target_properties(tte_board PROPERTIES C_STANDARD 99 C_EXTENSIONS OFF)
# newlib declares iprintf (board.h's board_printf) only beside _DEFAULT_SOURCE under -std=c99.
target_compile_definitions(tte_board PUBLIC _DEFAULT_SOURCE)
# Semihosting newlib (rdimon) for stdio; no crt0: startup.c is the entry.
target_link_options(tte_board PUBLIC
  --specs=rdimon.specs -nostartfiles
  -L${CMAKE_BINARY_DIR} -T${TTE_BOARDS_DIR}/common/cortex-m.ld
  -Wl,--print-memory-usage)

# tte_add_program(name sources...): one firmware image, ELF plus raw binary.
function(tte_add_program name)
  add_executable(${name} ${ARGN})
  set_target_properties(${name} PROPERTIES SUFFIX .elf C_STANDARD 99 C_EXTENSIONS OFF
    LINK_DEPENDS ${TTE_BOARDS_DIR}/common/cortex-m.ld)
  target_link_libraries(${name} PRIVATE tte_board tte::engine)
  add_custom_command(TARGET ${name} POST_BUILD
    COMMAND ${CMAKE_OBJCOPY} -O binary $<TARGET_FILE:${name}> $<TARGET_FILE_DIR:${name}>/${name}.bin
    COMMENT "${name}.bin")
endfunction()

# The kernel programs (boards/tools/kernel_bench.py): tte_kernel_check runs the optimized kernels
# against their reference twins (tte/tte_ref.h) on the generated shapes, tte_kernel_bench counts each
# of them and, given TTE_CMSIS_NN_DIR (../shared/anchors/cmsis-nn), CMSIS-NN on the same shapes. CMSIS-NN
# is compiled here, in the build folder, for measurement only: it never links into another program.
set(TTE_KERNEL_SHAPES "" CACHE FILEPATH "generated conv shapes of the kernel programs (boards/tools/kernel_bench.py)")
set(TTE_CMSIS_NN_DIR "" CACHE PATH "CMSIS-NN sources to measure tte_kernel_bench against (../shared/anchors/cmsis-nn)")
if(TTE_KERNEL_SHAPES)
  tte_add_program(tte_kernel_check ${TTE_BOARDS_DIR}/programs/kernel_check_main.c ${TTE_KERNEL_SHAPES})
  tte_add_program(tte_kernel_bench ${TTE_BOARDS_DIR}/programs/kernel_bench_main.c ${TTE_KERNEL_SHAPES})
  if(TTE_CMSIS_NN_DIR)
    file(GLOB _tte_cmsis_nn_sources
      ${TTE_CMSIS_NN_DIR}/Source/ConvolutionFunctions/*_s8.c
      ${TTE_CMSIS_NN_DIR}/Source/ConvolutionFunctions/*_s8_*.c
      ${TTE_CMSIS_NN_DIR}/Source/NNSupportFunctions/*.c)
    list(FILTER _tte_cmsis_nn_sources EXCLUDE REGEX "_f(16|32)[._]")
    add_library(tte_bench_cmsis_nn STATIC ${_tte_cmsis_nn_sources})
    target_include_directories(tte_bench_cmsis_nn PUBLIC ${TTE_CMSIS_NN_DIR}/Include)
    target_compile_options(tte_bench_cmsis_nn PRIVATE -w)
    target_link_libraries(tte_kernel_bench PRIVATE tte_bench_cmsis_nn)
    target_compile_definitions(tte_kernel_bench PRIVATE TTE_BENCH_CMSIS_NN)
  endif()
endif()

# Parameter persistence (tte/tte_persist.h). A board whose flash keeps the two slots sets
# TTE_BOARD_BOOT_ORIGIN and TTE_BOARD_BOOT_SIZE (the vector table's region, BOOT in cortex-m.ld) and a FLASH
# region after the slot sectors, so no image overlaps a slot, and TTE_BOARD_FLASH_SOURCE, its driver
# (board_flash(), common/flash.h). tte_persist (programs/persist_main.c) is the power-cut test on the RAM
# flash model, plus a save and restore through the board's driver when it has one.
if(DEFINED TTE_BOARD_BOOT_ORIGIN)
  file(WRITE ${CMAKE_BINARY_DIR}/tte_boot.ld
    "MEMORY\n{\n    BOOT (rx) : ORIGIN = ${TTE_BOARD_BOOT_ORIGIN}, LENGTH = ${TTE_BOARD_BOOT_SIZE}\n}\n")
else()
  file(WRITE ${CMAKE_BINARY_DIR}/tte_boot.ld "REGION_ALIAS(\"BOOT\", FLASH);\n")
endif()
set(TTE_PERSIST_PROGRAM OFF CACHE BOOL "build tte_persist (programs/persist_main.c, the persistence power-cut test)")
set(TTE_PERSIST_STRIDE 97 CACHE STRING "tte_persist: cut every this many bytes inside a payload program (1: all)")
set(TTE_PERSIST_PAYLOAD_BYTES "" CACHE STRING "tte_persist: parameter bytes saved (empty: persist_main.c's default)")
if(TTE_PERSIST_PROGRAM)
  tte_add_program(tte_persist ${TTE_BOARDS_DIR}/programs/persist_main.c ${TTE_BOARDS_DIR}/common/flash_ram.c
    ${TTE_BOARD_FLASH_SOURCE})
  target_compile_definitions(tte_persist PRIVATE PERSIST_STRIDE=${TTE_PERSIST_STRIDE}u
    $<$<BOOL:${TTE_PERSIST_PAYLOAD_BYTES}>:PERSIST_PAYLOAD_BYTES=${TTE_PERSIST_PAYLOAD_BYTES}u>
    $<$<BOOL:${TTE_BOARD_FLASH_SOURCE}>:TTE_BOARD_HAS_FLASH>)
endif()

if(NOT TTE_GOLDEN_CASES AND NOT TTE_TRAIN_MODEL AND NOT TTE_KERNEL_SHAPES AND NOT TTE_PERSIST_PROGRAM)
  message(FATAL_ERROR "nothing to build: give -DTTE_GOLDEN_CASES=<file.c>, written by "
                      "`python boards/tools/firmware_data.py golden <file.c>`, and/or "
                      "-DTTE_TRAIN_MODEL=<project>/model.cmake written by `tte generate`, "
                      "and/or -DTTE_KERNEL_SHAPES=<file.c> (boards/tools/kernel_bench.py), "
                      "and/or -DTTE_PERSIST_PROGRAM=ON")
endif()
if(TTE_GOLDEN_CASES)
  tte_add_program(tte_golden ${TTE_BOARDS_DIR}/programs/golden_main.c ${TTE_GOLDEN_CASES})
endif()
if(TTE_TRAIN_MODEL)
  include(${TTE_TRAIN_MODEL})
  if(TTE_PROFILE_MODEL)
    # model.c's TTE_MODEL_PROFILE hook, defined before the file by model_profile.h, reads the counter
    # after every forward block; the model built so serves only the bench.
    target_compile_options(${TTE_MODEL_TARGET} PRIVATE -include ${TTE_BOARDS_DIR}/programs/model_profile.h)
    tte_add_program(tte_bench ${TTE_BOARDS_DIR}/programs/bench_main.c)
    target_link_libraries(tte_bench PRIVATE ${TTE_MODEL_TARGET})
  else()
    tte_add_program(tte_train ${TTE_BOARDS_DIR}/programs/train_main.c)
    target_link_libraries(tte_train PRIVATE ${TTE_MODEL_TARGET})
  endif()
endif()
