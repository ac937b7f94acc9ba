# Cortex-M3 (ARMv7-M): no FPU and no DSP extension, so float is libgcc's software float (soft-float
# ABI) and the engine builds only its reference kernels (TTE_ENGINE_ARM_KERNELS defaults to OFF here).
set(TTE_CPU_FLAGS "-mcpu=cortex-m3 -mthumb -mfloat-abi=soft")
include(${CMAKE_CURRENT_LIST_DIR}/arm-none-eabi.cmake)
