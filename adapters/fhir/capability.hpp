#pragma once
// What the FHIR API says about itself (GET /fhir/metadata) and what it takes: the resource types
// POST /fhir/{type} accepts with the profiles they are read against, and the
// CapabilityStatement; and the API's options read from the configuration.
#include <string>
#include <vector>

#include "adapters/fhir/api.hpp"

namespace sdoh::fhir {

// The resource types POST /fhir/{type} takes, and the SDOHCC / US Core profiles they are read
// against (the CapabilityStatement's supportedProfile).
struct CreatableType {
  const char* type;
  std::vector<const char*> profiles;
};
const std::vector<CreatableType>& creatable_types();

/// Stands for the FHIR base URL in the CapabilityStatement when fhir.base_url is not set: the
/// metadata route puts the base the request reached in its place.
inline constexpr std::string_view kCapabilityBase = "@@FHIR_BASE@@";

/// Stands for the SMART token endpoint's URL, which the metadata route derives from the base.
inline constexpr std::string_view kCapabilityTokenUrl = "@@SMART_TOKEN_URL@@";

/// The CapabilityStatement (JSON) of an API with these options.
std::string capability_statement(const ApiOptions& options);

}  // namespace sdoh::fhir
