#include "adapters/fhir/api.hpp"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include <openssl/crypto.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "adapters/fhir/access.hpp"
#include "adapters/fhir/capability.hpp"
#include "adapters/fhir/consent.hpp"
#include "adapters/fhir/response.hpp"
#include "adapters/fhir/task_change.hpp"
#include "adapters/fhir/task_update.hpp"
#include "gateway/core/json_text.hpp"
#include "gateway/core/text.hpp"
#include "gateway/events/event.hpp"
#include "gateway/identity/pseudonym.hpp"
#include "gateway/log/log.hpp"
#include "gateway/mapping/engine.hpp"
#include "gateway/metrics/registry.hpp"
#include "gateway/referral/task_document.hpp"

namespace sdoh::fhir {

namespace asio = boost::asio;
using http::Request;
using http::Response;

namespace {

constexpr std::string_view kJsonPatch = "application/json-patch+json";
constexpr int kDefaultPageSize = 20;
constexpr int kMaxPageSize = 100;

// "application/fhir+json; charset=utf-8" → "application/fhir+json".
std::string media_type(std::string_view header) {
  return ascii_lower(trim_blanks(header.substr(0, header.find(';'))));
}

bool json_media(std::string_view mt) {
  return mt == "application/fhir+json" || mt == "application/json" || mt == "json" ||
         mt == "text/json";
}
bool xml_media(std::string_view mt) {
  return mt == "application/fhir+xml" || mt == "application/xml" || mt == "text/xml" || mt == "xml";
}

// Prefer: return=… and handling=… (RFC 7240; FHIR http.html#prefer).
struct Preferences {
  std::string ret = "representation";
  bool strict = false;
};
Preferences preferences(const Request& req) {
  Preferences p;
  for (const auto& h : req.headers) {
    if (ascii_lower(h.name) != "prefer") continue;
    std::string_view v = h.value;
    while (!v.empty()) {
      const auto comma = v.find(',');
      const auto item = trim_blanks(v.substr(0, comma));
      v = comma == std::string_view::npos ? std::string_view() : v.substr(comma + 1);
      const auto eq = item.find('=');
      if (eq == std::string_view::npos) continue;
      const auto name = ascii_lower(trim_blanks(item.substr(0, eq)));
      auto value = trim_blanks(item.substr(eq + 1));
      if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
        value = value.substr(1, value.size() - 2);
      if (name == "return" &&
          (value == "minimal" || value == "representation" || value == "OperationOutcome"))
        p.ret = std::string(value);
      if (name == "handling") p.strict = value == "strict";
    }
  }
  return p;
}

// W/"3" or "3" → 3; 0 when it is neither.
std::int64_t etag_version(std::string_view v) {
  v = trim_blanks(v);
  if (v.starts_with("W/")) v.remove_prefix(2);
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
  std::int64_t n = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || p != v.data() + v.size() || n <= 0) return 0;
  return n;
}

std::string etag(std::int64_t version) {
  return "W/\"" + std::to_string(version) + "\"";
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// A reference search value in the stored form: "Type/id" ("id" alone gets the type).
std::string reference_value(std::string_view value, std::string_view type) {
  if (value.find('/') == std::string_view::npos)
    return std::string(type) + "/" + std::string(value);
  // An absolute URL to this server: keep "Type/id".
  const auto last = value.rfind('/');
  const auto prev = value.rfind('/', last - 1);
  return std::string(value.substr(prev == std::string_view::npos ? 0 : prev + 1));
}

}  // namespace

std::string http_date(std::string_view t) {
  // YYYY-MM-DDThh:mm:ss[.fff](Z|±hh:mm)
  if (t.size() < 19) return {};
  std::tm tm{};
  auto num = [&](std::size_t pos, std::size_t len, int& out) {
    auto [p, ec] = std::from_chars(t.data() + pos, t.data() + pos + len, out);
    return ec == std::errc() && p == t.data() + pos + len;
  };
  int year = 0, mon = 0, day = 0, hh = 0, mm = 0, ss = 0;
  if (!num(0, 4, year) || !num(5, 2, mon) || !num(8, 2, day) || !num(11, 2, hh) ||
      !num(14, 2, mm) || !num(17, 2, ss))
    return {};
  tm.tm_year = year - 1900;
  tm.tm_mon = mon - 1;
  tm.tm_mday = day;
  tm.tm_hour = hh;
  tm.tm_min = mm;
  tm.tm_sec = ss;
  std::time_t when = timegm(&tm);
  std::size_t pos = 19;
  if (pos < t.size() && t[pos] == '.') {
    ++pos;
    while (pos < t.size() && std::isdigit(static_cast<unsigned char>(t[pos])))
      ++pos;
  }
  if (pos < t.size() && (t[pos] == '+' || t[pos] == '-') && t.size() >= pos + 6) {
    int oh = 0, om = 0;
    if (!num(pos + 1, 2, oh) || !num(pos + 4, 2, om)) return {};
    const int offset = (oh * 60 + om) * 60;
    when += t[pos] == '+' ? -offset : offset;
  }
  std::tm gmt{};
  gmtime_r(&when, &gmt);
  char buf[64];
  const auto n = std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &gmt);
  return {buf, n};
}

// ---------------------------------------------------------------------------------------------

struct Api::Impl {
  Impl(const mapping::ScreeningMapper& m, pipeline::CommitPort& c,
       const pipeline::ResourceReader& r, ApiOptions o, metrics::Registry& registry)
      : mapper(m),
        commits(c),
        resources(r),
        options(std::move(o)),
        directory(r),
        interactions(registry.counter("sdoh_fhir_interactions_total",
                                      "FHIR interactions answered, by interaction, resource type "
                                      "and HTTP status.",
                                      {"interaction", "type", "status"})) {
    capability = fhir::capability_statement(options);
  }

