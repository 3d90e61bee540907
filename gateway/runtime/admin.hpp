#pragma once
// Operator routes under /admin on the HTTP listener, for dead letters:
//   GET  /admin/dead-letters[?all=true&limit=N]   waiting ones (all: replayed ones too)
//   GET  /admin/dead-letters/{id}[?payload=true]   one, optionally with the stored bytes
//   POST /admin/dead-letters/{id}/replay           replay it, exactly once
// Every route needs `Authorization: Bearer <admin.token>`; without admin.token configured the
// routes do not exist. What they read and replay is ops/dead_letters.hpp, shared with
// /ops/api/v1/dead-letters. The stored bytes may hold PHI: they are returned only on request, to
// an authenticated operator, and never logged.
#include <functional>
#include <string>

#include <boost/asio/awaitable.hpp>

#include "gateway/http/message.hpp"
#include "gateway/ops/dead_letters.hpp"
#include "gateway/pipeline/dead_letter_port.hpp"
#include "gateway/pipeline/store_executor.hpp"

namespace sdoh::runtime {

/// Re-runs a rejected message through its protocol's pipeline as a replay of the dead letter.
using MessageReplayer = ops::MessageReplayer;

void add_admin_routes(http::Router& router, pipeline::DeadLetters& store, std::string token,
                      MessageReplayer replay_message,
                      pipeline::StoreExecutor* store_threads = nullptr);

}  // namespace sdoh::runtime
