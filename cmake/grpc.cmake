# Everything that needs gRPC: generated code, server, client, their tests.
find_package(Protobuf REQUIRED)
find_package(gRPC CONFIG REQUIRED)
find_program(GRPC_CPP_PLUGIN grpc_cpp_plugin REQUIRED)

# Generates C++ for each "ROOT|PATH.proto" entry into one library.
function(sf_proto_library name)
  set(gen_dir ${CMAKE_BINARY_DIR}/gen)
  set(sources)
  foreach(entry ${ARGN})
    string(REPLACE "|" ";" parts "${entry}")
    list(GET parts 0 root)
    list(GET parts 1 proto)
    string(REGEX REPLACE "\\.proto$" "" stem "${proto}")
    set(outputs ${gen_dir}/${stem}.pb.cc ${gen_dir}/${stem}.pb.h
                ${gen_dir}/${stem}.grpc.pb.cc ${gen_dir}/${stem}.grpc.pb.h)
    add_custom_command(
      OUTPUT ${outputs}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${gen_dir}
      COMMAND protobuf::protoc --proto_path=${root}
              --proto_path=${Protobuf_INCLUDE_DIRS}
              --cpp_out=${gen_dir} --grpc_out=${gen_dir}
              --plugin=protoc-gen-grpc=${GRPC_CPP_PLUGIN} ${root}/${proto}
      DEPENDS ${root}/${proto}
      COMMENT "Generating C++ for ${proto}")
    list(APPEND sources ${gen_dir}/${stem}.pb.cc ${gen_dir}/${stem}.grpc.pb.cc)
  endforeach()
  add_library(${name} ${sources})
  target_include_directories(${name} PUBLIC ${gen_dir})
  target_link_libraries(${name} PUBLIC gRPC::grpc++ protobuf::libprotobuf)
  # Generated code is not ours to warn about.
  target_compile_options(${name} PRIVATE -w)
endfunction()

# All generated code the product uses, in one library. health.proto is
# compiled in so that reflection can describe the standard health service.
set(SF_GRPC_PROTO_DIR /usr/share/grpc-proto)
sf_proto_library(sf_proto
  "${CMAKE_SOURCE_DIR}/proto|singleflight/v1/singleflight.proto"
  "${SF_GRPC_PROTO_DIR}|grpc/health/v1/health.proto")
# The reflection client, for tests only: the server's reflection library
# carries its own copy of these descriptors.
sf_proto_library(sf_test_reflection_proto
  "${SF_GRPC_PROTO_DIR}|grpc/reflection/v1alpha/reflection.proto")

include(cmake/fetchers.cmake)

find_package(yaml-cpp CONFIG REQUIRED)
find_package(prometheus-cpp CONFIG REQUIRED)
find_package(spdlog CONFIG REQUIRED)

add_library(sf_server
  server/access_control.cc
  server/call_metadata.cc
  server/config.cc
  server/do_reactor.cc
  server/do_response_encoder.cc
  server/do_stream_reactor.cc
  server/log_rate_limiter.cc
  server/logging.cc
  server/metrics.cc
  server/request_decoding.cc
  server/request_validation.cc
  server/server.cc
  server/service.cc)
target_link_libraries(sf_server PUBLIC sf_fetchers sf_proto
  gRPC::grpc++_reflection yaml-cpp prometheus-cpp::pull spdlog::spdlog)

add_executable(singleflightd server/main.cc)
target_link_libraries(singleflightd PRIVATE sf_server absl::flags
  absl::flags_parse absl::flags_usage absl::flags_config)

add_library(sf_client client/client.cc)
target_include_directories(sf_client PUBLIC ${CMAKE_SOURCE_DIR})
target_link_libraries(sf_client PUBLIC sf_proto absl::status absl::statusor
  absl::time)

add_executable(sfctl client/sfctl.cc)
target_link_libraries(sfctl PRIVATE sf_client absl::flags absl::flags_parse
  absl::flags_usage absl::str_format absl::synchronization absl::flat_hash_set)

add_executable(server_tests
  tests/server/call_metadata_test.cc
  tests/server/config_test.cc
  tests/server/do_response_encoder_test.cc
  tests/server/logging_test.cc
  tests/server/do_stream_reactor_test.cc
  tests/server/request_decoding_test.cc
  tests/server/request_validation_test.cc
  tests/server/service_test.cc)
target_link_libraries(server_tests PRIVATE sf_server sf_client GTest::gmock
  GTest::gtest_main)
target_compile_definitions(server_tests PRIVATE
  SF_SOURCE_DIR="${CMAKE_SOURCE_DIR}" SF_PLUGIN_DIR="${CMAKE_BINARY_DIR}/lib")
add_dependencies(server_tests sf_example_plugin)
gtest_discover_tests(server_tests PROPERTIES LABELS "${SF_TEST_LABELS}"
  DISCOVERY_TIMEOUT 60)

set(SF_E2E_LABELS e2e)
if(SF_SANITIZER)
  list(APPEND SF_E2E_LABELS ${SF_SANITIZER}-sanitizer)
endif()
add_executable(e2e_tests
  tests/e2e/server_process.cc
  tests/e2e/do_e2e_test.cc
  tests/e2e/stream_e2e_test.cc
  tests/e2e/lifecycle_e2e_test.cc
  tests/e2e/metrics_e2e_test.cc
  tests/e2e/reflection_e2e_test.cc
  tests/e2e/security_e2e_test.cc
  tests/e2e/sfctl_e2e_test.cc)
target_compile_definitions(e2e_tests PRIVATE
  SF_BIN_DIR="${CMAKE_RUNTIME_OUTPUT_DIRECTORY}")
target_link_libraries(e2e_tests PRIVATE sf_client sf_test_reflection_proto
  CURL::libcurl GTest::gmock absl::strings
  absl::synchronization GTest::gtest_main)
add_dependencies(e2e_tests singleflightd sfctl)
gtest_discover_tests(e2e_tests PROPERTIES LABELS "${SF_E2E_LABELS}"
  DISCOVERY_TIMEOUT 60)
include(cmake/http_tests.cmake OPTIONAL)
include(cmake/grpc_fetcher_tests.cmake OPTIONAL)

# Benchmarks and measuring tools.
add_executable(many_waiters bench/many_waiters.cc)
target_link_libraries(many_waiters PRIVATE sf_proto absl::flags
  absl::flags_parse absl::flags_usage absl::strings absl::synchronization
  absl::time)
include(cmake/bench.cmake)
include(cmake/install.cmake)