  // ResourceDirectory over the store, for ingest's references and conditional creates.
  class Directory final : public ResourceDirectory {
   public:
    explicit Directory(const pipeline::ResourceReader& r) : r_(r) {}
    std::optional<std::string> read(std::string_view type, std::string_view id) const override {
      auto row = r_.read_resource(type, id);
      if (!row || !*row) return std::nullopt;
      return std::move((*row)->json);
    }
    std::optional<std::string> find_by_identifier(std::string_view type, std::string_view system,
                                                  std::string_view value) const override {
      auto id = r_.find_resource_id(type, system, value);
      if (!id) return std::nullopt;
      return *id;
    }
    std::vector<std::string> search(
        std::string_view type,
        const std::vector<std::pair<std::string, std::string>>& params) const override {
      pipeline::ResourceQuery q;
      q.type = std::string(type);
      for (const auto& [name, value] : params)
        q.params.push_back({name, {value}});
      q.count = 200;
      std::vector<std::string> ids;
      if (auto page = r_.search_resources(q)) {
        for (const auto& row : page->rows)
          ids.push_back(row.id);
      }
      return ids;
    }

   private:
    const pipeline::ResourceReader& r_;
  };

  // What a request needs before its interaction runs.
  struct Call {
    Client client;
    std::string base;         // absolute FHIR base URL, no trailing '/'
    bool plain_json = false;  // answer as application/json (the client asked for it)
    Preferences prefer;
  };

  const mapping::ScreeningMapper& mapper;
  pipeline::CommitPort& commits;
  const pipeline::ResourceReader& resources;
  ApiOptions options;
  referral::Service service{{options.gateway_id, options.topics.referral_status}};
  Directory directory;
  metrics::Family<metrics::Counter>& interactions;
  std::string capability;

  // --- answers --------------------------------------------------------------------------

  Response count(Response r, std::string_view interaction, std::string_view type) {
    interactions.with({std::string(interaction), std::string(type), std::to_string(r.status)})
        .inc();
    return r;
  }

  // A commit failure as the client sees it.
  static Problem commit_problem(const Error& e) {
    if (e.kind == ErrorKind::kConflict) return Problem::conflict(e.message);
    if (e.kind == ErrorKind::kUnavailable) {
      return {FhirErrc::kUnavailable,
              {Issue::error(IssueType::kTransient, "",
                            "the gateway cannot store the request now (" + e.message +
                                "); nothing was kept: retry later")}};
    }
    return problem_from(e);
  }

  // A resend's answer: the stored status and body; for a success, where the resource is now
  // (Location, ETag, Last-Modified of its current version).
  Response stored_answer(const pipeline::CommitOutcome& outcome, const Call& call,
                         std::string_view type, std::string_view id) const {
    int status = 200;
    std::from_chars(outcome.answer_code.data(),
                    outcome.answer_code.data() + outcome.answer_code.size(), status);
    auto r = fhir_response(static_cast<unsigned>(status), outcome.answer, call.plain_json);
    if (status >= 300 || type.empty()) return r;
    auto row = resources.read_resource(type, id);
    if (row && *row) {
      r.headers.push_back({"Location", call.base + "/" + std::string(type) + "/" + std::string(id) +
                                           "/_history/" + std::to_string((*row)->version)});
      r.headers.push_back({"ETag", etag((*row)->version)});
      r.headers.push_back({"Last-Modified", http_date((*row)->last_updated)});
    }
    return r;
  }

  // --- who and how ----------------------------------------------------------------------

  bool tokens_active() const { return options.tokens != nullptr && options.tokens->active(); }

  std::expected<Client, Problem> authenticate(const Request& req) const {
    if (options.token_clients.empty() && options.certificate_clients.empty() && !tokens_active())
      return Client{"dev", "dev", "dev", "Development client", std::nullopt};
    if (auto auth = req.header("Authorization")) {
      auto v = trim_blanks(*auth);
      if (v.size() > 7 && ascii_lower(v.substr(0, 7)) == "bearer ") {
        const auto token = trim_blanks(v.substr(7));
        for (const auto& [known, client] : options.token_clients) {
          if (constant_time_equal(known, token)) return client;
        }
        // A JWT: an access token of SMART Backend Services (ours or an external issuer's).
        if (tokens_active() && std::count(token.begin(), token.end(), '.') == 2) {
          auto caller = options.tokens->verify(token, base_url(req));
          if (!caller) {
            log::info("fhir.token_refused", {{"reason", caller.error().message}});
            return std::unexpected(Problem::unauthorized(caller.error().message));
          }
          return Client{caller->party, caller->kind, caller->organization, caller->name,
                        std::move(caller->scopes)};
        }
      }
      return std::unexpected(Problem::unauthorized("the bearer token is not a known client's"));
    }
    if (!req.client_cn.empty()) {
      for (const auto& [cn, client] : options.certificate_clients) {
        if (cn == req.client_cn) return client;
      }
      return std::unexpected(
          Problem::unauthorized("the client certificate is not a configured client's"));
    }
    return std::unexpected(Problem::unauthorized(
        tokens_active() ? "authenticate with Authorization: Bearer <access token> (SMART Backend "
                          "Services: see /fhir/.well-known/smart-configuration)"
                        : "authenticate with Authorization: Bearer <token> or a client "
                          "certificate"));
  }

  std::string base_url(const Request& req) const {
    if (!options.base_url.empty()) return options.base_url;
    std::string host(req.header("Host").value_or("localhost"));
    return std::string(req.secure ? "https://" : "http://") + host + "/fhir";
  }

