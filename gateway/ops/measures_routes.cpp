#include "gateway/ops/measures_routes.hpp"

#include <charconv>
#include <cmath>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "gateway/events/event.hpp"
#include "gateway/measures/equity.hpp"

namespace sdoh::ops {

namespace {

namespace asio = boost::asio;
using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

// RFC 9457 problem details, as every /ops/api error.
http::Response problem(unsigned status, std::string_view title, std::string_view detail) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  w.Key("type");
  w.String("about:blank");
  w.Key("title");
  w.String(title.data(), static_cast<rapidjson::SizeType>(title.size()));
  w.Key("status");
  w.Uint(status);
  w.Key("detail");
  w.String(detail.data(), static_cast<rapidjson::SizeType>(detail.size()));
  w.EndObject();
  auto r = http::Response::json(status, std::string(buf.GetString(), buf.GetSize()));
  r.content_type = "application/problem+json";
  return r;
}

void str(Writer& w, const char* key, std::string_view value) {
  w.Key(key);
  w.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
}
void num(Writer& w, const char* key, std::int64_t value) {
  w.Key(key);
  w.Int64(value);
}
void opt(Writer& w, const char* key, std::optional<double> value) {
  w.Key(key);
  if (value && std::isfinite(*value)) {
    w.Double(*value);
  } else {
    w.Null();
  }
}
void instant(Writer& w, const char* key, std::int64_t ms) {
  w.Key(key);
  if (ms == 0) {
    w.Null();
  } else {
    const auto text = events::rfc3339_from_ms(ms);
    w.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
  }
}

void window_json(Writer& w, measures::Window window, const MeasuresRouteOptions& o) {
  w.Key("window");
  w.StartObject();
  instant(w, "from", window.from_ms);
  instant(w, "to", window.to_ms);
  num(w, "measureWindowDays",
      std::chrono::duration_cast<std::chrono::hours>(o.window).count() / 24);
  w.EndObject();
  num(w, "minCell", o.min_cell);
}

void durations_json(Writer& w, const char* key, const measures::DurationSummary& d) {
  w.Key(key);
  w.StartObject();
  num(w, "count", d.count);
  opt(w, "medianSeconds", d.median_seconds);
  opt(w, "p90Seconds", d.p90_seconds);
  w.EndObject();
}

std::string referrals_json(std::span<const measures::ReferralTimeline> timelines,
                           measures::Window window, std::int64_t now,
                           const MeasuresRouteOptions& o) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  window_json(w, window, o);
  w.Key("funnel");
  w.StartArray();
  for (const auto& r : measures::funnel(timelines, window)) {
    w.StartObject();
    str(w, "agency", r.agency);
    str(w, "category", r.category);
    num(w, "requested", r.requested);
    num(w, "received", r.received);
    num(w, "accepted", r.accepted);
    num(w, "completed", r.completed);
    num(w, "rejected", r.rejected);
    num(w, "failed", r.failed);
    num(w, "cancelled", r.cancelled);
    num(w, "open", r.open);
    w.EndObject();
  }
  w.EndArray();
  w.Key("times");
  w.StartArray();
  for (const auto& t : measures::times(timelines, window)) {
    w.StartObject();
    str(w, "agency", t.agency);
    durations_json(w, "toAccept", t.to_accept);
    durations_json(w, "toComplete", t.to_complete);
    w.EndObject();
  }
  w.EndArray();
  w.Key("overdue");
  w.StartArray();
  for (const auto& r : measures::overdue(timelines, now, o.sla)) {
    w.StartObject();
    str(w, "referralId", r.referral_id);
    str(w, "agency", r.agency);
    str(w, "category", r.category);
    str(w, "status", r.status);
    instant(w, "releasedAt", r.released_ms);
    instant(w, "dueAt", r.due_ms);
    w.Key("overdueSeconds");
    w.Double(r.overdue_seconds);
    w.EndObject();
  }
  w.EndArray();
  w.Key("held");
  w.StartArray();
  for (const auto& h : measures::held(timelines)) {
    w.StartObject();
    str(w, "reason", h.reason);
    num(w, "count", h.count);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return {buf.GetString(), buf.GetSize()};
}

void figures_json(Writer& w, const measures::GroupFigures& f, bool suppressed) {
  for (const auto& [key, value] :
       {std::pair{"referrals", f.referrals}, std::pair{"closed", f.closed},
        std::pair{"completed", f.completed}}) {
    w.Key(key);
    if (suppressed) {
      w.Null();
    } else {
      w.Int64(value);
    }
  }
  opt(w, "completionRate", suppressed ? std::nullopt : f.completion_rate);
  opt(w, "medianDaysToClose", suppressed ? std::nullopt : f.median_days_to_close);
}

std::string equity_json(std::span<const measures::ReferralTimeline> timelines,
                        measures::Window window, const MeasuresRouteOptions& o) {
  const auto e = measures::equity(timelines, window, o.min_cell);
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  window_json(w, window, o);
  w.Key("overall");
  w.StartObject();
  figures_json(w, e.overall, false);
  w.EndObject();
  w.Key("dimensions");
  w.StartArray();
  for (const auto& d : e.dimensions) {
    w.StartObject();
    str(w, "dimension", d.dimension);
    w.Key("groups");
    w.StartArray();
    for (const auto& g : d.groups) {
      w.StartObject();
      str(w, "group", g.group);
      str(w, "label", g.label);
      w.Key("suppressed");
      w.Bool(g.suppressed);
      figures_json(w, g.figures, g.suppressed);
      opt(w, "gapVsOverall", g.suppressed ? std::nullopt : g.gap_vs_overall);
      w.EndObject();
    }
    w.EndArray();
    w.Key("largestGap");
    if (d.largest_gap) {
      w.StartObject();
      str(w, "group", d.largest_gap->group);
      w.Key("gapVsOverall");
      w.Double(d.largest_gap->gap_vs_overall);
      w.EndObject();
    } else {
      w.Null();
    }
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return {buf.GetString(), buf.GetSize()};
}

std::int64_t system_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Location since_parameter() {
  Location where;
  where.expression = "since";
  return where;
}

}  // namespace

Result<measures::Window> requested_window(std::optional<std::string_view> since,
                                          std::int64_t now_ms, std::chrono::milliseconds window) {
  const std::int64_t earliest = now_ms - window.count();
  if (!since || since->empty()) return measures::Window{earliest, now_ms};
  std::int64_t from = 0;
  const auto& s = *since;
  long long n = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  const std::string_view unit(end, static_cast<std::size_t>(s.data() + s.size() - end));
  if (ec == std::errc() && n >= 0 && (unit == "d" || unit == "h" || unit == "m")) {
    const std::int64_t unit_ms = unit == "d" ? 86'400'000 : unit == "h" ? 3'600'000 : 60'000;
    from = n > (now_ms / unit_ms) ? 0 : now_ms - n * unit_ms;
  } else if (auto instant = events::ms_from_rfc3339(s)) {
    from = *instant;
  } else {
    return fail(Error::invalid(
        since_parameter(),
        "since must be a duration back from now (30d, 12h, 90m) or an RFC 3339 instant with a "
        "zone (2026-01-01T00:00:00Z)"));
  }
  if (from > now_ms) {
    return fail(Error::invalid(since_parameter(), "since is in the future"));
  }
  return measures::Window{std::max(from, earliest), now_ms};
}

void add_measures_routes(http::Router& router, MeasuresRouteOptions options) {
  if (!options.clock) options.clock = system_now_ms;
  auto shared = std::make_shared<const MeasuresRouteOptions>(std::move(options));
  using Render = std::string (*)(std::span<const measures::ReferralTimeline>, measures::Window,
                                 std::int64_t, const MeasuresRouteOptions&);
  const Render referrals = &referrals_json;
  const Render equity = [](std::span<const measures::ReferralTimeline> t, measures::Window w,
                           std::int64_t,
                           const MeasuresRouteOptions& o) { return equity_json(t, w, o); };
  for (const auto& [path, render] :
       {std::pair{"/ops/api/v1/referrals", referrals}, std::pair{"/ops/api/v1/equity", equity}}) {
    http::Handler handler = [o = shared,
                             render](http::Request& req) -> asio::awaitable<http::Response> {
      if (o->access) {
        if (auto refused = o->access(req)) co_return std::move(*refused);
      }
      const auto now = o->clock();
      auto window = requested_window(req.query_value("since"), now, o->window);
      if (!window) co_return problem(400, "Bad since", window.error().message);
      // Every timeline the window can need: open ones too, for the overdue and held lists.
      auto timelines = o->store->timelines(window->from_ms);
      if (!timelines) {
        auto r = problem(503, "Store unavailable", timelines.error().message);
        r.headers.push_back({"Retry-After", "5"});
        co_return r;
      }
      co_return http::Response::json(200, render(*timelines, *window, now, *o));
    };
    if (shared->store_threads != nullptr) handler = shared->store_threads->wrap(std::move(handler));
    router.add("GET", path, std::move(handler));
  }
}

}  // namespace sdoh::ops
