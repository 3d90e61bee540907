#pragma once
// The closed-loop measures as JSON for the ops page and tools/report (README, "/ops/api",
// version 1; the contract with the page):
//   GET /ops/api/v1/referrals[?since=]  the funnel per agency and need, time to accept and to
//                                       complete per agency (median, p90; from release), the
//                                       referrals overdue now, the held counts
//   GET /ops/api/v1/equity[?since=]     completion by race, ethnicity, language and 3-digit ZIP,
//                                       each group against the overall rate, the largest gap;
//                                       groups under measures.min_cell suppressed (all null)
// `since` is a duration back from now ("30d", "12h", "90m") or an RFC 3339 instant; default and
// earliest: the measure window (measures.window). A bad `since` is 400 problem+json naming it.
// The handlers read the store's timelines on the store threads, never on an I/O thread.
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>

#include "gateway/core/result.hpp"
#include "gateway/http/message.hpp"
#include "gateway/measures/referral_measures.hpp"
#include "gateway/pipeline/store_executor.hpp"
#include "gateway/pipeline/timeline_port.hpp"

namespace sdoh::ops {

/// Who may read: nullopt lets the request through; otherwise the answer it gets instead (401,
/// 403). Empty: open, as /metrics is.
using AccessCheck = std::function<std::optional<http::Response>(const http::Request&)>;

struct MeasuresRouteOptions {
  const pipeline::TimelineReader* store = nullptr;   ///< must outlive the router
  pipeline::StoreExecutor* store_threads = nullptr;  ///< where the reads run; null: inline (tests)
  std::chrono::milliseconds window{std::chrono::hours(24 * 395)};  ///< measures.window
  int min_cell = 11;                                               ///< measures.min_cell
  measures::SlaLookup sla;              ///< each agency's SLA, for the overdue list
  std::function<std::int64_t()> clock;  ///< Unix ms; empty: the system clock
  AccessCheck access;                   ///< the one gate for every measures route
};

void add_measures_routes(http::Router& router, MeasuresRouteOptions options);

/// The window a request asks for: `since` (a duration back from `now_ms` with unit d, h or m, or
/// an RFC 3339 instant with a zone), never earlier than the measure window; none: the whole
/// measure window. kInvalid naming `since` otherwise.
Result<measures::Window> requested_window(std::optional<std::string_view> since,
                                          std::int64_t now_ms, std::chrono::milliseconds window);

}  // namespace sdoh::ops
