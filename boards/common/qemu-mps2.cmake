# What the QEMU MPS2 board projects (qemu-mps2-an385, -an386, -an500) share: QEMU's mps2 machines
# (hw/arm/mps2.c) put ZBT SSRAM1 at 0x00000000 (code) and SSRAM2/3 at 0x20000000 (data), 4 MB each, and
# the CMSDK APB timer 0 at 0x40000000 on the 25 MHz clock, which counter-mps2.c reads (QEMU's M3 has no
# DWT cycle counter, so all three use the timer). The regions stay capped at the STM32F746's sizes
# (board.cmake). A board's CMakeLists sets TTE_QEMU_CORE (its toolchain file, boards/cmake/<core>.cmake)
# and includes this before its project(): the toolchain must be known before the first project().
if(NOT TTE_QEMU_CORE)
  message(FATAL_ERROR "set TTE_QEMU_CORE (cortex-m3, cortex-m4 or cortex-m7) before including qemu-mps2.cmake")
endif()
if(NOT CMAKE_TOOLCHAIN_FILE)
  set(CMAKE_TOOLCHAIN_FILE ${CMAKE_CURRENT_LIST_DIR}/../cmake/${TTE_QEMU_CORE}.cmake)
endif()
set(TTE_BOARD_FLASH_ORIGIN 0x00000000)
set(TTE_BOARD_RAM_ORIGIN 0x20000000)
set(TTE_BOARD_COUNTER_SOURCE ${CMAKE_CURRENT_LIST_DIR}/counter-mps2.c)