  // Authentication, _format / Accept, Prefer.
  std::expected<Call, Problem> begin(const Request& req) const {
    Call call;
    auto format = req.query_value("_format");
    if (format) {
      const auto mt = media_type(*format);
      if (!json_media(mt)) {
        Problem p{FhirErrc::kNotAcceptable,
                  {Issue::error(IssueType::kNotSupported, "_format",
                                "this server answers in JSON only (_format=json)")}};
        return std::unexpected(std::move(p));
      }
      call.plain_json = mt == "application/json" || mt == "text/json";
    } else if (auto accept = req.header("Accept")) {
      bool json = false, xml = false, any = false;
      std::string_view v = *accept;
      while (!v.empty()) {
        const auto comma = v.find(',');
        const auto mt = media_type(v.substr(0, comma));
        v = comma == std::string_view::npos ? std::string_view() : v.substr(comma + 1);
        json = json || json_media(mt);
        xml = xml || xml_media(mt);
        any = any || mt == "*/*" || mt == "application/*";
        if (mt == "application/json" && !xml) call.plain_json = true;
        if (mt == "application/fhir+json") call.plain_json = false;
      }
      if (xml && !json && !any) {
        Problem p{FhirErrc::kNotAcceptable,
                  {Issue::error(IssueType::kNotSupported, "",
                                "this server answers in JSON only (Accept: "
                                "application/fhir+json)")}};
        return std::unexpected(std::move(p));
      }
    }
    auto client = authenticate(req);
    if (!client) return std::unexpected(client.error());
    call.client = std::move(*client);
    if (options.rate_limits != nullptr) {
      const auto decision = options.rate_limits->take(call.client.id);
      if (!decision.allowed) {
        log::info("fhir.rate_limited", {{"client", call.client.id}});
        return std::unexpected(
            Problem::too_many_requests(static_cast<int>(decision.retry_after.count())));
      }
    }
    call.base = base_url(req);
    call.prefer = preferences(req);
    return call;
  }

  static std::optional<Problem> check_body_type(const Request& req, bool patch) {
    const auto ct = req.header("Content-Type");
    const auto mt = ct ? media_type(*ct) : std::string();
    if (patch) {
      if (mt == kJsonPatch) return std::nullopt;
      return Problem::unsupported_media_type(
          "PATCH takes a JSON Patch (Content-Type: application/json-patch+json)" +
          (mt.empty() ? std::string() : ", not " + mt));
    }
    if (json_media(mt)) return std::nullopt;
    if (mt.empty()) {
      return Problem::unsupported_media_type(
          "the request has no Content-Type: send application/fhir+json");
    }
    return Problem::unsupported_media_type(
        (xml_media(mt) ? "XML is not supported" : "the media type " + mt + " is not supported") +
        std::string(": send application/fhir+json (or application/json)"));
  }

  // --- create / transaction -------------------------------------------------------------

  IngestContext context_for(const Client& client) const {
    IngestContext ctx;
    ctx.mapper = &mapper;
    ctx.sender = client.id;
    ctx.gateway_id = options.gateway_id;
    ctx.topics = options.topics;
    ctx.facility = {"", client.organization, client.name};
    ctx.directory = &directory;
    ctx.agency_topic = options.agency_topic;
    ctx.route = options.route;
    ctx.unknown_patient = options.unknown_patient;
    ctx.refer_from_screening = options.refer_from_screening;
    ctx.find_referral = options.find_referral;
    ctx.open_referral_for = options.open_referral_for;
    return ctx;
  }

  static std::vector<std::pair<std::string, std::string>> search_params(const StoredResource& s,
                                                                        const std::string& sender) {
    // Only Tasks are searched (and ServiceRequests found by their Task's agency).
    std::vector<std::pair<std::string, std::string>> out;
    if (s.type != "Task" && s.type != "ServiceRequest") return out;
    out.emplace_back("_id", s.id);
    out.emplace_back("_sender", sender);
    {
      auto parsed = parse_resource(s.json);
      if (parsed) {
        if (std::holds_alternative<Task>(parsed->resource)) {
          auto more = referral::index_task(s.json).search;
          out.insert(out.end(), more.begin(), more.end());
        } else if (const auto* sr = std::get_if<ServiceRequest>(&parsed->resource)) {
          out.emplace_back("status", sr->status);
          if (auto [type, id] = sr->subject.type_and_id(); type == "Patient")
            out.emplace_back("patient", "Patient/" + id);
        }
      }
    }
    return out;
  }

  // The commit of an accepted request: ingest's inbound record and events, the resources it
  // created and the referrals it opened.
  static pipeline::CommitRequest commit_of(FhirIngest& done, const std::string& sender) {
    pipeline::CommitRequest commit = std::move(done.commit);
    for (const auto& s : done.resources) {
      if (!s.created || s.json.empty()) continue;
      pipeline::ResourceWrite w;
      w.type = s.type;
      w.id = s.id;
      w.version = std::max<std::int64_t>(1, std::atoll(s.version_id.c_str()));
      w.expected_version = w.version - 1;
      w.last_updated = s.last_updated;
      w.json = s.json;
      for (const auto& i : s.identifiers) {
        if (!i.value.empty()) w.identifiers.emplace_back(i.system, i.value);
      }
      w.source = sender;
      w.search = search_params(s, sender);
      commit.resources.push_back(std::move(w));
    }
    // The states the referral service decided (CreatedReferral is one, plus what the answer
    // reports).
    for (const auto& r : done.referrals)
      commit.referrals.push_back(static_cast<const pipeline::ReferralState&>(r));
    return commit;
  }

