#pragma once
// What an access token must grant for a FHIR request: the scope check of every interaction,
// against the one table in gateway/identity/scopes.hpp. A refusal is a 403 OperationOutcome
// that names the scope that was missing.
#include <optional>
#include <string_view>

#include "adapters/fhir/error.hpp"
#include "adapters/fhir/task_change.hpp"
#include "gateway/identity/scopes.hpp"

namespace sdoh::fhir {

/// None when `client` may do `interaction` on `type` (a client without scopes: always).
std::optional<Problem> scope_refusal(const Client& client, identity::Interaction interaction,
                                     std::string_view type);

/// The same for each entry of a transaction or batch Bundle (its request.method on its
/// resource's type; an entry without a request is a create). A body that is not a Bundle is left
/// to ingest, which refuses it with its own words.
std::optional<Problem> bundle_scope_refusal(const Client& client, std::string_view bundle_json);

}  // namespace sdoh::fhir
