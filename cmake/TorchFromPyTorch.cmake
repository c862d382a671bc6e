# TorchFromPyTorch.cmake: finds the LibTorch inside a PyTorch install (RLJ_PYTORCH_ROOT, the `torch` package folder),
# also on a machine without the CUDA toolkit.
#
# PyPI's torch for Linux is a CUDA build. Its CMake config (TorchConfig.cmake) stops with a fatal error when it cannot
# find the CUDA toolkit, so on a CPU machine this module makes the `torch` target itself from the CPU libraries
# (libtorch_cpu, libc10); the CUDA ones need cuBLAS and cuDNN at load time, which a CPU machine does not have.
# Where nvcc is found (a GPU machine), it uses TorchConfig.cmake as it is, with libtorch_cuda and the CUDA runtime.
# RLJ_TORCH_LINK_CUDA=ON links the CUDA libraries on a machine without them too (their own dependencies, cuBLAS
# and the rest, are left for the GPU machine's loader): a binary built here that uses the GPU there
# (tools/device-bundle.sh). rlj's own code needs no CUDA headers: LibTorch's CUDA kernels register themselves
# when libtorch_cuda loads. Sets TORCH_LIBRARIES, TORCH_CXX_FLAGS and RLJ_TORCH_CUDA (whether this build links
# LibTorch's CUDA libraries).

set(_rlj_torch_cmake "${RLJ_PYTORCH_ROOT}/share/cmake/Torch")
if(NOT EXISTS "${_rlj_torch_cmake}/TorchConfig.cmake")
  message(FATAL_ERROR "RLJ_PYTORCH_ROOT=${RLJ_PYTORCH_ROOT}: no share/cmake/Torch/TorchConfig.cmake there; "
                      "give the folder of the torch package (python3 -c 'import torch,os; print(os.path.dirname(torch.__file__))')")
endif()

# The wheel's include folder also carries the headers of the libraries LibTorch bundles, among them Protobuf and
# fmt of other versions than Debian's, which rlj's generated code and spdlog compile against. The build sees a
# copy of that folder made of links to everything else (RLJ_TORCH_INCLUDE_FARM: builds against the same install
# that name the same folder share their compiler cache, as tools/device-bundle.sh does).
set(RLJ_TORCH_INCLUDE_FARM "${CMAKE_BINARY_DIR}/torch-include" CACHE PATH "Where the filtered LibTorch headers go")
set(_rlj_torch_include "${RLJ_TORCH_INCLUDE_FARM}")
file(REMOVE_RECURSE "${_rlj_torch_include}")
file(MAKE_DIRECTORY "${_rlj_torch_include}")
file(GLOB _rlj_torch_include_entries RELATIVE "${RLJ_PYTORCH_ROOT}/include" "${RLJ_PYTORCH_ROOT}/include/*")
foreach(_entry ${_rlj_torch_include_entries})
  if(NOT _entry MATCHES "^(google|fmt|pybind11)$")
    file(CREATE_LINK "${RLJ_PYTORCH_ROOT}/include/${_entry}" "${_rlj_torch_include}/${_entry}" SYMBOLIC)
  endif()
endforeach()
set(_rlj_torch_includes "${_rlj_torch_include}" "${_rlj_torch_include}/torch/csrc/api/include")

find_program(RLJ_NVCC nvcc HINTS ENV CUDA_HOME PATH_SUFFIXES bin PATHS /usr/local/cuda/bin)
if(RLJ_NVCC AND NOT RLJ_TORCH_CPU_ONLY)
  set(Torch_DIR "${_rlj_torch_cmake}")
  find_package(Torch REQUIRED CONFIG)
  set_property(TARGET torch PROPERTY INTERFACE_INCLUDE_DIRECTORIES ${_rlj_torch_includes})
  set(RLJ_TORCH_CUDA ON)
  return()
endif()

set(_rlj_torch_lib "${RLJ_PYTORCH_ROOT}/lib")
foreach(_lib torch_cpu c10)
  if(NOT EXISTS "${_rlj_torch_lib}/lib${_lib}.so")
    message(FATAL_ERROR "RLJ_PYTORCH_ROOT=${RLJ_PYTORCH_ROOT}: lib/lib${_lib}.so is missing")
  endif()
endforeach()
add_library(torch INTERFACE IMPORTED)
target_include_directories(torch SYSTEM INTERFACE ${_rlj_torch_includes})
# The C++ standard library ABI PyPI's wheels are built with (the cxx11 one since torch 2.7, as Debian's libraries).
set(TORCH_CXX_FLAGS "-D_GLIBCXX_USE_CXX11_ABI=1")
target_link_libraries(torch INTERFACE "${_rlj_torch_lib}/libtorch_cpu.so" "${_rlj_torch_lib}/libc10.so")
set(RLJ_TORCH_CUDA OFF)
if(RLJ_TORCH_LINK_CUDA)
  # --no-as-needed: nothing of rlj's calls into libtorch_cuda, but it must load to register the CUDA kernels.
  target_link_libraries(torch INTERFACE -Wl,--no-as-needed "${_rlj_torch_lib}/libtorch_cuda.so"
                                        "${_rlj_torch_lib}/libc10_cuda.so" -Wl,--as-needed -Wl,--allow-shlib-undefined)
  set(RLJ_TORCH_CUDA ON)
endif()
# libtorch_cpu needs libcudart and libcupti at load time even on the CPU (its profiler); they come from PyPI's
# nvidia-cuda-runtime and nvidia-cuda-cupti (tools/python-requirements-torch2.txt), next to the torch package.
set(_rlj_nvidia "${RLJ_PYTORCH_ROOT}/../nvidia/cu13/lib")
set(CMAKE_BUILD_RPATH "${CMAKE_BUILD_RPATH};${_rlj_torch_lib};${_rlj_nvidia}")
set(TORCH_LIBRARIES torch)