  // An operator's replay of a refused create or Bundle: ingested again as its sender sent it.
  asio::awaitable<Result<pipeline::CommitOutcome>> replay(std::string sender,
                                                          std::string message_type,
                                                          std::string payload,
                                                          std::string earlier_answer,
                                                          pipeline::CommitPort& port) {
    if (message_type.starts_with("Task-")) {
      co_return fail(Error::unsupported(
          "a refused Task update is not replayed: it was made against a version of the Task that "
          "is no longer current; the agency sends it again"));
    }
    Client client{sender, "clinic", sender, sender, std::nullopt};
    for (const auto& known : options.party_clients) {
      if (known.id == sender) client = known;  // a SMART client's requests are its party's
    }
    for (const auto& list : {&options.token_clients, &options.certificate_clients}) {
      for (const auto& [credential, known] : *list) {
        (void)credential;
        if (known.id == sender) client = known;
      }
    }
    const std::string url_type =
        message_type == "Bundle" || message_type == "unknown" ? std::string() : message_type;
    IngestRequest in;
    in.body = payload;
    in.resource_type = url_type;
    in.received_at = events::now_rfc3339();
    in.earlier_answer = earlier_answer;
    const auto ctx = context_for(client);
    auto result = ingest(in, ctx);
    if (!result) {
      auto commit = std::move(result.error().commit);
      if (commit.inbound.protocol.empty())
        co_return fail(Error::internal(result.error().problem.first_error().diagnostics));
      auto outcome = co_await port.commit(std::move(commit));
      co_return outcome;
    }
    // The message may have been accepted before (a referral held for no route): what it stored
    // then stays as it is; only new versions (a released referral's Task) are written.
    std::erase_if(result->resources, [this](const StoredResource& s) {
      return s.version_id == "1" && directory.read(s.type, s.id).has_value();
    });
    auto commit = commit_of(*result, client.id);
    auto outcome = co_await port.commit(std::move(commit));
    co_return outcome;
  }

  // W3C Trace Context: the request's traceparent goes on with the events it causes, so that one
  // trace spans the clinic or agency system, the gateway and the event's consumers.
  static void carry_trace(const Request& req, pipeline::CommitRequest& commit) {
    const auto trace = req.header("traceparent");
    if (!trace || !events::is_traceparent(*trace)) return;
    for (auto& e : commit.events)
      e.value = events::with_traceparent(std::move(e.value), *trace);
  }

  asio::awaitable<Response> create(Request& req, std::string type) {
    const std::string interaction = type.empty() ? "transaction" : "create";
    const std::string label = type.empty() ? "Bundle" : type;
    auto call = begin(req);
    if (!call) co_return count(problem_response(call.error()), interaction, label);
    if (auto p = type.empty() ? bundle_scope_refusal(call->client, req.body)
                              : scope_refusal(call->client, identity::Interaction::kCreate, type))
      co_return count(problem_response(*p, call->plain_json), interaction, label);
    if (!call->client.clinic()) {
      co_return count(
          problem_response(Problem::forbidden("agency clients update referral Tasks; they do not "
                                              "post screenings or referrals"),
                           call->plain_json),
          interaction, label);
    }
    if (auto p = check_body_type(req, false))
      co_return count(problem_response(*p, call->plain_json), interaction, label);

    IngestRequest in;
    in.body = req.body;
    in.resource_type = type;
    const auto if_none_exist = std::string(req.header("If-None-Exist").value_or(""));
    in.if_none_exist = if_none_exist;
    in.received_at = events::now_rfc3339();
    const auto ctx = context_for(call->client);
    auto result = ingest(in, ctx);

    if (!result) {
      auto& rejected = result.error();
      if (rejected.commit.inbound.protocol.empty())  // nothing to keep (internal failure)
        co_return count(problem_response(rejected.problem, call->plain_json), interaction, label);
      auto commit = std::move(rejected.commit);
      auto outcome = co_await commits.commit(std::move(commit));
      if (!outcome) {
        co_return count(problem_response(commit_problem(outcome.error()), call->plain_json),
                        interaction, label);
      }
      log::info("fhir.rejected", {{"client", call->client.id},
                                  {"type", label},
                                  {"status", rejected.problem.http_status()},
                                  {"code", to_string(rejected.problem.first_error().code)},
                                  {"expression", rejected.problem.first_error().expression}});
      co_return count(problem_response(rejected.problem, call->plain_json), interaction, label);
    }

    auto& done = *result;
    auto commit = commit_of(done, call->client.id);
    commit.actor = {call->client.id, call->client.role, req.peer};
    carry_trace(req, commit);
    auto outcome = co_await commits.commit(std::move(commit));
    if (!outcome) {
      co_return count(problem_response(commit_problem(outcome.error()), call->plain_json),
                      interaction, label);
    }

    Response r;
    if (outcome->status == pipeline::CommitStatus::kDuplicate) {
      // A resend: the original answer. The resource is whatever it is now: the one that answer
      // holds (a new id leads with its creation time, so this request's would differ), else the
      // one this request found again (a conditional create's match).
      const auto* s = !type.empty() && !done.resources.empty() ? &done.resources.front() : nullptr;
      std::string id = s != nullptr ? s->id : std::string();
      if (s != nullptr) {
        const auto named = ids_in_answer(outcome->answer);
        if (auto it = named.find(-1); it != named.end() && it->second.first == s->type)
          id = it->second.second;
      }
      r = stored_answer(*outcome, *call, s != nullptr ? s->type : "", id);
      if (r.status >= 400) co_return count(std::move(r), interaction, label);
    } else {
      r = fhir_response(static_cast<unsigned>(done.http_status), std::move(done.body),
                        call->plain_json);
      if (!done.location.empty()) {
        r.headers.push_back({"Location", call->base + "/" + done.location});
        r.headers.push_back({"ETag", "W/\"" + done.version_id + "\""});
        r.headers.push_back({"Last-Modified", http_date(done.last_modified)});
      }
    }
    if (!type.empty()) {
      if (call->prefer.ret == "minimal") {
        r.body.clear();
      } else if (call->prefer.ret == "OperationOutcome" || (r.body.empty() && r.status < 300)) {
        r.body = done.outcome();
      }
    }
    co_return count(std::move(r), interaction, label);
  }

