# The installed package works for a project outside this tree. Run with `cmake -P` and
#   -DBUILD_DIR=<tunnx build tree> -DSOURCE_DIR=<tunnx source tree> -DWORK_DIR=<scratch folder>
# Steps: install BUILD_DIR into WORK_DIR/prefix, configure and build tests/consumer against it with
# find_package(tunnx), run the consumer on examples/digits_cnn.onnx and check it counts 33578
# trainable parameter elements. Every failure stops with FATAL_ERROR saying which step failed.
#
# How the consumer finds libtunnx.so at run time: through its RUNPATH, with LD_LIBRARY_PATH unset.
# CMake gives an executable in its build tree a build RPATH with the folder of every imported shared
# library it links from outside the system folders, here WORK_DIR/prefix/lib. That is what a user
# building against an installed tunnx gets by default, so the test relies on it rather than setting
# LD_LIBRARY_PATH, which would hide a broken setup. libtunnx.so's own dependencies (libonnx,
# libprotobuf, libdnnl, ...) come from the system folders.
cmake_minimum_required(VERSION 3.25)

foreach(var BUILD_DIR SOURCE_DIR WORK_DIR)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "run_consumer_test.cmake: pass -D${var}=...")
  endif()
endforeach()

set(prefix "${WORK_DIR}/prefix")
set(consumer_build "${WORK_DIR}/build")
set(model "${SOURCE_DIR}/examples/digits_cnn.onnx")
set(expected_elements 33578)

# Runs a command; on failure stops with `what`, the command line and everything it printed.
function(run_step what)
  execute_process(COMMAND ${ARGN}
    RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT result STREQUAL "0")
    list(JOIN ARGN " " command_line)
    message(FATAL_ERROR "install_and_consume: ${what} failed (${result}).\n"
      "command: ${command_line}\n--- stdout ---\n${out}\n--- stderr ---\n${err}")
  endif()
  set(step_output "${out}" PARENT_SCOPE)
endfunction()

function(fail)
  string(JOIN "" text ${ARGN})
  message(FATAL_ERROR "install_and_consume: ${text}")
endfunction()

if(NOT EXISTS "${BUILD_DIR}/cmake_install.cmake")
  fail("${BUILD_DIR} is not a configured tunnx build tree (no cmake_install.cmake)")
endif()
if(NOT EXISTS "${model}")
  fail("example model ${model} is missing")
endif()

# Build with the compiler that built tunnx, so the C++ ABI matches.
file(STRINGS "${BUILD_DIR}/CMakeCache.txt" cxx_line REGEX "^CMAKE_CXX_COMPILER:")
string(REGEX REPLACE "^[^=]*=" "" cxx_compiler "${cxx_line}")

