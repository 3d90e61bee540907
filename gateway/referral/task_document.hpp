#pragma once
// The referral's FHIR Task (SDOHCC-TaskForReferralManagement) as the gateway keeps it: the one
// module that builds a referral's Task, edits it as the referral moves (status, businessStatus,
// statusReason, notes, owner), stamps its meta and turns a version into its store write with
// what it is searched by. Every protocol's path (FHIR, HL7, Kafka, the gateway's own moves)
// calls these, so a Task reads the same whoever moved it. Pure: no I/O.
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gateway/core/result.hpp"
#include "gateway/mapping/referral.hpp"
#include "gateway/pipeline/commit_port.hpp"

namespace sdoh::referral {

/// The FHIR Task (SDOHCC TaskForReferralManagement, status requested) the gateway keeps for a
/// referral that did not arrive as FHIR (HL7 REF^I12), so that GET /fhir/Task/{referralId} and
/// agencies' FHIR updates work for it too. No names or contact details: the patient appears
/// as its pseudonym. No agency (held for no route): no owner. `version` is its meta.versionId
/// (a held referral released to its agency gets a later version).
std::string new_task_json(const mapping::NormalizedReferral& r,
                          const mapping::MappedReferral& mapped, std::string_view last_updated,
                          std::int64_t version = 1);

/// The stored Task with a new status, businessStatus (a code of the lifecycle's vocabulary, or
/// free text) and statusReason (as text; empty: removed). A `note` is added to Task.note (with
/// `note_time`), the notes before it kept. Fails (kInternal) when `current` is not a JSON object.
Result<std::string> with_status(std::string_view current, std::string_view status,
                                std::string_view business_status, std::string_view reason,
                                std::string_view note = {}, std::string_view note_time = {});

/// A Task's JSON with businessStatus `code` (empty: removed) as the gateway keeps it: a code of
/// the lifecycle's vocabulary in mapping::kBusinessStatusSystem with its display, the text as
/// the sender wrote it (else the display); a code outside the vocabulary as text only.
std::string with_business_status(std::string_view json, std::string_view code);

/// A Task's JSON owned by `agency_id` (Task.owner → Organization/<id>, with its name).
/// The Task with its need (reasonCode: the SDOHCC category) replaced by `category`: a referral
/// held uncategorised, once a local code table translates its need.
std::string with_need(std::string_view json, std::string_view category);

std::string with_owner(std::string_view json, std::string_view agency_id,
                       std::string_view agency_name);

/// A resource's JSON with meta.versionId and meta.lastUpdated set.
std::string with_meta(std::string_view json, std::int64_t version, std::string_view updated);

/// "Family contacted" → "family-contacted": a businessStatus code or text as the token the
/// gateway keeps and searches by (lower case, runs of other characters one dash, 64 at most).
std::string business_status_token(std::string_view text);

/// An Organization reference's agency id (identifier.value, else the id of "Organization/<id>"),
/// as routing names agencies: lower case, characters outside [a-z0-9._-] as '-', 64 at most.
std::string agency_id_from(std::string_view raw);

/// What a Task version is found by: its identifiers, and its search parameters (status, focus,
/// owner, patient, requester, identifier, business-status).
struct TaskIndex {
  std::vector<std::pair<std::string, std::string>> identifiers;  ///< (system, value)
  std::vector<std::pair<std::string, std::string>> search;
};
TaskIndex index_task(std::string_view json);

/// The store write of Task `id` at `version` (replacing version - 1; 1 creates it) with content
/// `json`: meta set, identifiers and search parameters from the content, plus _id and _sender
/// (`source`, the client that sent the referral: who may read it as its sender).
pipeline::ResourceWrite task_version(std::string_view id, std::string_view json,
                                     std::int64_t version, std::string_view updated,
                                     std::string_view source);

}  // namespace sdoh::referral
