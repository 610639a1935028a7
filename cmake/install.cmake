# `cmake --install`: the C++ client library (singleflight::client), the
# generated code it needs (singleflight::proto), their headers, sfctl, and a
# CMake package, so that another project can write
#   find_package(singleflight CONFIG REQUIRED)
#   target_link_libraries(app PRIVATE singleflight::client)
# and `#include <singleflight/client/client.h>`.
#
# Layout under the prefix:
#   include/singleflight/client/*.h       the client's headers
#   include/singleflight/singleflight/v1/ the generated singleflight.proto code
#   include/singleflight/grpc/health/v1/  the generated health.proto code
#   lib/libsf_client.a, lib/libsf_proto.a
#   lib/cmake/singleflight/               the package config
# Consumers get both include/ and include/singleflight/ on their include
# path, so the headers' own includes ("client/...", "singleflight/v1/...")
# resolve as they do in the source tree.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(SF_INSTALL_INCLUDEDIR ${CMAKE_INSTALL_INCLUDEDIR}/singleflight)
set(SF_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/singleflight)

# The targets' include directories point into the source and build trees;
# those hold only while building here. Installed, they are the prefix's.
function(sf_make_includes_relocatable target)
  get_target_property(build_dirs ${target} INTERFACE_INCLUDE_DIRECTORIES)
  set(dirs)
  foreach(dir IN LISTS build_dirs)
    list(APPEND dirs "$<BUILD_INTERFACE:${dir}>")
  endforeach()
  list(APPEND dirs "$<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>"
       "$<INSTALL_INTERFACE:${SF_INSTALL_INCLUDEDIR}>")
  set_target_properties(${target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES
                                             "${dirs}")
endfunction()
sf_make_includes_relocatable(sf_client)
sf_make_includes_relocatable(sf_proto)
set_target_properties(sf_client PROPERTIES EXPORT_NAME client)
set_target_properties(sf_proto PROPERTIES EXPORT_NAME proto)

install(TARGETS sf_client sf_proto EXPORT singleflightTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS sfctl RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES client/client.h client/flight_key.h
  DESTINATION ${SF_INSTALL_INCLUDEDIR}/client)
install(FILES
    ${CMAKE_BINARY_DIR}/gen/singleflight/v1/singleflight.pb.h
    ${CMAKE_BINARY_DIR}/gen/singleflight/v1/singleflight.grpc.pb.h
  DESTINATION ${SF_INSTALL_INCLUDEDIR}/singleflight/v1)
install(FILES
    ${CMAKE_BINARY_DIR}/gen/grpc/health/v1/health.pb.h
    ${CMAKE_BINARY_DIR}/gen/grpc/health/v1/health.grpc.pb.h
  DESTINATION ${SF_INSTALL_INCLUDEDIR}/grpc/health/v1)
install(FILES proto/singleflight/v1/singleflight.proto
  DESTINATION ${CMAKE_INSTALL_DATADIR}/singleflight/proto/singleflight/v1)

install(EXPORT singleflightTargets NAMESPACE singleflight::
  DESTINATION ${SF_INSTALL_CMAKEDIR})
configure_package_config_file(cmake/singleflightConfig.cmake.in
  ${CMAKE_BINARY_DIR}/singleflightConfig.cmake
  INSTALL_DESTINATION ${SF_INSTALL_CMAKEDIR})
write_basic_package_version_file(
  ${CMAKE_BINARY_DIR}/singleflightConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/singleflightConfig.cmake
  ${CMAKE_BINARY_DIR}/singleflightConfigVersion.cmake
  DESTINATION ${SF_INSTALL_CMAKEDIR})
