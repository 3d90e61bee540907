#pragma once
// An AuditRecord as a FHIR R4 AuditEvent, in the IHE Basic Audit Log Patterns (BALP) shape:
// type and subtype, action, recorded, outcome, agent (the requestor: who, its role, network
// address; and the gateway, or for a disclosure the receiving agency), source (this gateway) and
// entity (what). The text is compact JSON with a fixed key order: the canonical form that the
// hash chain covers (chain.hpp), stored and served as is.
#include <cstdint>
#include <string>
#include <string_view>

#include "gateway/audit/audit_record.hpp"

namespace sdoh::audit {

/// The AuditEvent for `record`, with id `sequence` (its place in the chain) and source
/// observer `gateway_id`. `record.recorded_ms` must be set.
std::string audit_event_json(const AuditRecord& record, std::int64_t sequence,
                             std::string_view gateway_id);

/// The CodeSystem that names the gateway's parties' kinds in AuditEvent.agent.role.
inline constexpr std::string_view kPartyKindSystem = "urn:sdoh:party-kind";
/// The identifier system of parties (agent.who.identifier).
inline constexpr std::string_view kPartySystem = "urn:sdoh:party";

}  // namespace sdoh::audit
