// adapters/fhir/api.cpp: the /fhir routes end to end over an in-memory store (commit port and
// resource reader), through the Router as the HTTP server calls them: statuses, headers,
// OperationOutcomes, what is committed, and the Task lifecycle updates.
#include "adapters/fhir/api.hpp"

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <rapidjson/pointer.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "gateway/events/schema_catalog.hpp"
#include "gateway/mapping/engine.hpp"
#include "gateway/metrics/registry.hpp"
#include "tests/unit/support/shipped.hpp"

namespace sdoh::fhir {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using test::kSchemas;

std::string sample(const std::string& name) {
  return test::shared_sample("fhir", name);
}

rapidjson::Document parse(const std::string& json) {
  return test::parse_json(json);
}

std::string field(const std::string& json, const char* pointer) {
  auto doc = parse(json);
  const auto* v = rapidjson::Pointer(pointer).Get(doc);
  if (v == nullptr) return "<absent>";
  if (v->IsString()) return v->GetString();
  if (v->IsInt64()) return std::to_string(v->GetInt64());
  if (v->IsBool()) return v->GetBool() ? "true" : "false";
  return "<other>";
}

// The store as the API sees it: a commit port with dedupe, version checks and a resource
// table with search parameters.
class MemoryStore final : public pipeline::CommitPort, public pipeline::ResourceReader {
 public:
  struct Stored {
    std::vector<pipeline::ResourceRow> versions;  // oldest first
    std::vector<std::pair<std::string, std::string>> search;
  };
  std::map<std::string, pipeline::CommitOutcome> inbound;  // sender|key → original outcome
  std::vector<pipeline::CommitRequest> committed;
  std::map<std::string, Stored> resources;         // "Type/id"
  std::map<std::string, std::string> identifiers;  // "Type|system|value" → id
  std::map<std::string, pipeline::ReferralState> referrals;
  bool unavailable = false;

  asio::awaitable<Result<pipeline::CommitOutcome>> commit(pipeline::CommitRequest r) override {
    if (unavailable) co_return fail(Error::unavailable("disk I/O error"));
    const auto key = r.inbound.protocol + "|" + r.inbound.sender + "|" + r.inbound.dedupe_key;
    if (auto it = inbound.find(key); it != inbound.end()) {
      auto dup = it->second;
      dup.status = pipeline::CommitStatus::kDuplicate;
      co_return dup;
    }
    for (const auto& w : r.resources) {
      auto it = resources.find(w.type + "/" + w.id);
      const std::int64_t current = it == resources.end() ? 0 : it->second.versions.back().version;
      if (current != w.expected_version) {
        co_return fail(
            Error::conflict(w.type + "/" + w.id + " is at version " + std::to_string(current)));
      }
    }
    for (const auto& w : r.resources) {
      auto& s = resources[w.type + "/" + w.id];
      s.versions.push_back({w.type, w.id, w.version, w.last_updated, w.json, w.source});
      s.search = w.search;
      for (const auto& [system, value] : w.identifiers)
        identifiers[w.type + "|" + system + "|" + value] = w.id;
    }
    for (const auto& st : r.referrals)
      referrals[st.referral_id] = st;
    pipeline::CommitOutcome out;
    out.answer_code = r.inbound.answer_code;
    out.answer = r.inbound.answer;
    inbound[key] = out;
    committed.push_back(std::move(r));
    co_return out;
  }

  Result<std::optional<pipeline::ResourceRow>> read_resource(std::string_view type,
                                                             std::string_view id,
                                                             std::int64_t version) const override {
    auto it = resources.find(std::string(type) + "/" + std::string(id));
    if (it == resources.end()) return std::optional<pipeline::ResourceRow>{};
    if (version == 0) return std::optional(it->second.versions.back());
    for (const auto& v : it->second.versions) {
      if (v.version == version) return std::optional(v);
    }
    return std::optional<pipeline::ResourceRow>{};
  }
  Result<std::optional<std::string>> find_resource_id(std::string_view type,
                                                      std::string_view system,
                                                      std::string_view value) const override {
    auto it =
        identifiers.find(std::string(type) + "|" + std::string(system) + "|" + std::string(value));
    if (it == identifiers.end()) return std::optional<std::string>{};
    return std::optional(it->second);
  }
  Result<pipeline::ResourcePage> search_resources(const pipeline::ResourceQuery& q) const override {
    pipeline::ResourcePage page;
    std::vector<pipeline::ResourceRow> all;
    for (const auto& [key, s] : resources) {
      if (s.versions.back().type != q.type) continue;
      bool ok = true;
      for (const auto& [name, values] : q.params) {
        bool any = false;
        for (const auto& [n, v] : s.search) {
          if (n == name && std::find(values.begin(), values.end(), v) != values.end()) any = true;
        }
        ok = ok && any;
      }
      if (ok) all.push_back(s.versions.back());
    }
    page.total = static_cast<std::int64_t>(all.size());
    for (int i = q.offset; i < static_cast<int>(all.size()) && i < q.offset + q.count; ++i)
      page.rows.push_back(all[static_cast<std::size_t>(i)]);
    return page;
  }
  Result<std::vector<pipeline::ResourceRow>> resource_history(std::string_view type,
                                                              std::string_view id) const override {
    std::vector<pipeline::ResourceRow> out;
    auto it = resources.find(std::string(type) + "/" + std::string(id));
    if (it != resources.end()) out.assign(it->second.versions.rbegin(), it->second.versions.rend());
    return out;
  }