  // --- read, vread, history, search -----------------------------------------------------

  // Whether the client may see this resource: agencies the Tasks they own, clinics what they
  // sent. Hidden ones are answered 404, as if they did not exist.
  bool visible(const Client& client, const pipeline::ResourceRow& row) const {
    if (client.role == "dev") return true;
    pipeline::ResourceQuery q;
    q.type = row.type;
    q.count = 1;
    q.params.push_back({"_id", {row.id}});
    if (client.role == "agency") {
      if (row.type != "Task" && row.type != "ServiceRequest") return false;
      if (row.type == "ServiceRequest") {
        // An agency sees the ServiceRequest its Task is for.
        pipeline::ResourceQuery tq;
        tq.type = "Task";
        tq.count = 1;
        tq.params.push_back({"focus", {"ServiceRequest/" + row.id}});
        tq.params.push_back({"owner", {client.organization}});
        auto page = resources.search_resources(tq);
        return page && page->total > 0;
      }
      q.params.push_back({"owner", {client.organization}});
    } else {
      return row.source == client.id;
    }
    auto page = resources.search_resources(q);
    return page && page->total > 0;
  }

  // A disclosure is durably recorded before its answer goes out, in the store's group commit; an
  // answer that cannot be recorded is not given (503): nothing leaves unaudited.
  asio::awaitable<std::optional<Response>> audit_disclosure(const Call& call, const Request& req,
                                                            audit::AuditKind kind,
                                                            std::vector<audit::AuditEntity> what) {
    if (options.audit == nullptr) co_return std::nullopt;
    std::vector<audit::AuditRecord> records;
    records.emplace_back(kind, audit::AuditAgent{call.client.id, call.client.role, req.peer},
                         std::move(what));
    auto* trail = options.audit;
    auto recorded = co_await trail->record(std::move(records));
    if (recorded) co_return std::nullopt;
    co_return problem_response(
        Problem{
            FhirErrc::kUnavailable,
            {Issue::error(IssueType::kTransient, "",
                          "the gateway cannot record this access in its audit trail now (" +
                              recorded.error().message + "); nothing was disclosed: retry later")}},
        call.plain_json);
  }

  static Problem not_found(std::string_view type, std::string_view id) {
    return Problem::not_found(std::string(type) + "/" + std::string(id) + " is not known here");
  }

  Response resource_response(const pipeline::ResourceRow& row, const Call& call,
                             const Request& req) const {
    if (auto inm = req.header("If-None-Match"); inm && etag_version(*inm) == row.version) {
      Response r;
      r.status = 304;
      r.content_type.clear();
      r.headers.push_back({"ETag", etag(row.version)});
      return r;
    }
    auto r = fhir_response(200, row.json, call.plain_json);
    r.headers.push_back({"ETag", etag(row.version)});
    r.headers.push_back({"Last-Modified", http_date(row.last_updated)});
    return r;
  }

  asio::awaitable<Response> read(Request& req, std::string type) {
    const bool vread = req.params.contains("vid");
    const std::string interaction = vread ? "vread" : "read";
    auto call = begin(req);
    if (!call) co_return count(problem_response(call.error()), interaction, type);
    if (auto p = scope_refusal(call->client,
                               vread ? identity::Interaction::kVread : identity::Interaction::kRead,
                               type))
      co_return count(problem_response(*p, call->plain_json), interaction, type);
    const auto& id = req.params["id"];
    std::int64_t version = 0;
    if (vread) {
      version = etag_version(req.params["vid"]);
      if (version == 0) co_return count(problem_response(not_found(type, id)), interaction, type);
    }
    auto row = resources.read_resource(type, id, version);
    if (!row) {
      co_return count(problem_response(commit_problem(row.error()), call->plain_json), interaction,
                      type);
    }
    if (!*row || !visible(call->client, **row)) {
      auto p =
          version == 0
              ? not_found(type, id)
              : Problem::not_found(type + "/" + id + " has no version " + std::to_string(version));
      co_return count(problem_response(p, call->plain_json), interaction, type);
    }
    auto answer = resource_response(**row, *call, req);
    // Named locals: GCC 12 mishandles temporaries inside co_await expressions.
    std::vector<audit::AuditEntity> disclosed{
        audit::AuditEntity::resource(type + "/" + (*row)->id)};
    auto refused =
        co_await audit_disclosure(*call, req, audit::AuditKind::kRead, std::move(disclosed));
    if (refused) co_return count(std::move(*refused), interaction, type);
    co_return count(std::move(answer), interaction, type);
  }

  static void entry_resource(std::string& out, const pipeline::ResourceRow& row,
                             const std::string& base) {
    out += "{\"fullUrl\":";
    append_json_string(out, base + "/" + row.type + "/" + row.id);
    out += ",\"resource\":";
    out += row.json;
  }

