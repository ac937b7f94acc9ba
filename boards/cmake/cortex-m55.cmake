# Cortex-M55 with its default FPU and MVE (hard-float ABI).
set(TTE_CPU_FLAGS "-mcpu=cortex-m55 -mthumb -mfloat-abi=hard")
include(${CMAKE_CURRENT_LIST_DIR}/arm-none-eabi.cmake)