  std::vector<pipeline::OutboxEvent> events() const {
    std::vector<pipeline::OutboxEvent> out;
    for (const auto& c : committed)
      out.insert(out.end(), c.events.begin(), c.events.end());
    return out;
  }
};

class FhirApiTest : public ::testing::Test {
 protected:
  FhirApiTest() {
    mapper_ = test::shipped_mapper(mapper_metrics_);
    catalog_ = test::shipped_catalog();
  }

  void start(ApiOptions options = {}) {
    options.software_version = "test";
    options.find_referral =
        [this](const std::string& id) -> std::optional<pipeline::ReferralState> {
      auto it = store_.referrals.find(id);
      if (it == store_.referrals.end()) return std::nullopt;
      return it->second;
    };
    api_ = std::make_unique<Api>(*mapper_, store_, store_, std::move(options), registry_);
    router_ = http::Router();
    api_->add_routes(router_);
  }

  void with_clients() {
    ApiOptions o;
    o.token_clients.push_back(
        {std::string(32, 'c'), Client{"clinic-a", "clinic", "PEDS_A", "A", std::nullopt}});
    o.token_clients.push_back(
        {std::string(32, 'h'), Client{"ehv", "agency", "ehv-durham", "EHV", std::nullopt}});
    o.token_clients.push_back(
        {std::string(32, 'w'), Client{"wic", "agency", "wic-east", "WIC", std::nullopt}});
    start(std::move(o));
  }

  http::Response call(std::string method, std::string target, std::string body = {},
                      std::vector<http::Header> headers = {}) {
    http::Request req;
    req.method = std::move(method);
    req.target = std::move(target);
    const auto q = req.target.find('?');
    req.path = req.target.substr(0, q);
    if (q != std::string::npos) req.query = req.target.substr(q + 1);
    req.headers = std::move(headers);
    req.headers.push_back({"Host", "gw.test"});
    req.body = std::move(body);
    auto match = router_.match(req.method, req.path);
    if (match.handler == nullptr)
      return router_.error_response(req.path, match.status, "x", "no route");
    req.params = match.params;
    asio::io_context ioc;
    auto fut = asio::co_spawn(ioc, (*match.handler)(req), asio::use_future);
    ioc.run();
    return fut.get();
  }

  static std::vector<http::Header> json_type(std::vector<http::Header> more = {}) {
    more.push_back({"Content-Type", "application/fhir+json"});
    return more;
  }

  static std::string header(const http::Response& r, std::string_view name) {
    for (const auto& h : r.headers) {
      if (h.name == name) return h.value;
    }
    return "<absent>";
  }

  // Posts the shared transaction sample; returns the referral Task's id.
  std::string post_referral(std::vector<http::Header> auth = {}) {
    auto r = call("POST", "/fhir", sample("bundle-transaction-screening-consent-referral.json"),
                  json_type(auth));
    EXPECT_EQ(r.status, 200u) << r.body;
    auto doc = parse(r.body);
    for (const auto& e : doc["entry"].GetArray()) {
      std::string loc = e["response"]["location"].GetString();
      if (loc.starts_with("Task/")) return loc.substr(5, loc.find('/', 5) - 5);
    }
    ADD_FAILURE() << "no Task in " << r.body;
    return {};
  }

  void expect_valid_events() {
    for (const auto& e : store_.events()) {
      auto valid = catalog_->validate_event(e.value);
      EXPECT_TRUE(valid) << (valid ? "" : valid.error().message) << "\n" << e.value;
    }
  }

