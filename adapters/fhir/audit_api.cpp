#include "adapters/fhir/audit_api.hpp"

#include <charconv>
#include <chrono>

#include "adapters/fhir/response.hpp"
#include "gateway/core/json_text.hpp"

namespace sdoh::fhir {

namespace asio = boost::asio;

namespace {

constexpr int kDefaultCount = 50;
constexpr int kMaxCount = 500;

bool digits(std::string_view s, std::size_t at, std::size_t n, int& out) {
  if (s.size() < at + n) return false;
  auto [p, ec] = std::from_chars(s.data() + at, s.data() + at + n, out);
  return ec == std::errc() && p == s.data() + at + n;
}

http::Response unauthorized() {
  auto r = problem_response(Problem::unauthorized(
      "the audit trail is readable by an admin only (Authorization: Bearer <admin.token>)"));
  r.headers.push_back({"WWW-Authenticate", "Bearer realm=\"sdoh-gateway admin\""});
  return r;
}

http::Response bad(std::string expression, std::string text) {
  return problem_response(
      Problem::bad_request(IssueType::kInvalid, std::move(expression), std::move(text)));
}

http::Response store_error(const Error& e) {
  return problem_response(problem_from(e));
}

}  // namespace

std::optional<std::pair<std::int64_t, std::int64_t>> fhir_instant_range(std::string_view s) {
  using namespace std::chrono;
  int y = 0, mo = 0, d = 0;
  if (!digits(s, 0, 4, y) || s.size() < 10 || s[4] != '-' || !digits(s, 5, 2, mo) || s[7] != '-' ||
      !digits(s, 8, 2, d)) {
    return std::nullopt;
  }
  const year_month_day ymd{year(y), month(static_cast<unsigned>(mo)),
                           day(static_cast<unsigned>(d))};
  if (!ymd.ok()) return std::nullopt;
  const auto day_start = duration_cast<milliseconds>(sys_days(ymd).time_since_epoch()).count();
  if (s.size() == 10) return std::pair{day_start, day_start + 86'400'000 - 1};
  int h = 0, mi = 0, sec = 0;
  if (s[10] != 'T' || !digits(s, 11, 2, h) || s.size() < 16 || s[13] != ':' ||
      !digits(s, 14, 2, mi) || h > 23 || mi > 59) {
    return std::nullopt;
  }
  std::size_t at = 16;
  std::int64_t ms = 0;
  std::int64_t span = 60'000 - 1;  // to the minute
  if (at < s.size() && s[at] == ':') {
    if (!digits(s, at + 1, 2, sec) || sec > 60) return std::nullopt;
    at += 3;
    span = 1000 - 1;
    if (at < s.size() && s[at] == '.') {
      std::size_t n = 0;
      int scale = 100;
      while (at + 1 + n < s.size() && std::isdigit(static_cast<unsigned char>(s[at + 1 + n]))) {
        if (scale > 0) ms += (s[at + 1 + n] - '0') * scale;
        scale /= 10;
        ++n;
      }
      if (n == 0) return std::nullopt;
      at += 1 + n;
      span = 0;
    }
  }
  std::int64_t offset = 0;
  if (at < s.size() && s[at] == 'Z') {
    ++at;
  } else if (at < s.size() && (s[at] == '+' || s[at] == '-')) {
    int oh = 0, om = 0;
    if (!digits(s, at + 1, 2, oh) || s.size() < at + 6 || s[at + 3] != ':' ||
        !digits(s, at + 4, 2, om)) {
      return std::nullopt;
    }
    offset = (oh * 60 + om) * 60'000LL * (s[at] == '+' ? 1 : -1);
    at += 6;
  } else {
    return std::nullopt;  // FHIR: a time needs its zone
  }
  if (at != s.size()) return std::nullopt;
  const auto start = day_start + (h * 3600LL + mi * 60LL + sec) * 1000 + ms - offset;
  return std::pair{start, start + span};
}

void add_audit_routes(http::Router& router, const pipeline::AuditTrail& trail,
                      AuditApiOptions options) {
  auto add = [&router, &options](std::string pattern, http::Handler handler) {
    if (options.store_executor != nullptr)
      handler = options.store_executor->wrap(std::move(handler));
    router.add("GET", std::move(pattern), std::move(handler));
  };
  const auto* admin = options.admin;
  auto base_url = options.base_url;
  add("/fhir/AuditEvent",
      [&trail, admin, base_url](http::Request& req) -> asio::awaitable<http::Response> {
        if (admin == nullptr || !admin->allows(req)) co_return unauthorized();
        pipeline::AuditQuery q;
        q.count = kDefaultCount;
        std::string self;
        for (const auto& [name, value, item] : req.query_params()) {
          if (name == "_format") continue;
          if (name == "_count" || name == "_getpagesoffset") {
            int n = 0;
            auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
            if (ec != std::errc() || p != value.data() + value.size() || n < 0)
              co_return bad(name, name + " must be a non-negative integer");
            (name == "_count" ? q.count : q.offset) = name == "_count" ? std::min(n, kMaxCount) : n;
            continue;
          }
          if (value.empty()) co_return bad(name, "the search parameter " + name + " has no value");
          if (name == "entity") {
            q.entity = value;
          } else if (name == "agent") {
            // A reference ("Organization/wic-east") names the party by its id part.
            const auto slash = value.rfind('/');
            q.agent = slash == std::string::npos ? value : value.substr(slash + 1);
          } else if (name == "date") {
            std::string_view v = value;
            std::string prefix = "eq";
            if (v.size() > 2 && std::isalpha(static_cast<unsigned char>(v[0])) &&
                std::isalpha(static_cast<unsigned char>(v[1]))) {
              prefix = std::string(v.substr(0, 2));
              v.remove_prefix(2);
            }
            auto range = fhir_instant_range(v);
            if (!range) {
              co_return bad("date",
                            "date must be a FHIR date or dateTime with a time zone, "
                            "optionally prefixed by ge, gt, le, lt or eq");
            }
            auto lower = [&q](std::int64_t ms) { q.from_ms = std::max(q.from_ms, ms); };
            auto upper = [&q](std::int64_t ms) {
              q.to_ms = q.to_ms == 0 ? ms : std::min(q.to_ms, ms);
            };
            if (prefix == "ge") {
              lower(range->first);
            } else if (prefix == "gt") {
              lower(range->second + 1);
            } else if (prefix == "le") {
              upper(range->second);
            } else if (prefix == "lt") {
              upper(range->first - 1);
            } else if (prefix == "eq") {
              lower(range->first);
              upper(range->second);
            } else {
              co_return bad("date", "the date prefix " + prefix +
                                        " is not supported (ge, gt, "
                                        "le, lt, eq)");
            }
          } else {
            co_return bad(name, "the search parameter " + name +
                                    " is not supported for AuditEvent (entity, agent, date, "
                                    "_count)");
          }
          self += (self.empty() ? "" : "&") + std::string(item);
        }
        auto page = trail.search_audit(q);
        if (!page) co_return store_error(page.error());
        const auto base = base_url ? base_url(req) : std::string();
        auto link = [&](int offset) {
          return base + "/AuditEvent?" + self + (self.empty() ? "" : "&") +
                 "_count=" + std::to_string(q.count) + "&_getpagesoffset=" + std::to_string(offset);
        };
        std::string out = searchset_head(page->total, q.offset, q.count, link);
        bool first = true;
        for (const auto& json : page->events) {
          if (!first) out += ',';
          first = false;
          // The id is the record's sequence: "id":"<n>" right after resourceType.
          const auto id_at = json.find("\"id\":\"");
          const auto id_end = id_at == std::string::npos ? id_at : json.find('"', id_at + 6);
          out += "{\"fullUrl\":";
          append_json_string(
              out, base + "/AuditEvent/" +
                       (id_at == std::string::npos ? std::string()
                                                   : json.substr(id_at + 6, id_end - id_at - 6)));
          out += ",\"resource\":" + json + ",\"search\":{\"mode\":\"match\"}}";
        }
        out += "]}";
        co_return fhir_response(200, std::move(out));
      });
  add("/fhir/AuditEvent/{id}",
      [&trail, admin](http::Request& req) -> asio::awaitable<http::Response> {
        if (admin == nullptr || !admin->allows(req)) co_return unauthorized();
        const auto& id = req.params["id"];
        std::int64_t seq = 0;
        auto [p, ec] = std::from_chars(id.data(), id.data() + id.size(), seq);
        if (ec != std::errc() || p != id.data() + id.size() || seq <= 0) {
          co_return problem_response(Problem::not_found("AuditEvent/" + id + " is not known here"));
        }
        auto found = trail.audit_event(seq);
        if (!found) co_return store_error(found.error());
        if (!*found) {
          co_return problem_response(Problem::not_found(
              "AuditEvent/" + id + " is not known here (never recorded, or pruned)"));
        }
        co_return fhir_response(200, std::move(**found));
      });
}

}  // namespace sdoh::fhir
