# Load generation and benchmarks: sfload, bare_server, group_benchmark, and
# their tests. Included from cmake/grpc.cmake (needs sf_proto, sf_core).
find_package(benchmark REQUIRED)

# What sfload is made of, kept apart from its main() for the tests.
add_library(sf_load
  bench/http_get.cc
  bench/key_space.cc
  bench/latency_histogram.cc
  bench/load_driver.cc
  bench/load_report.cc
  bench/load_stats.cc
  bench/metrics_scrape.cc
  bench/stream_transport.cc
  bench/unary_transport.cc
  bench/zipf.cc)
target_include_directories(sf_load PUBLIC ${CMAKE_SOURCE_DIR})
target_link_libraries(sf_load PUBLIC sf_proto absl::flat_hash_map
  absl::status absl::statusor absl::str_format absl::strings
  absl::synchronization absl::time absl::any_invocable)

add_executable(sfload bench/sfload.cc)
target_link_libraries(sfload PRIVATE sf_load absl::flags absl::flags_parse
  absl::flags_usage)

add_library(sf_bare_service bench/bare_service.cc)
target_include_directories(sf_bare_service PUBLIC ${CMAKE_SOURCE_DIR})
target_link_libraries(sf_bare_service PUBLIC sf_proto absl::synchronization)

add_executable(bare_server bench/bare_server.cc)
target_link_libraries(bare_server PRIVATE sf_bare_service absl::flags
  absl::flags_parse absl::flags_usage)

add_executable(group_benchmark bench/group_benchmark.cc)
target_link_libraries(group_benchmark PRIVATE sf_core absl::strings
  absl::synchronization benchmark::benchmark benchmark::benchmark_main)

add_executable(bench_tests
  tests/bench/fake_http_server.cc
  tests/bench/http_get_test.cc
  tests/bench/key_space_test.cc
  tests/bench/latency_histogram_test.cc
  tests/bench/load_driver_test.cc
  tests/bench/load_report_test.cc
  tests/bench/metrics_scrape_test.cc
  tests/bench/zipf_test.cc)
target_link_libraries(bench_tests PRIVATE sf_load sf_bare_service
  GTest::gmock GTest::gtest_main)
gtest_discover_tests(bench_tests PROPERTIES LABELS "${SF_TEST_LABELS}"
  DISCOVERY_TIMEOUT 60)

add_executable(bench_e2e_tests
  tests/e2e/server_process.cc
  tests/e2e/sfload_e2e_test.cc)
target_compile_definitions(bench_e2e_tests PRIVATE
  SF_BIN_DIR="${CMAKE_RUNTIME_OUTPUT_DIRECTORY}")
target_link_libraries(bench_e2e_tests PRIVATE sf_client GTest::gmock
  absl::strings absl::synchronization GTest::gtest_main)
add_dependencies(bench_e2e_tests singleflightd sfload bare_server)
gtest_discover_tests(bench_e2e_tests PROPERTIES LABELS "${SF_E2E_LABELS}"
  DISCOVERY_TIMEOUT 60)
