# Tests of the gRPC and plugin fetchers: against an in-process upstream gRPC
# server and real plugin libraries, then end to end through singleflightd.
# Included by cmake/grpc.cmake, after SF_E2E_LABELS is set.

# The upstream the gRPC fetcher tests call.
sf_proto_library(sf_test_upstream_proto
  "${CMAKE_SOURCE_DIR}/tests/proto|upstream.proto")

# Deliberately broken plugins, which the server must refuse to load.
foreach(plugin no_entry wrong_abi)
  add_library(sf_test_${plugin}_plugin MODULE
    plugins/testing/${plugin}_plugin.c)
  set_target_properties(sf_test_${plugin}_plugin PROPERTIES
    PREFIX "lib" OUTPUT_NAME "sf_test_${plugin}_plugin"
    LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/lib)
endforeach()

add_executable(grpc_fetcher_tests
  tests/fetchers/upstream_server.cc
  tests/fetchers/grpc_fetcher_test.cc
  tests/fetchers/plugin_fetcher_test.cc)
target_compile_definitions(grpc_fetcher_tests PRIVATE
  SF_PLUGIN_DIR="${CMAKE_BINARY_DIR}/lib")
target_link_libraries(grpc_fetcher_tests PRIVATE sf_fetchers
  sf_test_upstream_proto GTest::gmock GTest::gtest_main)
add_dependencies(grpc_fetcher_tests sf_example_plugin
  sf_test_no_entry_plugin sf_test_wrong_abi_plugin)
gtest_discover_tests(grpc_fetcher_tests PROPERTIES LABELS "${SF_E2E_LABELS}"
  DISCOVERY_TIMEOUT 60)

add_executable(upstream_e2e_tests
  tests/e2e/server_process.cc
  tests/e2e/upstream_e2e_test.cc
  tests/fetchers/upstream_server.cc)
target_compile_definitions(upstream_e2e_tests PRIVATE
  SF_BIN_DIR="${CMAKE_RUNTIME_OUTPUT_DIRECTORY}"
  SF_PLUGIN_DIR="${CMAKE_BINARY_DIR}/lib")
# sf_core for the TimerQueue the upstream server delays its answers with.
target_link_libraries(upstream_e2e_tests PRIVATE sf_client sf_core
  sf_test_upstream_proto GTest::gmock GTest::gtest_main absl::strings
  absl::synchronization)
add_dependencies(upstream_e2e_tests singleflightd sf_example_plugin)
gtest_discover_tests(upstream_e2e_tests PROPERTIES LABELS "${SF_E2E_LABELS}"
  DISCOVERY_TIMEOUT 60)