# 1. Install into a fresh prefix.
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
run_step("installing ${BUILD_DIR} (is the build up to date?)"
  ${CMAKE_COMMAND} -E env --unset=DESTDIR
  ${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${prefix}")

# 2. The package has what a consumer needs.
foreach(header tunnx.h model.h tensor.h status.h device.h)
  if(NOT EXISTS "${prefix}/include/tunnx/${header}")
    fail("the installed package lacks include/tunnx/${header}")
  endif()
endforeach()
file(GLOB_RECURSE config_files "${prefix}/*/tunnxConfig.cmake")
file(GLOB_RECURSE libraries "${prefix}/*/libtunnx.so")
if(NOT config_files)
  fail("the installed package has no tunnxConfig.cmake under ${prefix}")
endif()
if(NOT libraries)
  fail("the installed package has no libtunnx.so under ${prefix}")
endif()
list(GET config_files 0 config_file)
get_filename_component(installed_config_dir "${config_file}" DIRECTORY)
list(GET libraries 0 library)
get_filename_component(installed_lib_dir "${library}" DIRECTORY)
# Public headers may include only other public headers: the source tree is not there for a user.
file(GLOB public_headers "${prefix}/include/tunnx/*.h")
foreach(header IN LISTS public_headers)
  file(STRINGS "${header}" includes REGEX "^[ \t]*#[ \t]*include[ \t]*\"")
  foreach(line IN LISTS includes)
    if(NOT line MATCHES "\"tunnx/[^\"/]+\\.h\"")
      fail("installed header ${header} includes a header that is not installed: ${line}")
    endif()
  endforeach()
endforeach()

# 3. Configure the consumer against the prefix only (no package registry, so a tunnx build tree
#    registered on this machine cannot stand in for the installed package).
set(configure_args
  -S "${SOURCE_DIR}/tests/consumer" -B "${consumer_build}"
  -DCMAKE_PREFIX_PATH=${prefix}
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
  -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF
  -DCMAKE_BUILD_TYPE=Release
  -DCMAKE_EXPORT_COMPILE_COMMANDS=ON)
if(cxx_compiler)
  list(APPEND configure_args -DCMAKE_CXX_COMPILER=${cxx_compiler})
endif()
run_step("configuring tests/consumer with find_package(tunnx) against ${prefix}"
  ${CMAKE_COMMAND} ${configure_args})

file(STRINGS "${consumer_build}/CMakeCache.txt" tunnx_dir_line REGEX "^tunnx_DIR:")
string(REGEX REPLACE "^[^=]*=" "" found_tunnx_dir "${tunnx_dir_line}")
file(REAL_PATH "${found_tunnx_dir}" found_tunnx_dir)
file(REAL_PATH "${installed_config_dir}" installed_config_dir)
if(NOT found_tunnx_dir STREQUAL installed_config_dir)
  fail("find_package(tunnx) used ${found_tunnx_dir}, not the installed ${installed_config_dir}")
endif()

# 4. Build it. It must compile from the installed headers alone.
run_step("building tests/consumer against the installed tunnx" ${CMAKE_COMMAND} --build "${consumer_build}")
file(READ "${consumer_build}/compile_commands.json" compile_commands)
string(REGEX MATCHALL "(-I|-isystem )[^ \"]+" include_flags "${compile_commands}")
foreach(flag IN LISTS include_flags)
  string(REGEX REPLACE "^(-I|-isystem )" "" dir "${flag}")
  string(FIND "${dir}/" "${prefix}/" in_prefix)
  if(in_prefix EQUAL 0)
    continue()
  endif()
  foreach(tree "${SOURCE_DIR}" "${BUILD_DIR}")
    string(FIND "${dir}/" "${tree}/" in_tree)
    if(in_tree EQUAL 0)
      fail("the consumer was compiled with include folder ${dir} from the tunnx tree; the "
           "installed tunnxTargets.cmake must point only into ${prefix}:\n${compile_commands}")
    endif()
  endforeach()
endforeach()

# 5. Run it with LD_LIBRARY_PATH unset: libtunnx.so is found through the consumer's RUNPATH.
set(consumer "${consumer_build}/tunnx_consumer")
execute_process(
  COMMAND ${CMAKE_COMMAND} -E env --unset=LD_LIBRARY_PATH "${consumer}" "${model}"
          "${SOURCE_DIR}/examples/digits_sample.npy"
  RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT result STREQUAL "0")
  fail("the consumer failed on ${model} (${result}) with LD_LIBRARY_PATH unset. If the loader "
       "cannot find libtunnx.so, the consumer's RUNPATH lacks ${installed_lib_dir}.\n"
       "--- stdout ---\n${out}\n--- stderr ---\n${err}")
endif()
if(NOT out MATCHES "trainable parameter elements: ([0-9]+)")
  fail("the consumer's output does not say how many trainable parameter elements there are:\n${out}")
endif()
if(NOT CMAKE_MATCH_1 STREQUAL "${expected_elements}")
  fail("the consumer counted ${CMAKE_MATCH_1} trainable parameter elements in ${model}, "
       "expected ${expected_elements}:\n${out}")
endif()
# The installed Session classifies the four real sample digits as labelled.
file(STRINGS "${SOURCE_DIR}/examples/digits_sample_labels.txt" labels)
string(JOIN " " expected_predictions ${labels})
if(NOT out MATCHES "predicted: ${expected_predictions}")
  fail("the consumer's Session did not predict the sample labels (${expected_predictions}):\n${out}")
endif()
message(STATUS "install_and_consume: consumer output:\n${out}")

# 6. The installed `tunnx` command runs from the prefix too (its libtunnx.so is in ../lib).
set(installed_cli "${prefix}/bin/tunnx")
if(NOT EXISTS "${installed_cli}")
  fail("the installed package has no bin/tunnx")
endif()
execute_process(
  COMMAND ${CMAKE_COMMAND} -E env --unset=LD_LIBRARY_PATH "${installed_cli}" params "${model}"
  RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT result STREQUAL "0" OR NOT out MATCHES "Trainable parameters: 8 tensors, 33,578 elements")
  fail("the installed ${installed_cli} failed (${result}) on ${model} with LD_LIBRARY_PATH unset.\n"
       "--- stdout ---\n${out}\n--- stderr ---\n${err}")
endif()

message(STATUS "install_and_consume: OK")