  metrics::Registry mapper_metrics_;
  metrics::Registry registry_;
  std::unique_ptr<mapping::ScreeningMapper> mapper_;
  std::unique_ptr<events::SchemaCatalog> catalog_;
  MemoryStore store_;
  std::unique_ptr<Api> api_;
  http::Router router_;
};

TEST_F(FhirApiTest, CapabilityStatementListsExactlyWhatIsServed) {
  start();
  auto r = call("GET", "/fhir/metadata");
  ASSERT_EQ(r.status, 200u);
  EXPECT_EQ(r.content_type, "application/fhir+json; charset=utf-8");
  auto doc = parse(r.body);
  EXPECT_STREQ(doc["resourceType"].GetString(), "CapabilityStatement");
  EXPECT_STREQ(doc["fhirVersion"].GetString(), "4.0.1");
  std::map<std::string, std::set<std::string>> interactions;
  for (const auto& res : doc["rest"][0]["resource"].GetArray()) {
    for (const auto& i : res["interaction"].GetArray())
      interactions[res["type"].GetString()].insert(i["code"].GetString());
  }
  EXPECT_EQ(interactions.size(), 6u);
  EXPECT_EQ(interactions["Task"],
            (std::set<std::string>{"create", "read", "vread", "update", "patch", "history-instance",
                                   "search-type"}));
  EXPECT_EQ(interactions["ServiceRequest"], (std::set<std::string>{"create", "read"}));
  EXPECT_EQ(interactions["QuestionnaireResponse"], (std::set<std::string>{"create"}));
  // Every interaction listed has a route, and a type not listed has none.
  for (const auto& [type, codes] : interactions) {
    EXPECT_NE(router_.match("POST", "/fhir/" + type).handler, nullptr) << type;
    if (codes.contains("read"))
      EXPECT_NE(router_.match("GET", "/fhir/" + type + "/x").handler, nullptr) << type;
    else
      EXPECT_EQ(router_.match("GET", "/fhir/" + type + "/x").handler, nullptr) << type;
  }
  EXPECT_EQ(router_.match("POST", "/fhir/Encounter").handler, nullptr);
  std::set<std::string> params;
  for (const auto& p : doc["rest"][0]["resource"][3]["searchParam"].GetArray())
    params.insert(p["name"].GetString());
  EXPECT_TRUE(params.contains("focus") && params.contains("owner") && params.contains("status") &&
              params.contains("patient"));
}

TEST_F(FhirApiTest, CreateAnswers201WithLocationEtagAndLastModifiedAfterTheCommit) {
  start();
  auto r = call("POST", "/fhir/QuestionnaireResponse",
                sample("questionnaireresponse-hunger-vital-sign.json"), json_type());
  ASSERT_EQ(r.status, 201u) << r.body;
  const auto id = field(r.body, "/id");
  EXPECT_EQ(header(r, "Location"),
            "http://gw.test/fhir/QuestionnaireResponse/" + id + "/_history/1");
  EXPECT_EQ(header(r, "ETag"), "W/\"1\"");
  EXPECT_TRUE(header(r, "Last-Modified").ends_with(" GMT")) << header(r, "Last-Modified");
  EXPECT_EQ(field(r.body, "/meta/versionId"), "1");
  ASSERT_EQ(store_.committed.size(), 1u);
  EXPECT_EQ(store_.committed[0].inbound.answer_code, "201");
  ASSERT_EQ(store_.committed[0].resources.size(), 1u);
  EXPECT_EQ(store_.committed[0].resources[0].source, "dev");
  ASSERT_EQ(store_.events().size(), 1u);
  EXPECT_EQ(store_.events()[0].type, "org.sdoh.screening.v1");
  expect_valid_events();
}

TEST_F(FhirApiTest, AResendGetsTheOriginalAnswerAndAddsNothing) {
  start();
  const auto body = sample("questionnaireresponse-hunger-vital-sign.json");
  auto first = call("POST", "/fhir/QuestionnaireResponse", body, json_type());
  // A later millisecond: the resend's own id would differ (it leads with the time received), and
  // the Location must still name the resource the first request created.
  std::this_thread::sleep_for(std::chrono::milliseconds(3));
  auto second = call("POST", "/fhir/QuestionnaireResponse", body, json_type());
  EXPECT_EQ(second.status, first.status);
  EXPECT_EQ(second.body, first.body);
  EXPECT_EQ(header(second, "Location"), header(first, "Location"));
  EXPECT_EQ(store_.committed.size(), 1u);
  EXPECT_EQ(store_.events().size(), 1u);
}

// After the dedupe window (the store no longer knows the request), the same transaction comes
// again: its ServiceRequest has no identifier, so its referral is numbered by the
// ServiceRequest's id. That id finds the stored ServiceRequest and its referral instead of
// failing the whole Bundle as "already exists" or opening a second referral.
TEST_F(FhirApiTest, AResendAfterTheWindowFindsAServiceRequestNumberedByItsId) {
  start();
  auto doc = parse(sample("bundle-transaction-screening-consent-referral.json"));
  doc["entry"][3]["resource"].RemoveMember("identifier");
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  doc.Accept(w);
  const std::string bundle = buf.GetString();
  auto first = call("POST", "/fhir", bundle, json_type());
  ASSERT_EQ(first.status, 200u) << first.body;
  const auto referrals = store_.referrals.size();
  ASSERT_EQ(referrals, 1u);
  store_.inbound.clear();  // the dedupe window has passed
  std::this_thread::sleep_for(std::chrono::milliseconds(3));
  auto again = call("POST", "/fhir", bundle, json_type());
  ASSERT_EQ(again.status, 200u) << again.body;
  ASSERT_EQ(store_.committed.size(), 2u);
  for (const auto& r : store_.committed[1].resources)
    EXPECT_NE(r.type, "ServiceRequest") << "stored again";
  EXPECT_EQ(store_.referrals.size(), referrals);
}

TEST_F(FhirApiTest, PreferMinimalAndOperationOutcome) {
  start();
  const auto body = sample("observation-screening-response-food.json");
  auto minimal = call("POST", "/fhir/Observation", body, json_type({{"Prefer", "return=minimal"}}));
  EXPECT_EQ(minimal.status, 201u);
  EXPECT_TRUE(minimal.body.empty());
  EXPECT_NE(header(minimal, "Location"), "<absent>");
  auto outcome =
      call("POST", "/fhir/Observation", body, json_type({{"Prefer", "return=OperationOutcome"}}));
  EXPECT_EQ(field(outcome.body, "/resourceType"), "OperationOutcome");
}

TEST_F(FhirApiTest, XmlIs415AndAskingForXmlIs406WithOperationOutcomes) {
  start();
  auto xml = call("POST", "/fhir/Observation", "<Observation xmlns=\"http://hl7.org/fhir\"/>",
                  {{"Content-Type", "application/fhir+xml"}});
  EXPECT_EQ(xml.status, 415u);
  EXPECT_EQ(field(xml.body, "/resourceType"), "OperationOutcome");
  EXPECT_EQ(field(xml.body, "/issue/0/code"), "not-supported");
  auto none = call("POST", "/fhir/Observation", "{}", {});
  EXPECT_EQ(none.status, 415u);
  auto format = call("GET", "/fhir/Task?_format=xml");
  EXPECT_EQ(format.status, 406u);
  EXPECT_EQ(field(format.body, "/issue/0/expression/0"), "_format");
  auto accept = call("GET", "/fhir/metadata", "", {{"Accept", "application/fhir+xml"}});
  EXPECT_EQ(accept.status, 200u);  // metadata: JSON whatever the Accept says (no XML here)
  auto plain = call("POST", "/fhir/Observation", sample("observation-screening-response-food.json"),
                    json_type({{"Accept", "application/json"}}));
  EXPECT_EQ(plain.status, 201u);
  EXPECT_EQ(plain.content_type, "application/json; charset=utf-8");
  EXPECT_TRUE(store_.committed.size() == 1u);  // refusals before reading the body keep nothing
}

TEST_F(FhirApiTest, InvalidResourceIs400WithExpressionAndADeadLetter) {
  start();
  auto r =
      call("POST", "/fhir/Observation", sample("observation-bad-missing-code.json"), json_type());
  ASSERT_EQ(r.status, 400u) << r.body;
  EXPECT_EQ(field(r.body, "/issue/0/severity"), "error");
  EXPECT_EQ(field(r.body, "/issue/0/expression/0"), "Observation.code");
  ASSERT_EQ(store_.committed.size(), 1u);
  ASSERT_TRUE(store_.committed[0].dead_letter.has_value());
  EXPECT_EQ(store_.committed[0].dead_letter->location, "Observation.code");
  EXPECT_EQ(store_.committed[0].inbound.answer_code, "400");
  EXPECT_EQ(store_.events()[0].type, "org.sdoh.deadletter.v1");
  expect_valid_events();
}

TEST_F(FhirApiTest, StoreUnavailableIs503WithRetryAfter) {
  start();
  store_.unavailable = true;
  auto r = call("POST", "/fhir/QuestionnaireResponse",
                sample("questionnaireresponse-hunger-vital-sign.json"), json_type());
  EXPECT_EQ(r.status, 503u);
  EXPECT_EQ(header(r, "Retry-After"), "5");
  EXPECT_EQ(field(r.body, "/issue/0/code"), "transient");
}

TEST_F(FhirApiTest, ServerMadeErrorsUnderFhirAreOperationOutcomes) {
  start();
  auto r = call("GET", "/fhir/Encounter/1");
  EXPECT_EQ(r.status, 404u);
  EXPECT_EQ(field(r.body, "/resourceType"), "OperationOutcome");
  auto big = router_.error_response("/fhir/Observation", 413, "payload_too_large", "too big");
  EXPECT_EQ(big.status, 413u);
  EXPECT_EQ(field(big.body, "/issue/0/code"), "too-long");
  EXPECT_EQ(router_.error_response("/metrics", 404, "not_found", "x").content_type,
            "application/json");
}

TEST_F(FhirApiTest, TransactionThenReadSearchAndHistoryOfTheTask) {
  start();
  const auto task = post_referral();
  ASSERT_FALSE(task.empty());
  auto read = call("GET", "/fhir/Task/" + task);
  ASSERT_EQ(read.status, 200u) << read.body;
  EXPECT_EQ(field(read.body, "/status"), "requested");
  EXPECT_EQ(header(read, "ETag"), "W/\"1\"");
  auto not_modified = call("GET", "/fhir/Task/" + task, "", {{"If-None-Match", "W/\"1\""}});
  EXPECT_EQ(not_modified.status, 304u);
  const auto focus = field(read.body, "/focus/reference");
  auto sr = call("GET", "/fhir/" + focus);
  EXPECT_EQ(sr.status, 200u);

  auto by_owner = call("GET", "/fhir/Task?owner=Organization/ehv-durham&status=requested");
  ASSERT_EQ(by_owner.status, 200u) << by_owner.body;
  EXPECT_EQ(field(by_owner.body, "/type"), "searchset");
  EXPECT_EQ(field(by_owner.body, "/total"), "1");
  EXPECT_EQ(field(by_owner.body, "/entry/0/resource/id"), task);
  EXPECT_EQ(field(by_owner.body, "/entry/0/fullUrl"), "http://gw.test/fhir/Task/" + task);
  auto by_focus = call("GET", "/fhir/Task?focus=" + focus);
  EXPECT_EQ(field(by_focus.body, "/total"), "1");
  const auto patient = field(read.body, "/for/reference");
  auto by_patient = call("GET", "/fhir/Task?patient=" + patient.substr(8));
  EXPECT_EQ(field(by_patient.body, "/total"), "1");
  auto other = call("GET", "/fhir/Task?owner=wic-east,legal-aid");
  EXPECT_EQ(field(other.body, "/total"), "0");
  auto either = call("GET", "/fhir/Task?status=accepted,requested");
  EXPECT_EQ(field(either.body, "/total"), "1");
  auto unknown = call("GET", "/fhir/Task?code=fulfill");
  EXPECT_EQ(unknown.status, 200u);
  EXPECT_EQ(field(unknown.body, "/entry/1/search/mode"), "outcome");
  auto strict = call("GET", "/fhir/Task?code=fulfill", "", {{"Prefer", "handling=strict"}});
  EXPECT_EQ(strict.status, 400u);
  auto bad_count = call("GET", "/fhir/Task?_count=x");
  EXPECT_EQ(bad_count.status, 400u);

  auto history = call("GET", "/fhir/Task/" + task + "/_history");
  EXPECT_EQ(field(history.body, "/type"), "history");
  EXPECT_EQ(field(history.body, "/total"), "1");
  auto missing = call("GET", "/fhir/Task/nope");
  EXPECT_EQ(missing.status, 404u);
  EXPECT_EQ(field(missing.body, "/issue/0/code"), "not-found");
  expect_valid_events();
}

TEST_F(FhirApiTest, PatchMovesTheReferralAndPublishesOneStatusEvent) {
  start();
  const auto task = post_referral();
  const auto before = store_.events().size();
  auto r = call("PATCH", "/fhir/Task/" + task, sample("task-patch-accepted.json"),
                {{"Content-Type", "application/json-patch+json"}, {"If-Match", "W/\"1\""}});
  ASSERT_EQ(r.status, 200u) << r.body;
  EXPECT_EQ(field(r.body, "/status"), "accepted");
  EXPECT_EQ(field(r.body, "/meta/versionId"), "2");
  EXPECT_EQ(header(r, "ETag"), "W/\"2\"");
  auto events = store_.events();
  ASSERT_EQ(events.size(), before + 1);
  EXPECT_EQ(events.back().type, "org.sdoh.referral.status.v1");
  EXPECT_EQ(field(events.back().value, "/data/status"), "accepted");
  EXPECT_EQ(field(events.back().value, "/data/previousStatus"), "requested");
  EXPECT_EQ(field(events.back().value, "/data/businessStatus"), "family-contacted");
  EXPECT_EQ(store_.referrals[task].status, "accepted");
  EXPECT_EQ(store_.referrals[task].sequence, 2);
  expect_valid_events();

  auto history = call("GET", "/fhir/Task/" + task + "/_history");
  EXPECT_EQ(field(history.body, "/total"), "2");
  EXPECT_EQ(field(history.body, "/entry/0/resource/meta/versionId"), "2");
  auto v1 = call("GET", "/fhir/Task/" + task + "/_history/1");
  EXPECT_EQ(field(v1.body, "/status"), "requested");

  // The same PATCH again, against version 1: stale.
  auto stale = call("PATCH", "/fhir/Task/" + task, sample("task-patch-accepted.json"),
                    {{"Content-Type", "application/json-patch+json"}, {"If-Match", "W/\"1\""}});
  EXPECT_EQ(stale.status, 412u);
  EXPECT_EQ(header(stale, "ETag"), "W/\"2\"");
  EXPECT_EQ(store_.events().size(), before + 1);
}

TEST_F(FhirApiTest, IllegalTransitionIsRefusedAndChangesNothing) {
  start();
  const auto task = post_referral();
  const std::string complete = R"([{"op":"replace","path":"/status","value":"completed"}])";
  const auto patch = std::vector<http::Header>{{"Content-Type", "application/json-patch+json"}};
  EXPECT_EQ(call("PATCH", "/fhir/Task/" + task, complete, patch).status, 409u);  // skips accepted
  ASSERT_EQ(call("PATCH", "/fhir/Task/" + task,
                 R"([{"op":"replace","path":"/status","value":"accepted"}])", patch)
                .status,
            200u);
  ASSERT_EQ(call("PATCH", "/fhir/Task/" + task, complete, patch).status, 200u);
  const auto before = store_.events().size();
  auto back = call("PATCH", "/fhir/Task/" + task,
                   R"([{"op":"replace","path":"/status","value":"in-progress"}])", patch);
  EXPECT_EQ(back.status, 409u) << back.body;
  EXPECT_EQ(field(back.body, "/resourceType"), "OperationOutcome");
  EXPECT_EQ(call("GET", "/fhir/Task/" + task).headers.size() > 0, true);
  EXPECT_EQ(field(call("GET", "/fhir/Task/" + task).body, "/status"), "completed");
  // Refused, dead-lettered: one dead-letter event, no status event.
  auto events = store_.events();
  ASSERT_EQ(events.size(), before + 1);
  EXPECT_EQ(events.back().type, "org.sdoh.deadletter.v1");
  EXPECT_EQ(store_.committed.back().dead_letter->stage, "lifecycle");
}

TEST_F(FhirApiTest, BusinessStatusMustFitTheStatusTheVocabularyAndTheParty) {
  start();
  const auto task = post_referral();
  const auto patch = std::vector<http::Header>{{"Content-Type", "application/json-patch+json"}};
  auto move = [&](const std::string& status, const std::string& code) {
    std::string ops = R"([{"op":"replace","path":"/status","value":")" + status + "\"}";
    if (!code.empty())
      ops += R"(,{"op":"add","path":"/businessStatus","value":{"text":")" + code + "\"}}";
    return call("PATCH", "/fhir/Task/" + task, ops + "]", patch);
  };
  const auto before = store_.events().size();
  // "enrolled" goes with in-progress and completed, not with accepted.
  auto mismatch = move("accepted", "enrolled");
  EXPECT_EQ(mismatch.status, 422u) << mismatch.body;
  EXPECT_EQ(field(mismatch.body, "/issue/0/code"), "business-rule");
  EXPECT_EQ(field(mismatch.body, "/issue/0/expression/0"), "Task.businessStatus");
  EXPECT_EQ(move("accepted", "made-up-code").status, 422u);  // not in the vocabulary
  EXPECT_EQ(move("requested", "overdue").status, 422u);      // only the gateway sets it
  EXPECT_EQ(field(call("GET", "/fhir/Task/" + task).body, "/status"), "requested");
  EXPECT_EQ(store_.referrals[task].sequence, 1);
  for (std::size_t i = before; i < store_.events().size(); ++i)
    EXPECT_EQ(store_.events()[i].type, "org.sdoh.deadletter.v1");

  // Allowed: stored as the vocabulary's code; a code that does not go with the next status is
  // not carried into it.
  auto scheduled = move("accepted", "scheduled");
  ASSERT_EQ(scheduled.status, 200u) << scheduled.body;
  EXPECT_EQ(field(scheduled.body, "/businessStatus/coding/0/code"), "scheduled");
  EXPECT_EQ(field(scheduled.body, "/businessStatus/coding/0/system"),
            "urn:sdoh:codesystem:referral-business-status");
  auto held = move("on-hold", "");
  ASSERT_EQ(held.status, 200u) << held.body;
  EXPECT_EQ(field(held.body, "/businessStatus"), "<absent>");
  EXPECT_EQ(store_.referrals[task].business_status, "");
  EXPECT_EQ(field(store_.events().back().value, "/data/businessStatus"), "<other>");  // null
  EXPECT_EQ(field(store_.events().back().value, "/data/status"), "on-hold");
  expect_valid_events();
}

