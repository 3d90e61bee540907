#pragma once
// The audit trail over FHIR, for an admin only (identity::AdminAccess; others get 401):
//
//   GET /fhir/AuditEvent?entity=&agent=&date=ge…&date=le…&_count=&_getpagesoffset=
//                              searchset Bundle, newest first. entity: a reference
//                              ("Task/abc") or an event id; agent: the requestor's id (a
//                              reference's id part is taken); date: ge/gt/le/lt/eq and a date or
//                              date-time (a date alone is its whole day, UTC).
//   GET /fhir/AuditEvent/{id}  one AuditEvent (its id is its place in the hash chain)
//
// AuditEvents are served exactly as stored: the bytes the hash chain covers.
#include <functional>
#include <string>

#include "gateway/http/message.hpp"
#include "gateway/identity/admin_access.hpp"
#include "gateway/pipeline/audit_port.hpp"
#include "gateway/pipeline/store_executor.hpp"

namespace sdoh::fhir {

struct AuditApiOptions {
  const identity::AdminAccess* admin = nullptr;  ///< must outlive the routes
  /// The absolute FHIR base URL for the request (Api::base_url).
  std::function<std::string(const http::Request&)> base_url;
  /// Where the reads run (they block). Null: the caller's executor (tests).
  pipeline::StoreExecutor* store_executor = nullptr;
};

/// Adds the AuditEvent routes; `trail` must outlive them.
void add_audit_routes(http::Router& router, const pipeline::AuditTrail& trail,
                      AuditApiOptions options);

/// A FHIR date or dateTime ("2026-12-07", "2026-12-07T10:00:00Z", with an offset or fraction) as
/// the first and last unix millisecond it covers; nothing when it is not one.
std::optional<std::pair<std::int64_t, std::int64_t>> fhir_instant_range(std::string_view text);

}  // namespace sdoh::fhir
