#pragma once
// Operator routes under /admin on the HTTP listener, for dead letters:
//   GET  /admin/dead-letters[?all=true&limit=N]   waiting ones (all: replayed ones too)
//   GET  /admin/dead-letters/{id}[?payload=true]   one, optionally with the stored bytes
//   POST /admin/dead-letters/{id}/replay           replay it, exactly once
// Every route needs an admin (identity::AdminAccess: `Authorization: Bearer <admin.token>`);
// without admin.token configured the routes do not exist. The stored bytes may hold PHI: they are
// returned only on request, to an authenticated operator, and never logged. A payload view and a
// replay are recorded in the audit trail (durably, before the answer); the changes a replay
// makes are recorded in its own transaction (pipeline/audit_observer.hpp).
#include <functional>
#include <string>

#include <boost/asio/awaitable.hpp>

#include "gateway/http/message.hpp"
#include "gateway/identity/admin_access.hpp"
#include "gateway/pipeline/audit_port.hpp"
#include "gateway/pipeline/dead_letter_port.hpp"
#include "gateway/pipeline/store_executor.hpp"

namespace sdoh::runtime {

/// Re-runs a rejected message through its protocol's pipeline as a replay of the dead letter.
using MessageReplayer = std::function<boost::asio::awaitable<Result<pipeline::ReplayResult>>(
    const pipeline::DeadLetterInfo&)>;

/// `admin`, `audit` (may be null: nothing recorded) must outlive the routes.
void add_admin_routes(http::Router& router, pipeline::DeadLetters& store,
                      const identity::AdminAccess& admin, MessageReplayer replay_message,
                      pipeline::AuditTrail* audit = nullptr,
                      pipeline::StoreExecutor* store_threads = nullptr);

/// The audit record of an admin action (a replay, a payload view, a certificate reload: the TLS
/// listeners record their reloads with it), by `address`, on `what` (a dead letter id, a
/// listener), with its outcome.
/// The hook the TLS listeners call once they reloaded their certificates and keys (SIGHUP):
/// records the reload of `listener` ("http", "mllp") in the audit trail, durably.
boost::asio::awaitable<Result<void>> record_certificate_reload(pipeline::AuditTrail& trail,
                                                               std::string listener, bool ok,
                                                               std::string detail = "");

audit::AuditRecord admin_action(audit::AuditKind kind, const std::string& address,
                                const std::string& what, bool ok, const std::string& detail = "");

}  // namespace sdoh::runtime
