#pragma once
// The HL7 pipeline tests' fixture: the shipped mapping tables, a recording store (commit port,
// referral repository and resources, with the optimistic lock) and helpers to send samples.

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <rapidjson/pointer.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "adapters/hl7v2/message.hpp"
#include "adapters/hl7v2/mllp_framer.hpp"
#include "gateway/events/schema_catalog.hpp"
#include "gateway/log/log.hpp"
#include "gateway/mapping/referral.hpp"
#include "gateway/mapping/routing.hpp"
#include "gateway/mapping/tables.hpp"
#include "tests/unit/support/shipped.hpp"

namespace sdoh::hl7v2::pipeline_test_support {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using test::kSchemas;

inline std::string sample(const std::string& name) {
  return test::shared_sample("hl7v2", name);
}

inline std::string replace(std::string text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

// Removes every segment with this id.
inline std::string without(std::string text, const std::string& segment) {
  for (auto at = text.find("\r" + segment + "|"); at != std::string::npos;
       at = text.find("\r" + segment + "|")) {
    const auto end = text.find('\r', at + 1);
    text.erase(at, end - at);
  }
  return text;
}

// The store's contract: dedupe on (protocol, sender, key); a duplicate gets the stored answer; a
// referral state is written only if the stored one is at its expected sequence (else kConflict,
// nothing written). Its referral repository and resources are what the commits wrote.
class RecordingStore final : public pipeline::CommitPort,
                             public pipeline::ReferralRepository,
                             public pipeline::ResourceReader {
 public:
  asio::awaitable<Result<pipeline::CommitOutcome>> commit(pipeline::CommitRequest r) override {
    ++commits;
    if (fail) co_return ::sdoh::fail(*fail);
    const auto key = r.inbound.protocol + "|" + r.inbound.sender + "|" + r.inbound.dedupe_key;
    if (auto it = answers_.find(key); it != answers_.end()) {
      co_return pipeline::CommitOutcome{
          pipeline::CommitStatus::kDuplicate, it->second.first, it->second.second, 0, {}};
    }
    for (const auto& st : r.referrals) {
      if (!st.expected_sequence) continue;
      const auto it = states_.find(st.referral_id);
      const int current = it == states_.end() ? 0 : it->second.sequence;
      if (lose_races > 0 || current != *st.expected_sequence) {
        if (lose_races > 0) --lose_races;
        ++conflicts;
        co_return ::sdoh::fail(Error::conflict("referral " + st.referral_id + " moved on"));
      }
    }
    for (const auto& st : r.referrals)
      states_[st.referral_id] = st;
    answers_[key] = {r.inbound.answer_code, r.inbound.answer};
    answer_codes.push_back(r.inbound.answer_code);
    for (auto& e : r.events)
      events.push_back(std::move(e));
    for (auto& w : r.resources)
      resources.push_back(std::move(w));
    for (auto& s : r.referrals)
      referrals.push_back(std::move(s));
    if (r.dead_letter) dead_letters.push_back(*r.dead_letter);
    co_return pipeline::CommitOutcome{};
  }
  std::vector<pipeline::OutboxEvent> events;
  std::vector<pipeline::ResourceWrite> resources;
  std::vector<pipeline::ReferralState> referrals;
  std::vector<pipeline::DeadLetterRecord> dead_letters;
  std::vector<std::string> answer_codes;  ///< of each new (not duplicate) commit
  int commits = 0;                        ///< every call, duplicates and failures included
  std::optional<Error> fail;              ///< set: every commit fails with it
  int lose_races = 0;  ///< the next commits that write a referral fail with kConflict
  int conflicts = 0;   ///< commits refused by the optimistic lock

  Result<std::optional<pipeline::ReferralState>> find_referral(
      const pipeline::ReferralKeys& keys) const override {
    for (const auto& [id, st] : states_) {
      if (!keys.referral_id.empty() ? id == keys.referral_id
          : !keys.clinic_number_value.empty()
              ? st.clinic_number_value == keys.clinic_number_value
              : !keys.source_control_id.empty() && st.source_control_id == keys.source_control_id)
        return std::optional<pipeline::ReferralState>(st);
    }
    return std::optional<pipeline::ReferralState>();
  }
  Result<std::vector<pipeline::WaitingReferral>> referrals_awaiting_agency(std::int64_t,
                                                                           int) const override {
    return std::vector<pipeline::WaitingReferral>();
  }
  Result<std::optional<std::string>> open_referral_for(std::string_view,
                                                       std::string_view) const override {
    return std::optional<std::string>();
  }

  Result<std::optional<pipeline::ResourceRow>> read_resource(std::string_view type,
                                                             std::string_view id,
                                                             std::int64_t) const override {
    for (auto it = resources.rbegin(); it != resources.rend(); ++it) {
      if (it->type == type && it->id == id) {
        return std::optional<pipeline::ResourceRow>(pipeline::ResourceRow{
            it->type, it->id, it->version, it->last_updated, it->json, it->source});
      }
    }
    return std::optional<pipeline::ResourceRow>();
  }
  Result<std::optional<std::string>> find_resource_id(std::string_view, std::string_view,
                                                      std::string_view) const override {
    return std::optional<std::string>();
  }
  Result<pipeline::ResourcePage> search_resources(const pipeline::ResourceQuery&) const override {
    return pipeline::ResourcePage{};
  }
  Result<std::vector<pipeline::ResourceRow>> resource_history(std::string_view,
                                                              std::string_view) const override {
    return std::vector<pipeline::ResourceRow>();
  }

 private:
  std::map<std::string, pipeline::ReferralState> states_;
  std::map<std::string, std::pair<std::string, std::string>> answers_;
};

// What the pipeline asked routing, and the answer it got.
struct RouteCall {
  std::string category, zip3, county;
  std::optional<int> age_months;
};

class Hl7PipelineTest : public ::testing::Test {
 protected:
  Hl7PipelineTest() {
    mapper_ = test::shipped_mapper(registry_);
    catalog_ = test::shipped_catalog();
    configure({});
  }

  void configure(config::Hl7Config hl7, mapping::RouteLookup route = {}) {
    pipeline_.reset();
    pipeline_registry_ = std::make_unique<metrics::Registry>();  // a pipeline registers once
    Hl7PipelineOptions options;
    options.hl7 = std::move(hl7);
    options.referrals = &store_;
    options.resources = &store_;
    options.route = std::move(route);
    options.refer_from_screening = refer_from_screening_;
    // As the store answers it: the patient's first referral for the need not yet closed.
    options.open_referral_for = [this](std::string_view patient,
                                       std::string_view category) -> std::optional<std::string> {
      for (const auto& r : store_.referrals) {
        if (r.patient == patient && r.category == category &&
            !mapping::is_final(*mapping::referral_status_from(r.status)))
          return r.referral_id;
      }
      return std::nullopt;
    };
    // As runtime.cpp wires it: an agency's own topic from routing, else the referral topic.
    options.agency_topic = [this](std::string_view agency) -> std::string {
      const auto* a = routing_ != nullptr ? routing_->agency(agency) : nullptr;
      return a != nullptr ? std::string(a->topic) : std::string();
    };
    pipeline_ = std::make_unique<Hl7Pipeline>(*mapper_, store_, options, *pipeline_registry_);
  }

  // The shipped routing (schemas/routing/routing.json), wired as runtime.cpp wires it but without
  // the ZIP-to-county crosswalk, so that a county comes only from PID-11.9/PID-12 here (the
  // crosswalk has its own tests, and tests/integration/test_hl7.py runs both); every question the
  // pipeline asks it is kept in route_calls_.
  void configure_shipped_routing() {
    auto tables = mapping::MappingTables::load(kSchemas / "mappings");
    ASSERT_TRUE(tables);
    auto routing = mapping::RoutingTable::load(kSchemas / "routing", **tables);
    ASSERT_TRUE(routing) << routing.error().message;
    routing_ = *routing;
    configure({}, [this](std::string_view category, const mapping::RoutingKeys& keys) {
      route_calls_.push_back({std::string(category), keys.zip3, keys.county_fips, keys.age_months});
      return routing_->choose(category, keys, nullptr);
    });
  }

  std::string send(std::string message) {
    asio::io_context io;
    std::string answer;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          // A named Peer: GCC 12 mishandles braced temporaries in a co_await expression.
          const pipeline::Peer peer{"10.0.0.1:5000", ""};
          answer = co_await pipeline_->handle(std::move(message), peer);
        },
        asio::detached);
    io.run();
    return answer;
  }

