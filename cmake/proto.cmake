# sf_proto_library(name "ROOT|PATH.proto"...)
#
# Generates C++ and gRPC code for each proto (PATH relative to ROOT) into
# BUILD/gen, and compiles it into one library, `name`, which exports that
# include directory.
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