  asio::awaitable<Response> history(Request& req, std::string type) {
    auto call = begin(req);
    if (!call) co_return count(problem_response(call.error()), "history-instance", type);
    if (auto p = scope_refusal(call->client, identity::Interaction::kHistoryInstance, type))
      co_return count(problem_response(*p, call->plain_json), "history-instance", type);
    const auto& id = req.params["id"];
    auto rows = resources.resource_history(type, id);
    if (!rows) {
      co_return count(problem_response(commit_problem(rows.error()), call->plain_json),
                      "history-instance", type);
    }
    if (rows->empty() || !visible(call->client, rows->front())) {
      co_return count(problem_response(not_found(type, id), call->plain_json), "history-instance",
                      type);
    }
    std::string out = "{\"resourceType\":\"Bundle\",\"type\":\"history\",\"total\":" +
                      std::to_string(rows->size()) + ",\"link\":[{\"relation\":\"self\",\"url\":";
    append_json_string(out, call->base + "/" + type + "/" + id + "/_history");
    out += "}],\"entry\":[";
    bool first = true;
    for (const auto& row : *rows) {
      if (!first) out += ',';
      first = false;
      entry_resource(out, row, call->base);
      const bool created = row.version == 1;
      out += ",\"request\":{\"method\":";
      out += created ? "\"POST\",\"url\":" : "\"PUT\",\"url\":";
      append_json_string(out, created ? type : type + "/" + id);
      out += "},\"response\":{\"status\":";
      out += created ? "\"201 Created\"" : "\"200 OK\"";
      out += ",\"etag\":";
      append_json_string(out, etag(row.version));
      out += ",\"lastModified\":";
      append_json_string(out, row.last_updated);
      out += "}}";
    }
    out += "]}";
    std::vector<audit::AuditEntity> disclosed{audit::AuditEntity::resource(type + "/" + id)};
    auto refused =
        co_await audit_disclosure(*call, req, audit::AuditKind::kHistory, std::move(disclosed));
    if (refused) co_return count(std::move(*refused), "history-instance", type);
    co_return count(fhir_response(200, std::move(out), call->plain_json), "history-instance", type);
  }

  asio::awaitable<Response> search(Request& req, std::string type) {
    auto call = begin(req);
    if (!call) co_return count(problem_response(call.error()), "search-type", type);
    if (auto p = scope_refusal(call->client, identity::Interaction::kSearchType, type))
      co_return count(problem_response(*p, call->plain_json), "search-type", type);
    pipeline::ResourceQuery q;
    q.type = type;
    q.count = kDefaultPageSize;
    std::vector<std::string> used;  // "name=value" for the self link
    std::vector<Issue> ignored;
    // Parameters in the order sent; each may repeat (AND) and hold a comma list (OR).
    const auto params = req.query_params();
    auto bad = [&](std::string expression, std::string text) {
      Problem p =
          Problem::bad_request(IssueType::kNotSupported, std::move(expression), std::move(text));
      return count(problem_response(p, call->plain_json), "search-type", type);
    };
    for (const auto& [name, value, as_sent] : params) {
      if (name == "_format") continue;
      if (name == "_count") {
        int n = 0;
        auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
        if (ec != std::errc() || p != value.data() + value.size() || n < 0)
          co_return bad("_count", "_count must be a non-negative integer");
        q.count = std::min(n, kMaxPageSize);
        continue;
      }
      if (name == "_getpagesoffset") {
        int n = 0;
        auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
        if (ec != std::errc() || p != value.data() + value.size() || n < 0)
          co_return bad("_getpagesoffset", "_getpagesoffset must be a non-negative integer");
        q.offset = n;
        continue;
      }
      static const std::vector<std::string> kParams = {"_id",        "focus",          "owner",
                                                       "status",     "patient",        "requester",
                                                       "identifier", "business-status"};
      if (std::find(kParams.begin(), kParams.end(), name) == kParams.end()) {
        if (call->prefer.strict)
          co_return bad(name, "the search parameter " + name + " is not supported for " + type);
        ignored.push_back(
            Issue::warning(IssueType::kNotSupported, name,
                           "the search parameter " + name + " is not supported and was ignored"));
        continue;
      }
      if (value.empty()) co_return bad(name, "the search parameter " + name + " has no value");
      std::vector<std::string> values;
      std::string_view v = value;
      while (true) {
        const auto comma = v.find(',');
        const auto one = v.substr(0, comma);
        std::string norm(one);
        if (name == "focus") norm = reference_value(one, "ServiceRequest");
        if (name == "patient") norm = reference_value(one, "Patient");
        if (name == "requester") norm = reference_value(one, "Organization");
        if (name == "owner")
          norm = agency_id_of(
              Reference{std::string(reference_value(one, "Organization")), {}, "", ""});
        values.push_back(std::move(norm));
        if (comma == std::string_view::npos) break;
        v = v.substr(comma + 1);
      }
      used.push_back(name + "=" + value);
      q.params.emplace_back(name, std::move(values));
    }
    // What the client may see.
    if (call->client.role == "agency") q.params.push_back({"owner", {call->client.organization}});
    if (call->client.role == "clinic") q.params.push_back({"_sender", {call->client.id}});

    auto page = resources.search_resources(q);
    if (!page) {
      co_return count(problem_response(commit_problem(page.error()), call->plain_json),
                      "search-type", type);
    }
    auto link = [&](int offset) {
      std::string url = call->base + "/" + type + "?";
      for (const auto& u : used)
        url += u + "&";
      url += "_count=" + std::to_string(q.count) + "&_getpagesoffset=" + std::to_string(offset);
      return url;
    };
    std::string out = searchset_head(page->total, q.offset, q.count, link);
    bool first = true;
    for (const auto& row : page->rows) {
      if (!first) out += ',';
      first = false;
      entry_resource(out, row, call->base);
      out += ",\"search\":{\"mode\":\"match\"}}";
    }
    if (!ignored.empty()) {
      if (!first) out += ',';
      out += "{\"resource\":" + operation_outcome_json(ignored) +
             ",\"search\":{\"mode\":\"outcome\"}}";
    }
    out += "]}";
    // What the search disclosed: each resource on the page.
    std::vector<audit::AuditEntity> disclosed;
    for (const auto& row : page->rows)
      disclosed.push_back(audit::AuditEntity::resource(row.type + "/" + row.id));
    auto refused =
        co_await audit_disclosure(*call, req, audit::AuditKind::kSearch, std::move(disclosed));
    if (refused) co_return count(std::move(*refused), "search-type", type);
    co_return count(fhir_response(200, std::move(out), call->plain_json), "search-type", type);
  }

