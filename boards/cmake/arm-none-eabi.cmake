# arm-none-eabi-gcc for bare-metal Cortex-M. Not used directly: a core file
# (cortex-m4.cmake, cortex-m7.cmake, ...) sets TTE_CPU_FLAGS and includes this.
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)

find_program(TTE_ARM_GCC arm-none-eabi-gcc)
if(NOT TTE_ARM_GCC)
  message(FATAL_ERROR "arm-none-eabi-gcc not found: install the GNU Arm Embedded toolchain "
                      "(Debian: apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi)")
endif()
get_filename_component(_tte_arm_bin "${TTE_ARM_GCC}" DIRECTORY)
set(CMAKE_C_COMPILER "${_tte_arm_bin}/arm-none-eabi-gcc")
set(CMAKE_CXX_COMPILER "${_tte_arm_bin}/arm-none-eabi-g++")
set(CMAKE_ASM_COMPILER "${_tte_arm_bin}/arm-none-eabi-gcc")
set(CMAKE_OBJCOPY "${_tte_arm_bin}/arm-none-eabi-objcopy" CACHE FILEPATH "objcopy for the target")
set(CMAKE_SIZE "${_tte_arm_bin}/arm-none-eabi-size" CACHE FILEPATH "size for the target")

# Try-compiles cannot link a bare-metal executable without a linker script.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)

# -ffunction/data-sections + --gc-sections keep only the kernels a program calls.
set(CMAKE_C_FLAGS_INIT "${TTE_CPU_FLAGS} -ffunction-sections -fdata-sections")
set(CMAKE_CXX_FLAGS_INIT "${TTE_CPU_FLAGS} -ffunction-sections -fdata-sections")
set(CMAKE_ASM_FLAGS_INIT "${TTE_CPU_FLAGS}")
set(CMAKE_EXE_LINKER_FLAGS_INIT "${TTE_CPU_FLAGS} -Wl,--gc-sections")

set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
