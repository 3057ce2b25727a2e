# GPU tests of the transfers (included from tests/gpu/CMakeLists.txt, after
# its no-CUDA return): one binary, label "gpu"; each test skips, printing
# why, where no device is present.
add_executable(kvx_transfer_gpu_tests ${CMAKE_CURRENT_SOURCE_DIR}/transfer_gpu_test.cpp
                                      ${CMAKE_CURRENT_SOURCE_DIR}/gpu_harness.cpp)
target_link_libraries(kvx_transfer_gpu_tests PRIVATE kvx_core CUDA::cudart_static GTest::gtest GTest::gtest_main
                                                     kvx_warnings)
target_include_directories(kvx_transfer_gpu_tests PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
add_test(NAME gpu.transfer COMMAND kvx_transfer_gpu_tests)
set_tests_properties(gpu.transfer PROPERTIES LABELS "gpu" TIMEOUT 600)
