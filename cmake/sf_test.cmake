# sf_test(NAME name SOURCES file... [LIBS lib...] [LABELS label...]
#         [DEFINES def...] [DEPENDS target...])
#
# One GoogleTest executable (linked to gmock and gtest_main) whose tests are
# registered with CTest one by one, labelled LABELS (unit or e2e) and, in a
# sanitizer build, SF_SANITIZER-sanitizer too. DEPENDS names what the tests
# run (server binaries, plugins), built first. LevelDB's leveldb_test() is
# the model.
function(sf_test)
  cmake_parse_arguments(SF "" "NAME" "SOURCES;LIBS;LABELS;DEFINES;DEPENDS"
                        ${ARGN})
  if(NOT SF_NAME OR NOT SF_SOURCES OR NOT SF_LABELS)
    message(FATAL_ERROR "sf_test needs NAME, SOURCES and LABELS")
  endif()
  add_executable(${SF_NAME} ${SF_SOURCES})
  target_link_libraries(${SF_NAME} PRIVATE ${SF_LIBS} GTest::gmock
                        GTest::gtest_main)
  if(SF_DEFINES)
    target_compile_definitions(${SF_NAME} PRIVATE ${SF_DEFINES})
  endif()
  if(SF_DEPENDS)
    add_dependencies(${SF_NAME} ${SF_DEPENDS})
  endif()
  set(labels ${SF_LABELS})
  if(SF_SANITIZER)
    list(APPEND labels ${SF_SANITIZER}-sanitizer)
  endif()
  gtest_discover_tests(${SF_NAME} PROPERTIES LABELS "${labels}"
                       DISCOVERY_TIMEOUT 60)
endfunction()