  // A field of the first answer message (the ACK, or in enhanced mode the accept ACK).
  static std::string field(const std::string& answers, const std::string& path) {
    return nth_field(answers, 0, path);
  }
  // A field of the `n`th answer message (enhanced mode: 1 is the application ACK).
  static std::string nth_field(const std::string& answers, std::size_t n, const std::string& path) {
    const auto parts = split_answers(answers);
    if (parts.size() <= n) {
      ADD_FAILURE() << "no answer #" << n << " in " << answers;
      return {};
    }
    auto m = Message::parse(std::string(parts[n]));
    EXPECT_TRUE(m) << parts[n];
    return m ? m->get(path) : std::string();
  }

  // The committed events of one type, each validated against the schemas.
  std::vector<rapidjson::Document> events_of(std::string_view type) {
    std::vector<rapidjson::Document> out;
    for (const auto& e : store_.events) {
      auto valid = catalog_->validate_event(e.value);
      EXPECT_TRUE(valid) << (valid ? "" : valid.error().message) << "\n" << e.value;
      if (e.type != type) continue;
      rapidjson::Document d;
      d.Parse(e.value.c_str());
      EXPECT_FALSE(d.HasParseError());
      out.push_back(std::move(d));
    }
    return out;
  }

  // Sends `message`; the agency of the referral event it made, or "(no referral event)".
  std::string referred_to(std::string message) {
    const auto before = events_of("org.sdoh.referral.v1").size();
    send(std::move(message));
    auto referrals = events_of("org.sdoh.referral.v1");
    if (referrals.size() != before + 1) return "(no referral event)";
    return str(referrals.back(), "/data/agency/id");
  }