  // --- update / patch -------------------------------------------------------------------

  asio::awaitable<Response> update(Request& req, bool patch) {
    const std::string interaction = patch ? "patch" : "update";
    const std::string type = "Task";
    auto call = begin(req);
    if (!call) co_return count(problem_response(call.error()), interaction, type);
    if (auto p = scope_refusal(
            call->client, patch ? identity::Interaction::kPatch : identity::Interaction::kUpdate,
            type))
      co_return count(problem_response(*p, call->plain_json), interaction, type);
    const auto id = req.params["id"];
    if (auto p = check_body_type(req, patch))
      co_return count(problem_response(*p, call->plain_json), interaction, type);
    auto current = resources.read_resource(type, id);
    if (!current) {
      co_return count(problem_response(commit_problem(current.error()), call->plain_json),
                      interaction, type);
    }
    if (!*current || !visible(call->client, **current)) {
      Problem p = !*current ? not_found(type, id)
                            : Problem::not_found(type + "/" + id + " is not known here");
      if (!*current) {
        p.issues.front().diagnostics +=
            ": referral Tasks are created with POST /fhir/Task or in a Bundle (update as create "
            "is not supported)";
      }
      co_return count(problem_response(p, call->plain_json), interaction, type);
    }
    const auto& row = **current;
    if (auto im = req.header("If-Match")) {
      const auto wanted = etag_version(*im);
      if (wanted != row.version) {
        auto p = Problem::precondition_failed(
            "If-Match names version " +
            (wanted == 0 ? std::string(trim_blanks(*im)) : std::to_string(wanted)) +
            "; the current version is " + std::to_string(row.version));
        auto r = problem_response(p, call->plain_json);
        r.headers.push_back({"ETag", etag(row.version)});
        co_return count(std::move(r), interaction, type);
      }
    }

    const auto received_at = events::now_rfc3339();
    const auto key = "Task/" + id + "/" + std::to_string(row.version) + "|" +
                     (patch ? "patch|" : "put|") + identity::sha256_hex(req.body);
    auto ctx = context_for(call->client);
    // A refusal: dead-lettered with the request, answered with its OperationOutcome.
    auto refuse = [&](Problem p, std::string stage) -> asio::awaitable<Response> {
      auto rejected =
          rejection(std::move(p), stage, ctx, key, "Task-" + interaction, req.body, received_at);
      auto commit = std::move(rejected.commit);
      auto outcome = co_await commits.commit(std::move(commit));
      if (!outcome) {
        co_return count(problem_response(commit_problem(outcome.error()), call->plain_json),
                        interaction, type);
      }
      log::info("fhir.update_refused", {{"client", call->client.id},
                                        {"status", rejected.problem.http_status()},
                                        {"code", to_string(rejected.problem.first_error().code)},
                                        {"reason", rejected.problem.first_error().diagnostics}});
      co_return count(problem_response(rejected.problem, call->plain_json), interaction, type);
    };

    std::string updated_json;
    if (patch) {
      auto patched = apply_json_patch(row.json, req.body);
      if (!patched) co_return co_await refuse(std::move(patched.error()), "validate");
      updated_json = std::move(*patched);
    } else {
      updated_json = req.body;
    }
    TaskChange change;
    change.current = &row;
    change.updated_json = std::move(updated_json);
    change.client = call->client;
    if (options.find_referral) change.referral = options.find_referral(id);
    change.received_at = received_at;
    change.inbound = {"fhir", call->client.id, key, "Task-" + interaction, "", "", req.body};
    auto prepared = prepare_task_change(std::move(change), service);
    if (!prepared) {
      const auto stage = prepared.error().code == FhirErrc::kBadRequest ? "validate" : "lifecycle";
      co_return co_await refuse(std::move(prepared.error()), stage);
    }
    auto update = std::move(prepared->update);
    const auto version = prepared->version;
    const auto stored = prepared->stored_json;
    auto commit = std::move(prepared->commit);
    commit.actor = {call->client.id, call->client.role, req.peer};
    carry_trace(req, commit);
    auto outcome = co_await commits.commit(std::move(commit));
    if (!outcome) {
      if (outcome.error().kind == ErrorKind::kConflict) {
        // Another update won the race for this version.
        auto p = req.header("If-Match")
                     ? Problem::precondition_failed(
                           "the Task changed while this update was "
                           "applied; read it again")
                     : Problem::conflict(
                           "the Task changed while this update was applied; read "
                           "it again");
        co_return count(problem_response(p, call->plain_json), interaction, type);
      }
      co_return count(problem_response(commit_problem(outcome.error()), call->plain_json),
                      interaction, type);
    }
    Response r;
    if (outcome->status == pipeline::CommitStatus::kDuplicate) {
      r = stored_answer(*outcome, *call, type, id);
      co_return count(std::move(r), interaction, type);
    }
    log::info("fhir.task_updated", {{"client", call->client.id},
                                    {"version", version},
                                    {"status", mapping::to_string(update.status)},
                                    {"previous", mapping::to_string(update.previous)}});
    r = fhir_response(200, stored, call->plain_json);
    r.headers.push_back({"ETag", etag(version)});
    r.headers.push_back({"Last-Modified", http_date(received_at)});
    r.headers.push_back(
        {"Location", call->base + "/Task/" + id + "/_history/" + std::to_string(version)});
    if (call->prefer.ret == "minimal") r.body.clear();
    if (call->prefer.ret == "OperationOutcome") r.body = operation_outcome_json(update.warnings);
    co_return count(std::move(r), interaction, type);
  }

