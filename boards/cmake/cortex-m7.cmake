# Cortex-M7 with the single-precision FPv5 (the STM32F746's; hard-float ABI).
set(TTE_CPU_FLAGS "-mcpu=cortex-m7 -mthumb -mfloat-abi=hard -mfpu=fpv5-sp-d16")
include(${CMAKE_CURRENT_LIST_DIR}/arm-none-eabi.cmake)