  // The businessStatus of the one status event committed, or how many there are instead.
  std::string only_business_status() {
    auto statuses = events_of("org.sdoh.referral.status.v1");
    if (statuses.size() != 1) return std::to_string(statuses.size()) + " status events";
    return str(statuses[0], "/data/businessStatus");
  }

  // What routing was last asked: "category zip3 county age", "-" where unknown.
  std::string routing_asked() const {
    if (route_calls_.empty()) return "(routing not asked)";
    const auto& c = route_calls_.back();
    auto known = [](const std::string& v) { return v.empty() ? std::string("-") : v; };
    return c.category + " " + known(c.zip3) + " " + known(c.county) + " " +
           (c.age_months ? std::to_string(*c.age_months) + "m" : std::string("-"));
  }

  // The JSON text of the value at `pointer`, as the event carries it.
  static std::string json_at(const rapidjson::Value& doc, const char* pointer) {
    const auto* v = rapidjson::Pointer(pointer).Get(doc);
    if (v == nullptr) return "<absent>";
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    v->Accept(w);
    return buf.GetString();
  }

  static std::string str(const rapidjson::Value& doc, const char* pointer) {
    const auto* v = rapidjson::Pointer(pointer).Get(doc);
    if (v == nullptr) return "<absent>";
    if (v->IsNull()) return "<null>";
    if (v->IsString()) return v->GetString();
    if (v->IsInt()) return std::to_string(v->GetInt());
    return "<other>";
  }

  std::uint64_t counter(const std::string& line_prefix) {
    const auto text = pipeline_registry_->render();
    const auto at = text.find(line_prefix + " ");
    if (at == std::string::npos) return 0;
    return std::stoull(text.substr(at + line_prefix.size() + 1));
  }

  metrics::Registry registry_;
  std::unique_ptr<metrics::Registry> pipeline_registry_;
  std::unique_ptr<mapping::ScreeningMapper> mapper_;
  std::unique_ptr<events::SchemaCatalog> catalog_;
  RecordingStore store_;
  std::shared_ptr<const mapping::RoutingTable> routing_;
  std::vector<RouteCall> route_calls_;
  bool refer_from_screening_ = false;  ///< set before configure()
  std::unique_ptr<Hl7Pipeline> pipeline_;
};

inline constexpr const char* kScreening = "org.sdoh.screening.v1";
inline constexpr const char* kReferral = "org.sdoh.referral.v1";
inline constexpr const char* kStatus = "org.sdoh.referral.status.v1";
inline constexpr const char* kDeadLetter = "org.sdoh.deadletter.v1";

// A Hunger Vital Sign ORU with MSH-18 and the display texts given, in whatever bytes.
inline std::string hvs_oru(const std::string& msh18, const std::string& answer_display,
                           const std::string& obr7 = "20261120100000-0500") {
  return "MSH|^~\\&|EHR|PEDS_CLINIC_A|SDOH_GW|STATE_EC|20261120103000-0500||ORU^R01|CS-1|P|2.5.1"
         "||||||" +
         msh18 +
         "\rPID|1||MRN777^^^PEDS_A^MR||Nu\xF1"
         "ez^Jos\xE9\rOBR|1|O1||88121-9^Hunger Vital Sign^LN|||" +
         obr7 + "\rOBX|1|CWE|88122-7^Food worry^LN||LA28397-0^" + answer_display +
         "^LN||||||F\rOBX|2|CWE|88123-5^Food did not last^LN||LA28398-8^Never true^LN||||||F\r";
}

// --- MSH-18 character sets ---------------------------------------------------------------

}  // namespace sdoh::hl7v2::pipeline_test_support