  // --- metadata -------------------------------------------------------------------------
};

Api::Api(const mapping::ScreeningMapper& mapper, pipeline::CommitPort& commits,
         const pipeline::ResourceReader& resources, ApiOptions options, metrics::Registry& registry)
    : impl_(std::make_unique<Impl>(mapper, commits, resources, std::move(options), registry)) {}

Api::~Api() = default;

asio::awaitable<Result<pipeline::CommitOutcome>> Api::replay(std::string sender,
                                                             std::string message_type,
                                                             std::string payload,
                                                             std::string earlier_answer,
                                                             pipeline::CommitPort& port) {
  co_return co_await impl_->replay(std::move(sender), std::move(message_type), std::move(payload),
                                   std::move(earlier_answer), port);
}

std::expected<Client, Problem> Api::authenticate(const http::Request& req) const {
  return impl_->authenticate(req);
}

std::string Api::base_url(const http::Request& req) const {
  return impl_->base_url(req);
}

const std::string& Api::capability_statement() const {
  return impl_->capability;
}

void Api::add_routes(http::Router& router) {
  Impl* s = impl_.get();
  // Every interaction is answered on the store executor (its reads block), not the I/O thread.
  auto add = [s, &router](std::string method, std::string pattern, http::Handler handler) {
    if (auto* store_threads = s->options.store_executor)
      handler = store_threads->wrap(std::move(handler));
    // What a sender posts is counted by client and status for the ops API (reads are not).
    if (s->options.throughput != nullptr && method != "GET") {
      handler = [s, inner = std::move(handler)](Request& req) -> asio::awaitable<Response> {
        auto r = co_await inner(req);
        const auto client = s->authenticate(req);
        s->options.throughput->record("fhir", client ? client->id : "(unauthenticated)",
                                      std::to_string(r.status));
        co_return r;
      };
    }
    router.add(std::move(method), std::move(pattern), std::move(handler));
  };
  router.set_error_body(
      "/fhir", [](unsigned status, std::string_view code, std::string_view message) {
        IssueType type = IssueType::kProcessing;
        if (status == 404) type = IssueType::kNotFound;
        if (status == 405) type = IssueType::kNotSupported;
        if (status == 413) type = IssueType::kTooLong;
        if (status == 431) type = IssueType::kTooLong;
        if (status == 400) type = IssueType::kStructure;
        if (status >= 500) type = IssueType::kException;
        (void)code;
        Response r;
        r.status = status;
        r.content_type = std::string(kFhirJson);
        r.body = operation_outcome_json({Issue::error(type, "", std::string(message))});
        return r;
      });
  add("GET", "/fhir/metadata", [s](Request& req) -> asio::awaitable<Response> {
    auto format = req.query_value("_format");
    if (format && !json_media(media_type(*format))) {
      Problem p{FhirErrc::kNotAcceptable,
                {Issue::error(IssueType::kNotSupported, "_format",
                              "this server answers in JSON only (_format=json)")}};
      co_return s->count(problem_response(p), "capabilities", "CapabilityStatement");
    }
    auto body = s->capability;
    const auto base = s->base_url(req);
    if (auto at = body.find(kCapabilityTokenUrl);
        at != std::string::npos && s->options.token_endpoint)
      body.replace(at, kCapabilityTokenUrl.size(), s->options.token_endpoint(base));
    if (auto at = body.find(kCapabilityBase); at != std::string::npos)
      body.replace(at, kCapabilityBase.size(), base);
    co_return s->count(fhir_response(200, std::move(body)), "capabilities", "CapabilityStatement");
  });
  add("POST", "/fhir",
      [s](Request& req) -> asio::awaitable<Response> { co_return co_await s->create(req, ""); });
  for (const auto& t : creatable_types()) {
    const std::string type = t.type;
    add("POST", "/fhir/" + type, [s, type](Request& req) -> asio::awaitable<Response> {
      co_return co_await s->create(req, type);
    });
  }
  for (const std::string type : {"Task", "ServiceRequest"}) {
    add("GET", "/fhir/" + type + "/{id}", [s, type](Request& req) -> asio::awaitable<Response> {
      co_return co_await s->read(req, type);
    });
  }
  add("GET", "/fhir/Task", [s](Request& req) -> asio::awaitable<Response> {
    co_return co_await s->search(req, "Task");
  });
  add("GET", "/fhir/Task/{id}/_history", [s](Request& req) -> asio::awaitable<Response> {
    co_return co_await s->history(req, "Task");
  });
  add("GET", "/fhir/Task/{id}/_history/{vid}",
      [s](Request& req) -> asio::awaitable<Response> { co_return co_await s->read(req, "Task"); });
  add("PUT", "/fhir/Task/{id}",
      [s](Request& req) -> asio::awaitable<Response> { co_return co_await s->update(req, false); });
  add("PATCH", "/fhir/Task/{id}",
      [s](Request& req) -> asio::awaitable<Response> { co_return co_await s->update(req, true); });
}

}  // namespace sdoh::fhir
