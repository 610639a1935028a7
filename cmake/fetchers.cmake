# The fetchers that ship with the server, behind URI schemes:
#   echo:            fetchers/echo_fetcher     (sf_echo_fetcher, top level)
#   http:, https:    fetchers/http_fetcher     (libcurl multi, own event thread)
#   grpc:, grpcs:    fetchers/grpc_fetcher     (generic stub, callback API)
#   plugin:          fetchers/plugin_fetcher   (C ABI in include/singleflight/)
find_package(CURL REQUIRED)

add_library(sf_fetchers
  fetchers/builtin_fetchers.cc
  fetchers/grpc_fetcher.cc
  fetchers/http_fetcher.cc
  fetchers/plugin_fetcher.cc)
target_include_directories(sf_fetchers PUBLIC ${CMAKE_SOURCE_DIR}/include)
target_link_libraries(sf_fetchers PUBLIC sf_echo_fetcher gRPC::grpc++
  CURL::libcurl ${CMAKE_DL_LIBS})

# The example plugin: a shared library built against the C ABI header only.
add_library(sf_example_plugin MODULE plugins/example/example_plugin.c)
target_include_directories(sf_example_plugin PRIVATE ${CMAKE_SOURCE_DIR}/include)
set_target_properties(sf_example_plugin PROPERTIES
  PREFIX "lib" OUTPUT_NAME "sf_example_plugin"
  LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/lib)
