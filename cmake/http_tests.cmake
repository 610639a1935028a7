# Tests of the http fetcher against a real HTTP origin (tests/origin/, run
# with /usr/bin/python3): the fetcher alone, and end to end through
# singleflightd. Included from cmake/grpc.cmake, after SF_E2E_LABELS.
add_executable(http_fetcher_tests
  tests/fetchers/http_origin.cc
  tests/fetchers/http_fetcher_test.cc)
target_compile_definitions(http_fetcher_tests PRIVATE
  SF_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
target_link_libraries(http_fetcher_tests PRIVATE sf_fetchers GTest::gmock
  GTest::gtest_main)
gtest_discover_tests(http_fetcher_tests PROPERTIES LABELS "${SF_E2E_LABELS}"
  DISCOVERY_TIMEOUT 60)

add_executable(http_e2e_tests
  tests/e2e/server_process.cc
  tests/e2e/http_e2e_test.cc
  tests/e2e/policy_e2e_test.cc
  tests/fetchers/http_origin.cc)
target_compile_definitions(http_e2e_tests PRIVATE
  SF_BIN_DIR="${CMAKE_RUNTIME_OUTPUT_DIRECTORY}"
  SF_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
target_link_libraries(http_e2e_tests PRIVATE sf_client GTest::gmock
  GTest::gtest_main absl::strings absl::synchronization)
add_dependencies(http_e2e_tests singleflightd)
gtest_discover_tests(http_e2e_tests PROPERTIES LABELS "${SF_E2E_LABELS}"
  DISCOVERY_TIMEOUT 60)