TEST_F(FhirApiTest, PutWithAnotherIdIs400AndPatchNeedsJsonPatch) {
  start();
  const auto task = post_referral();
  auto current = call("GET", "/fhir/Task/" + task).body;
  auto doc = parse(current);
  doc["id"].SetString("other");
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  doc.Accept(w);
  auto put = call("PUT", "/fhir/Task/" + task, buf.GetString(), json_type());
  EXPECT_EQ(put.status, 400u) << put.body;
  auto patch = call("PATCH", "/fhir/Task/" + task, "[]", json_type());
  EXPECT_EQ(patch.status, 415u);
  auto missing = call("PUT", "/fhir/Task/nope", current, json_type());
  EXPECT_EQ(missing.status, 404u);
}

TEST_F(FhirApiTest, ClientsAuthenticateAndSeeOnlyTheirOwn) {
  with_clients();
  auto anonymous = call("GET", "/fhir/Task");
  EXPECT_EQ(anonymous.status, 401u);
  EXPECT_EQ(field(anonymous.body, "/issue/0/code"), "login");
  EXPECT_NE(header(anonymous, "WWW-Authenticate"), "<absent>");
  const http::Header clinic{"Authorization", "Bearer " + std::string(32, 'c')};
  const http::Header ehv{"Authorization", "Bearer " + std::string(32, 'h')};
  const http::Header wic{"Authorization", "Bearer " + std::string(32, 'w')};
  EXPECT_EQ(call("GET", "/fhir/Task", "", {{"Authorization", "Bearer wrong"}}).status, 401u);
  // Agencies do not post referrals.
  auto agency_post =
      call("POST", "/fhir", sample("bundle-transaction-screening-consent-referral.json"),
           json_type({ehv}));
  EXPECT_EQ(agency_post.status, 403u);
  const auto task = post_referral({clinic});
  EXPECT_EQ(call("GET", "/fhir/Task/" + task, "", {clinic}).status, 200u);
  EXPECT_EQ(call("GET", "/fhir/Task/" + task, "", {ehv}).status, 200u);
  EXPECT_EQ(call("GET", "/fhir/Task/" + task, "", {wic}).status, 404u);
  EXPECT_EQ(field(call("GET", "/fhir/Task", "", {wic}).body, "/total"), "0");
  EXPECT_EQ(field(call("GET", "/fhir/Task", "", {ehv}).body, "/total"), "1");
  const auto patch_type = http::Header{"Content-Type", "application/json-patch+json"};
  // The clinic cannot accept for the agency; the agency cannot cancel.
  auto clinic_accept =
      call("PATCH", "/fhir/Task/" + task,
           R"([{"op":"replace","path":"/status","value":"accepted"}])", {clinic, patch_type});
  EXPECT_EQ(clinic_accept.status, 422u) << clinic_accept.body;
  EXPECT_EQ(field(clinic_accept.body, "/issue/0/code"), "business-rule");
  auto agency_cancel =
      call("PATCH", "/fhir/Task/" + task,
           R"([{"op":"replace","path":"/status","value":"cancelled"}])", {ehv, patch_type});
  EXPECT_EQ(agency_cancel.status, 422u);
  auto other_agency =
      call("PATCH", "/fhir/Task/" + task,
           R"([{"op":"replace","path":"/status","value":"accepted"}])", {wic, patch_type});
  EXPECT_EQ(other_agency.status, 404u);  // another agency's referral does not exist for it
  auto accept =
      call("PATCH", "/fhir/Task/" + task,
           R"([{"op":"replace","path":"/status","value":"accepted"}])", {ehv, patch_type});
  EXPECT_EQ(accept.status, 200u) << accept.body;
  EXPECT_EQ(field(store_.events().back().value, "/data/updatedBy/role"), "agency");
  auto cancel =
      call("PATCH", "/fhir/Task/" + task,
           R"([{"op":"replace","path":"/status","value":"cancelled"}])", {clinic, patch_type});
  EXPECT_EQ(cancel.status, 200u) << cancel.body;
  // The clinic still sees it after the agency's update.
  EXPECT_EQ(call("GET", "/fhir/Task/" + task, "", {clinic}).status, 200u);
  expect_valid_events();
}

