#pragma once
// Dead letters as operators see them: list, show (with the stored bytes on request) and replay,
// written once for both doors to them — /admin/dead-letters (admin.token, tools/deadletters)
// and /ops/api/v1/dead-letters (the dashboard, through OpsAccess). Each door checks who may
// come in and writes its own error shape; what is read, logged, audited and replayed is decided
// here. A payload view and a replay are recorded in the audit trail, durably, before the answer:
// an action that cannot be recorded is refused (kUnavailable). Every call reads or writes the
// store: run it on the store executor, never an I/O thread.
#include <functional>
#include <string>

#include <boost/asio/awaitable.hpp>

#include "gateway/audit/audit_record.hpp"
#include "gateway/core/result.hpp"
#include "gateway/pipeline/audit_port.hpp"
#include "gateway/pipeline/dead_letter_port.hpp"

namespace sdoh::ops {

/// Re-runs a rejected message through its protocol's pipeline as a replay of the dead letter
/// (runtime/replayer.hpp makes the one the gateway uses).
using MessageReplayer = std::function<boost::asio::awaitable<Result<pipeline::ReplayResult>>(
    const pipeline::DeadLetterInfo&)>;

/// {"deadLetters":[…],"waiting":n}: newest first, at most `limit` (1..10000), replayed ones
/// too when `include_replayed`. Metadata only.
Result<std::string> dead_letters_json(const pipeline::DeadLetters& store, int limit,
                                      bool include_replayed);

/// One dead letter; with `with_payload` its stored bytes too (logged and audited as read, by
/// `peer`, never the bytes). `audit` null: nothing recorded (unit tests).
boost::asio::awaitable<Result<std::string>> dead_letter_json(const pipeline::DeadLetters& store,
                                                             std::string id, bool with_payload,
                                                             std::string peer,
                                                             pipeline::AuditTrail* audit);

/// Replays it exactly once ({"deadLetterId","outcome","events"}): an event Kafka refused is
/// queued again; a rejected message goes through `replay_message`. A second replay is
/// kConflict; a message whose bytes were not kept kInvalid.
boost::asio::awaitable<Result<std::string>> replay_dead_letter(
    pipeline::DeadLetters& store, const MessageReplayer& replay_message, std::string id,
    std::string peer, pipeline::AuditTrail* audit);

/// The audit record of an admin action (a replay, a payload view, a certificate reload), by
/// `address`, on `what` (a dead letter, a listener: "dead-letter/<id>", "listener/http"), with
/// its outcome.
audit::AuditRecord admin_action(audit::AuditKind kind, const std::string& address,
                                const std::string& what, bool ok, const std::string& detail = "");

/// The HTTP status of an error from the calls above (404, 409, 422, 503, 500).
unsigned dead_letter_status(const Error& e);

}  // namespace sdoh::ops
