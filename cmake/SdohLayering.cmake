# The layering rule (DESIGN.md, README "Layout"), checked at configure time so that a break
# fails the build instead of waiting for review:
#   - the core (gateway/, except the composition root gateway/runtime and gateway/main.cpp)
#     includes no adapter;
#   - an adapter includes the core, itself and the transports it is built on (net), never
#     another adapter: hl7v2, fhir and kafka meet only in the core, and none of them sees the
#     store, which they reach through the core's ports (gateway/pipeline);
#   - the protocol adapters' libraries link the core, never each other or sdoh_store.
# Only gateway/runtime (sdoh_runtime) links everything.

# sdoh_check_includes(<dir> ALLOWED <prefix>...): every #include "..." of a source or header
# under <dir> that names a project directory (adapters/, gateway/) must start with one of the
# allowed prefixes.
function(sdoh_check_includes dir)
  cmake_parse_arguments(ARG "" "" "ALLOWED;EXCEPT" ${ARGN})
  file(GLOB_RECURSE files "${PROJECT_SOURCE_DIR}/${dir}/*.cpp" "${PROJECT_SOURCE_DIR}/${dir}/*.hpp")
  foreach(file IN LISTS files)
    file(RELATIVE_PATH rel "${PROJECT_SOURCE_DIR}" "${file}")
    set(skip FALSE)
    foreach(except IN LISTS ARG_EXCEPT)
      string(FIND "${rel}" "${except}" at)
      if(at EQUAL 0)
        set(skip TRUE)
      endif()
    endforeach()
    if(skip)
      continue()
    endif()
    set_property(DIRECTORY "${PROJECT_SOURCE_DIR}" APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${file}")
    file(STRINGS "${file}" includes REGEX "^#include \"(adapters|gateway)/")
    foreach(line IN LISTS includes)
      string(REGEX REPLACE "^#include \"([^\"]+)\".*" "\\1" target "${line}")
      set(ok FALSE)
      foreach(prefix IN LISTS ARG_ALLOWED)
        string(FIND "${target}" "${prefix}" at)
        if(at EQUAL 0)
          set(ok TRUE)
        endif()
      endforeach()
      if(NOT ok)
        message(FATAL_ERROR "layering: ${rel} includes ${target}; ${dir} may include only: ${ARG_ALLOWED}")
      endif()
    endforeach()
  endforeach()
endfunction()

# sdoh_check_links(<target> FORBIDDEN <lib>...): none of these in the target's link libraries.
function(sdoh_check_links target)
  cmake_parse_arguments(ARG "" "" "FORBIDDEN" ${ARGN})
  get_target_property(public ${target} LINK_LIBRARIES)
  get_target_property(interface ${target} INTERFACE_LINK_LIBRARIES)
  foreach(lib IN LISTS ARG_FORBIDDEN)
    if(lib IN_LIST public OR lib IN_LIST interface)
      message(FATAL_ERROR "layering: ${target} links ${lib}; adapters link only the core")
    endif()
  endforeach()
endfunction()

function(sdoh_check_layering)
  set(core gateway/core gateway/config gateway/log gateway/metrics gateway/ops gateway/http
      gateway/identity gateway/events gateway/mapping gateway/pipeline gateway/referral
      gateway/measures gateway/asio gateway/audit)
  sdoh_check_includes(gateway ALLOWED ${core} EXCEPT gateway/runtime gateway/main.cpp)
  sdoh_check_includes(adapters/net ALLOWED ${core} adapters/net)
  sdoh_check_includes(adapters/http ALLOWED ${core} adapters/http adapters/net)
  sdoh_check_includes(adapters/hl7v2 ALLOWED ${core} adapters/hl7v2 adapters/net)
  sdoh_check_includes(adapters/fhir ALLOWED ${core} adapters/fhir adapters/net)
  sdoh_check_includes(adapters/kafka ALLOWED ${core} adapters/kafka)
  sdoh_check_includes(adapters/auth ALLOWED ${core} adapters/auth adapters/net)
  sdoh_check_includes(adapters/store ALLOWED ${core} adapters/store)
  sdoh_check_links(sdoh_hl7v2 FORBIDDEN sdoh_fhir sdoh_kafka sdoh_store sdoh_runtime)
  sdoh_check_links(sdoh_fhir FORBIDDEN sdoh_hl7v2 sdoh_kafka sdoh_store sdoh_runtime)
  sdoh_check_links(sdoh_kafka FORBIDDEN sdoh_hl7v2 sdoh_fhir sdoh_store sdoh_runtime)
  sdoh_check_links(sdoh_auth FORBIDDEN sdoh_hl7v2 sdoh_fhir sdoh_kafka sdoh_store sdoh_runtime)
  sdoh_check_links(sdoh_store FORBIDDEN sdoh_hl7v2 sdoh_fhir sdoh_kafka sdoh_runtime)
  sdoh_check_links(sdoh_core FORBIDDEN sdoh_hl7v2 sdoh_fhir sdoh_kafka sdoh_store sdoh_http
                   sdoh_net sdoh_auth sdoh_runtime)
endfunction()