TEST(HttpDate, FromRfc3339) {
  EXPECT_EQ(http_date("2026-11-25T07:10:00.123Z"), "Wed, 25 Nov 2026 07:10:00 GMT");
  EXPECT_EQ(http_date("2026-11-25T02:10:00-05:00"), "Wed, 25 Nov 2026 07:10:00 GMT");
  EXPECT_EQ(http_date("nonsense"), "");
}

}  // namespace
}  // namespace sdoh::fhir

namespace sdoh::fhir {
namespace {

TEST_F(FhirApiTest, ReplayIngestsTheStoredPayloadAgainAsItsSender) {
  start();
  MemoryStore port;
  asio::io_context ioc;
  auto fut =
      asio::co_spawn(ioc,
                     api_->replay("clinic-a", "QuestionnaireResponse",
                                  sample("questionnaireresponse-hunger-vital-sign.json"), "", port),
                     asio::use_future);
  ioc.run();
  auto outcome = fut.get();
  ASSERT_TRUE(outcome) << outcome.error().message;
  ASSERT_EQ(port.committed.size(), 1u);
  EXPECT_EQ(port.committed[0].inbound.sender, "clinic-a");
  EXPECT_EQ(port.committed[0].inbound.answer_code, "201") << port.committed[0].inbound.answer;
  EXPECT_EQ(port.committed[0].resources.size(), 1u);
  EXPECT_EQ(port.events().front().type, "org.sdoh.screening.v1");

  asio::io_context ioc2;
  auto refused =
      asio::co_spawn(ioc2, api_->replay("ehv", "Task-patch", "[]", "", port), asio::use_future);
  ioc2.run();
  auto r = refused.get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kUnsupported);
}

// A replay keeps the ids the request's first answer named: the resource it stored then is the
// one it names again (not a new one under an id of the replay's time). A first answer naming
// another type gives no id.
TEST_F(FhirApiTest, ReplayKeepsTheIdsOfTheEarlierAnswer) {
  start();
  auto replayed = [&](const std::string& earlier) {
    MemoryStore port;
    asio::io_context ioc;
    auto fut = asio::co_spawn(
        ioc,
        api_->replay("clinic-a", "QuestionnaireResponse",
                     sample("questionnaireresponse-hunger-vital-sign.json"), earlier, port),
        asio::use_future);
    ioc.run();
    auto outcome = fut.get();
    EXPECT_TRUE(outcome) << outcome.error().message;
    EXPECT_EQ(port.committed.size(), 1u);
    return port.committed.empty() || port.committed[0].resources.empty()
               ? std::string()
               : port.committed[0].resources[0].id;
  };
  const std::string first = "0123456789abcdef0123456789abcdef";
  EXPECT_EQ(replayed(R"({"resourceType":"QuestionnaireResponse","id":")" + first + R"("})"), first);
  const auto other = replayed(R"({"resourceType":"Patient","id":")" + first + R"("})");
  EXPECT_NE(other, first);
  EXPECT_EQ(other.size(), 32u);
}

// An access-token verifier that knows one token per caller (the SMART authority in production).
class FakeTokens final : public identity::AccessTokenVerifier {
 public:
  std::map<std::string, identity::Caller> callers;
  std::expected<identity::Caller, identity::TokenRefusal> verify(
      std::string_view token, std::string_view fhir_base) const override {
    EXPECT_EQ(fhir_base, "http://gw.test/fhir");
    auto it = callers.find(std::string(token));
    if (it == callers.end())
      return std::unexpected(identity::TokenRefusal{"invalid_token", "the token expired"});
    return it->second;
  }
  bool active() const override { return true; }
};

using ::testing::HasSubstr;

class FhirApiScopes : public FhirApiTest {
 protected:
  void start_with(std::map<std::string, std::string> scopes_by_token) {
    for (const auto& [token, scopes] : scopes_by_token) {
      tokens_.callers[token] = {"peds-clinic-a", "clinic", "PEDS_A",
                                "Peds A",        "ehr",    identity::Scopes::parse(scopes)};
    }
    ApiOptions o;
    o.tokens = &tokens_;
    start(std::move(o));
  }
  static std::vector<http::Header> bearer(const std::string& token) {
    return {{"Authorization", "Bearer " + token}};
  }
  FakeTokens tokens_;
};

TEST_F(FhirApiScopes, AnInteractionTheTokenDoesNotCoverIs403NamingTheScope) {
  start_with({{"a.b.c", "system/Task.rs"}});
  auto r = call("POST", "/fhir/QuestionnaireResponse",
                sample("questionnaireresponse-hunger-vital-sign.json"), json_type(bearer("a.b.c")));
  ASSERT_EQ(r.status, 403u) << r.body;
  auto issue = parse(r.body)["issue"][0].GetObject();
  EXPECT_STREQ(issue["code"].GetString(), "forbidden");
  EXPECT_THAT(std::string(issue["diagnostics"].GetString()),
              HasSubstr("does not grant system/QuestionnaireResponse.c, which create of "
                        "QuestionnaireResponse needs (it grants: system/Task.rs)"));
  EXPECT_TRUE(store_.events().empty());
  EXPECT_EQ(call("GET", "/fhir/Task", "", bearer("a.b.c")).status, 200u);
}

TEST_F(FhirApiScopes, ATransactionNeedsTheScopeOfEachEntry) {
  start_with({{"a.b.c",
               "system/Patient.c system/QuestionnaireResponse.c system/ServiceRequest.c "
               "system/Task.c"},
              {"d.e.f", "system/*.c"}});
  auto r = call("POST", "/fhir", sample("bundle-transaction-screening-consent-referral.json"),
                json_type(bearer("a.b.c")));
  ASSERT_EQ(r.status, 403u) << r.body;
  EXPECT_THAT(r.body, HasSubstr("system/Consent.c"));
  EXPECT_EQ(call("POST", "/fhir", sample("bundle-transaction-screening-consent-referral.json"),
                 json_type(bearer("d.e.f")))
                .status,
            200u);
}

TEST_F(FhirApiScopes, WithTokensThereIsNoDevelopmentClientAndARefusedTokenIs401) {
  start_with({{"a.b.c", "system/Task.rs"}});
  auto none = call("GET", "/fhir/Task");
  EXPECT_EQ(none.status, 401u);
  EXPECT_THAT(none.body, HasSubstr("smart-configuration"));
  auto refused = call("GET", "/fhir/Task", "", bearer("x.y.z"));
  EXPECT_EQ(refused.status, 401u);
  EXPECT_THAT(refused.body, HasSubstr("the token expired"));
  EXPECT_EQ(header(refused, "WWW-Authenticate"), "Bearer realm=\"sdoh-gateway\"");
}

// The audit trail as the API sees it: records what it is given, or fails like a store that
// cannot write.
class RecordingTrail final : public pipeline::AuditTrail {
 public:
  asio::awaitable<Result<void>> record(std::vector<audit::AuditRecord> records) override {
    if (failing) co_return fail(Error::unavailable("disk full"));
    recorded.insert(recorded.end(), records.begin(), records.end());
    co_return Result<void>{};
  }
  Result<pipeline::AuditPage> search_audit(const pipeline::AuditQuery&) const override {
    return pipeline::AuditPage{};
  }
  Result<std::optional<std::string>> audit_event(std::int64_t) const override {
    return std::optional<std::string>();
  }
  bool failing = false;
  std::vector<audit::AuditRecord> recorded;
};

TEST_F(FhirApiTest, AReadAndASearchAreRecordedWithTheirClientBeforeTheyAreAnswered) {
  RecordingTrail trail;
  ApiOptions o;
  o.audit = &trail;
  start(std::move(o));
  const auto task = post_referral();
  ASSERT_EQ(call("GET", "/fhir/Task/" + task).status, 200u);
  ASSERT_EQ(call("GET", "/fhir/Task?status=requested").status, 200u);
  ASSERT_EQ(trail.recorded.size(), 2u);
  EXPECT_EQ(trail.recorded[0].kind, audit::AuditKind::kRead);
  EXPECT_EQ(trail.recorded[0].agent.who, "dev");
  ASSERT_EQ(trail.recorded[0].entities.size(), 1u);
  EXPECT_EQ(trail.recorded[0].entities[0].reference, "Task/" + task);
  EXPECT_EQ(trail.recorded[1].kind, audit::AuditKind::kSearch);
  ASSERT_EQ(trail.recorded[1].entities.size(), 1u) << "the one Task on the page";
  EXPECT_EQ(trail.recorded[1].entities[0].reference, "Task/" + task);
}

TEST_F(FhirApiTest, AReadThatCannotBeAuditedIsNotAnswered) {
  RecordingTrail trail;
  ApiOptions o;
  o.audit = &trail;
  start(std::move(o));
  const auto task = post_referral();
  trail.failing = true;
  auto read = call("GET", "/fhir/Task/" + task);
  EXPECT_EQ(read.status, 503u);
  EXPECT_EQ(read.body.find("\"resourceType\":\"Task\""), std::string::npos) << read.body;
  EXPECT_NE(read.body.find("audit trail"), std::string::npos) << read.body;
  EXPECT_EQ(call("GET", "/fhir/Task?status=requested").status, 503u);
  EXPECT_EQ(call("GET", "/fhir/Task/" + task + "/_history").status, 503u);
}

}  // namespace
}  // namespace sdoh::fhir
