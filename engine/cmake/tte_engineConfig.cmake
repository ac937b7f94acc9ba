# find_package(tte_engine) straight from the engine's C sources: the folder above this one, in a tte
# checkout (engine/cmake) or in the installed Python package (tte_engine.cmake_dir()). tte::engine is
# compiled by the consuming project with its own compiler and flags, so this one package serves the host
# and every Cortex-M toolchain. (An installed build, `cmake --install`, has its own config instead:
# tte_engineConfig.cmake.in, with the prebuilt library.)
#
# It also says where the board projects are (TTE_BOARDS_DIR: the boards/ folder beside engine/). Called
# before project() -- a board build, whose toolchain file is not chosen yet -- it only sets the folders;
# the board project then adds the engine itself.
get_filename_component(TTE_ENGINE_SOURCE_DIR "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
get_filename_component(TTE_BOARDS_DIR "${TTE_ENGINE_SOURCE_DIR}/../boards" ABSOLUTE)
if(NOT TARGET tte::engine AND CMAKE_C_COMPILER_LOADED)
  add_subdirectory(${TTE_ENGINE_SOURCE_DIR} ${CMAKE_BINARY_DIR}/tte_engine)
endif()
