#pragma once
// Operator routes under /admin on the HTTP listener, for dead letters:
//   GET  /admin/dead-letters[?all=true&limit=N]   waiting ones (all: replayed ones too)
//   GET  /admin/dead-letters/{id}[?payload=true]   one, optionally with the stored bytes
//   POST /admin/dead-letters/{id}/replay           replay it, exactly once
// Every route needs an admin (identity::AdminAccess: `Authorization: Bearer <admin.token>`);
// without admin.token configured the routes do not exist. What they read and replay is
// ops/dead_letters.hpp, shared with /ops/api/v1/dead-letters. The stored bytes may hold PHI:
// they are returned only on request, to an authenticated operator, and never logged. A payload
// view and a replay are recorded in the audit trail (durably, before the answer); the changes a
// replay makes are recorded in its own transaction (pipeline/audit_observer.hpp).
#include <string>

#include <boost/asio/awaitable.hpp>

#include "gateway/http/message.hpp"
#include "gateway/identity/admin_access.hpp"
#include "gateway/ops/dead_letters.hpp"
#include "gateway/pipeline/audit_port.hpp"
#include "gateway/pipeline/dead_letter_port.hpp"
#include "gateway/pipeline/store_executor.hpp"

namespace sdoh::runtime {

using MessageReplayer = ops::MessageReplayer;

/// `admin`, `audit` (may be null: nothing recorded) must outlive the routes.
void add_admin_routes(http::Router& router, pipeline::DeadLetters& store,
                      const identity::AdminAccess& admin, MessageReplayer replay_message,
                      pipeline::AuditTrail* audit = nullptr,
                      pipeline::StoreExecutor* store_threads = nullptr);

/// The hook the TLS listeners call once they reloaded their certificates and keys (SIGHUP):
/// records the reload of `listener` ("http", "mllp") in the audit trail, durably, as an admin
/// action with its outcome.
boost::asio::awaitable<Result<void>> record_certificate_reload(pipeline::AuditTrail& trail,
                                                               std::string listener, bool ok,
                                                               std::string detail = "");

}  // namespace sdoh::runtime
