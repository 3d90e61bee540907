#pragma once
// Agency updates of a referral Task (PUT /fhir/Task/{id}, PATCH /fhir/Task/{id} with a JSON
// Patch, RFC 6902): the patch applied to the stored Task, the new Task validated, and what
// changed read out as a TaskUpdate. Whether the transition is allowed is the referral
// lifecycle's rule (issue 7), not this layer's. Pure: no I/O.
#include <optional>
#include <string>
#include <string_view>

#include "adapters/fhir/error.hpp"
#include "gateway/mapping/referral.hpp"

namespace sdoh::fhir {

/// Applies an RFC 6902 JSON Patch (add, remove, replace, move, copy, test) to a resource.
/// Fails with 400 (invalid patch document or a path that does not exist), 422 (a failed
/// `test` operation, or a patch that changes resourceType or id); the issue's expression is
/// the operation, e.g. "Patch[1].path".
FhirResult<std::string> apply_json_patch(std::string_view resource, std::string_view patch);

/// What an update changes on a referral Task.
struct TaskUpdate {
  std::string referral_id;  ///< Task.id
  mapping::ReferralStatus previous = mapping::ReferralStatus::kRequested;
  mapping::ReferralStatus status = mapping::ReferralStatus::kRequested;
  std::string business_status;  ///< token; empty: none
  std::string reason;           ///< statusReason.text; empty: none
  std::string last_modified;    ///< Task.lastModified when given (RFC 3339), else empty
  std::string json;             ///< the updated Task as sent/patched (the store sets meta)
  std::vector<Issue> warnings;
};

/// Reads an update of the stored Task `current` to `updated`. Fails with 400 when `updated` is
/// not a valid Task or its id is not the one in the URL, 422 (business-rule) when it changes what
/// the referral is (focus, for, owner, intent, code) or uses a status outside the referral
/// workflow (draft, ready, entered-in-error).
FhirResult<TaskUpdate> read_task_update(std::string_view task_id, std::string_view current,
                                        std::string_view updated);

}  // namespace sdoh::fhir
