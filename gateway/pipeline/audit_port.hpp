#pragma once
// The audit trail (audit/chain.hpp): where the gateway records what it discloses and who acts,
// and where an admin reads it back. Implemented by the SQLite store, which appends records to the
// hash chain inside its group-committed transactions; a vector in unit tests.
//
// Changes are recorded in the same transaction as the change (CommitRequest::audit). A read is
// recorded with record() before its answer goes out: record() completes once the records are
// durable, in the same group commit (and fsync) as the other writes of the moment. When it fails
// the read must fail too (503): nothing is disclosed unaudited.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "gateway/audit/audit_record.hpp"
#include "gateway/core/result.hpp"

namespace sdoh::pipeline {

/// An AuditEvent search (GET /fhir/AuditEvent): every given criterion must hold.
struct AuditQuery {
  std::string entity;        ///< an entity's reference ("Task/abc") or event id
  std::string agent;         ///< the requestor's id
  std::int64_t from_ms = 0;  ///< recorded at or after (0: no bound)
  std::int64_t to_ms = 0;    ///< recorded at or before (0: no bound)
  int count = 50;
  int offset = 0;
};

/// Matching AuditEvents, newest first, as stored (canonical JSON).
struct AuditPage {
  std::int64_t total = 0;
  std::vector<std::string> events;
};

class AuditTrail {
 public:
  virtual ~AuditTrail() = default;
  /// Appends `records` durably (group-committed with other writes). Fails with kUnavailable
  /// when the store cannot write.
  virtual boost::asio::awaitable<Result<void>> record(std::vector<audit::AuditRecord> records) = 0;
  /// Reads on the read pool; blocks briefly (call from the store executor).
  virtual Result<AuditPage> search_audit(const AuditQuery& query) const = 0;
  virtual Result<std::optional<std::string>> audit_event(std::int64_t sequence) const = 0;
};

}  // namespace sdoh::pipeline
