// The HL7 ingest pipeline with the shipped mapping tables and a recording CommitPort:
// what each message is answered with and which events it commits. Every event is validated
// against the schemas in schemas/events/.
#include "adapters/hl7v2/pipeline.hpp"

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

namespace sdoh::hl7v2 {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using test::kSchemas;

std::string sample(const std::string& name) {
  return test::shared_sample("hl7v2", name);
}

std::string replace(std::string text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

// Removes every segment with this id.
std::string without(std::string text, const std::string& segment) {
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
  Result<std::vector<pipeline::ReferralCount>> referral_counts() const override {
    return std::vector<pipeline::ReferralCount>();
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

  // The shipped routing (schemas/routing/routing.json), wired as runtime.cpp wires it; every
  // question the pipeline asks it is kept in route_calls_.
  void configure_shipped_routing() {
    auto tables = mapping::MappingTables::load(kSchemas / "mappings");
    ASSERT_TRUE(tables);
    auto routing = mapping::RoutingTable::load(kSchemas / "routing", **tables);
    ASSERT_TRUE(routing) << routing.error().message;
    routing_ = *routing;
    configure({},
              [this](std::string_view category, std::string_view zip3, std::string_view county,
                     std::optional<int> age) -> std::optional<std::pair<std::string, std::string>> {
                route_calls_.push_back(
                    {std::string(category), std::string(zip3), std::string(county), age});
                auto match = routing_->route(category, zip3, county, age);
                if (!match) return std::nullopt;
                return std::pair{match->agency->id, match->agency->name};
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

constexpr const char* kScreening = "org.sdoh.screening.v1";
constexpr const char* kReferral = "org.sdoh.referral.v1";
constexpr const char* kStatus = "org.sdoh.referral.status.v1";
constexpr const char* kDeadLetter = "org.sdoh.deadletter.v1";

// A Hunger Vital Sign ORU with MSH-18 and the display texts given, in whatever bytes.
std::string hvs_oru(const std::string& msh18, const std::string& answer_display,
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

TEST_F(Hl7PipelineTest, Latin1MessageValuesArriveAsUtf8InEvents) {
  auto ack = send(hvs_oru("8859/1",
                          "A menudo es cierto \xAB"
                          "a\xF1o\xBB"));
  EXPECT_EQ(field(ack, "MSA-1"), "AA");
  auto screenings = events_of(kScreening);
  ASSERT_EQ(screenings.size(), 1u);
  EXPECT_EQ(str(screenings[0], "/data/domains/0/items/0/answer/display"),
            "A menudo es cierto \xC2\xAB"
            "a\xC3\xB1o\xC2\xBB");
  EXPECT_EQ(
      counter("sdoh_hl7_charset_fallbacks_total{declared=\"8859/1\",read_as=\"windows-1252\"}"),
      0u);
}

TEST_F(Hl7PipelineTest, UndeclaredWindows1252IsConvertedAndCounted) {
  auto ack = send(hvs_oru("", "\x93Often\x94 true"));
  EXPECT_EQ(field(ack, "MSA-1"), "AA");
  auto screenings = events_of(kScreening);
  ASSERT_EQ(screenings.size(), 1u);
  EXPECT_EQ(str(screenings[0], "/data/domains/0/items/0/answer/display"),
            "\xE2\x80\x9COften\xE2\x80\x9D true");
  EXPECT_EQ(counter("sdoh_hl7_charset_fallbacks_total{declared=\"none\",read_as=\"windows-1252\"}"),
            1u);
}

TEST_F(Hl7PipelineTest, DeclaredUtf8WithInvalidBytesIsAeNamingTheField) {
  auto ack = send(hvs_oru("UNICODE UTF-8", "Often true"));  // PID-5 holds Latin-1 bytes
  EXPECT_EQ(field(ack, "MSA-1"), "AE");
  EXPECT_EQ(field(ack, "ERR-2.1"), "PID");
  EXPECT_EQ(field(ack, "ERR-2.2"), "1");
  EXPECT_EQ(field(ack, "ERR-2.3"), "5");
  EXPECT_EQ(field(ack, "ERR-3.1"), "102");
  EXPECT_TRUE(events_of(kScreening).empty());
  auto dead = events_of(kDeadLetter);
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(str(dead[0], "/data/location/segment"), "PID");
  EXPECT_EQ(str(dead[0], "/data/error/code"), "102");
}

TEST_F(Hl7PipelineTest, UnsupportedCharacterSetIsArNamingMsh18) {
  auto ack = send(hvs_oru("UNICODE UTF-16", "Often true"));
  EXPECT_EQ(field(ack, "MSA-1"), "AR");
  EXPECT_EQ(field(ack, "ERR-2.1"), "MSH");
  EXPECT_EQ(field(ack, "ERR-2.3"), "18");
  EXPECT_EQ(events_of(kDeadLetter).size(), 1u);
}

TEST_F(Hl7PipelineTest, ProcessingIdOutsideTable0103IsArNamingMsh11) {
  auto message = hvs_oru("", "Often true");
  message.replace(message.find("|CS-1|P|"), 8, "|CS-1|RL8BH0000|");
  auto ack = send(message);
  EXPECT_EQ(field(ack, "MSA-1"), "AR");
  EXPECT_EQ(field(ack, "ERR-2.1"), "MSH");
  EXPECT_EQ(field(ack, "ERR-2.3"), "11");
  EXPECT_EQ(field(ack, "ERR-3.1"), "202");
  EXPECT_TRUE(events_of(kScreening).empty());
  // Training and debugging messages are taken as they are.
  auto training = hvs_oru("", "Often true");
  training.replace(training.find("|CS-1|P|"), 8, "|CS-2|T|");
  EXPECT_EQ(field(send(training), "MSA-1"), "AA");
}

// --- Time zones for times without an offset ---------------------------------------------

TEST_F(Hl7PipelineTest, TimesWithoutOffsetAreReadInTheSendersZone) {
  config::Hl7Config hl7;
  hl7.default_timezone = "America/New_York";
  hl7.senders["EHR^PEDS_CLINIC_A"].timezone = "America/Chicago";
  configure(hl7);
  send(hvs_oru("", "Often true", "20261120100000"));
  auto screenings = events_of(kScreening);
  ASSERT_EQ(screenings.size(), 1u);
  EXPECT_EQ(str(screenings[0], "/data/performed"), "2026-11-20T10:00:00-06:00");
}

TEST_F(Hl7PipelineTest, FacilityKeyAndDefaultZoneApplyToo) {
  config::Hl7Config hl7;
  hl7.default_timezone = "America/Denver";
  configure(hl7);
  send(hvs_oru("", "Often true", "20260701100000"));
  config::Hl7Config by_facility;
  by_facility.senders["PEDS_CLINIC_A"].timezone = "America/Los_Angeles";
  configure(by_facility);
  auto second = replace(hvs_oru("", "Often true", "20260701100000"), "|CS-1|", "|CS-2|");
  send(second);
  auto screenings = events_of(kScreening);
  ASSERT_EQ(screenings.size(), 2u);
  EXPECT_EQ(str(screenings[0], "/data/performed"), "2026-07-01T10:00:00-06:00");
  EXPECT_EQ(str(screenings[1], "/data/performed"), "2026-07-01T10:00:00-07:00");
}

TEST_F(Hl7PipelineTest, WithoutAZoneTimesWithoutOffsetStayDates) {
  send(hvs_oru("", "Often true", "20261120100000"));
  auto screenings = events_of(kScreening);
  ASSERT_EQ(screenings.size(), 1u);
  EXPECT_EQ(str(screenings[0], "/data/performed"), "2026-11-20");
}

// --- REF^I12 → referral -------------------------------------------------------------------

TEST_F(Hl7PipelineTest, RefSampleBecomesAReferralWithConsentedContact) {
  auto ack = send(sample("ref-i12-home-visiting.hl7"));
  EXPECT_EQ(field(ack, "MSA-1"), "CA");  // MSH-15 AL: enhanced mode
  EXPECT_EQ(field(ack, "MSA-2"), "A1000003");
  // MSH-16 AL: the application ACK follows as its own message, with its own control id.
  EXPECT_EQ(split_answers(ack).size(), 2u);
  EXPECT_EQ(nth_field(ack, 1, "MSA-1"), "AA");
  EXPECT_EQ(nth_field(ack, 1, "MSA-2"), "A1000003");
  EXPECT_EQ(nth_field(ack, 1, "MSH-9"), "ACK^I12^ACK");
  EXPECT_EQ(nth_field(ack, 1, "MSH-16"), "NE");
  EXPECT_NE(nth_field(ack, 1, "MSH-10"), field(ack, "MSH-10"));
  auto referrals = events_of(kReferral);
  ASSERT_EQ(referrals.size(), 1u);
  const auto& r = referrals[0];
  const auto id = str(r, "/data/referralId");
  EXPECT_EQ(id.size(), 32u);
  EXPECT_EQ(str(r, "/subject"), id);
  EXPECT_EQ(str(r, "/data/clinicReferralNumber/system"), "PEDS_A");
  EXPECT_EQ(str(r, "/data/clinicReferralNumber/value"), "REF-2026-0001");
  EXPECT_EQ(str(r, "/data/status"), "requested");
  EXPECT_EQ(str(r, "/data/businessStatus"), "<null>");
  EXPECT_EQ(str(r, "/data/category"), "food-insecurity");
  EXPECT_EQ(str(r, "/data/service/code"), "HV");
  EXPECT_EQ(str(r, "/data/priority"), "routine");
  EXPECT_EQ(str(r, "/data/agency/id"), "ehv-durham");
  EXPECT_EQ(str(r, "/data/agency/name"), "Early Start Home Visiting");
  EXPECT_EQ(str(r, "/data/agency/topic"), "sdoh.referral.v1");
  EXPECT_EQ(str(r, "/data/requester/id"), "1234567890");
  EXPECT_EQ(str(r, "/data/requester/system"), "http://hl7.org/fhir/sid/us-npi");
  EXPECT_EQ(str(r, "/data/requester/display"), "Dr Ana Rivera");
  EXPECT_EQ(str(r, "/data/requester/facility/id"), "PEDS_CLINIC_A");
  EXPECT_EQ(str(r, "/data/authoredOn"), "2026-11-20");
  EXPECT_EQ(str(r, "/data/patient/pseudonym").size(), 64u);
  EXPECT_EQ(str(r, "/data/patient/ageBand"), "0-11m");
  EXPECT_EQ(str(r, "/data/patient/zip3"), "277");
  EXPECT_EQ(str(r, "/data/consent/status"), "active");
  EXPECT_EQ(str(r, "/data/consent/source"), "hl7-con");
  EXPECT_EQ(str(r, "/data/consent/date"), "2026-11-20");
  EXPECT_EQ(str(r, "/data/contact/name/family"), "Garcia");
  EXPECT_EQ(str(r, "/data/contact/name/given/0"), "Sofia");
  EXPECT_EQ(str(r, "/data/contact/phone"), "+19195551234");
  EXPECT_EQ(str(r, "/data/contact/address/line/0"), "12 Elm St");
  EXPECT_EQ(str(r, "/data/contact/address/postalCode"), "27701");
  EXPECT_EQ(str(r, "/data/contact/preferredLanguage/code"), "spa");
  EXPECT_EQ(str(r, "/data/contact/guardian/name/given/0"), "Maria");
  EXPECT_EQ(str(r, "/data/contact/guardian/relationship/code"), "MTH");
  EXPECT_EQ(str(r, "/data/contact/guardian/phone"), "+19195551234");
  EXPECT_EQ(str(r, "/data/note"), "Family asked for help with food and housing");
  EXPECT_EQ(store_.events[0].key, id);
  EXPECT_EQ(store_.events[0].topic, "sdoh.referral.v1");
  // The MRN never leaves: only its pseudonym.
  EXPECT_EQ(store_.events[0].value.find("MRN12345"), std::string::npos);
}

TEST_F(Hl7PipelineTest, RefAlsoOpensTheReferralsStatusHistory) {
  send(sample("ref-i12-home-visiting.hl7"));
  auto statuses = events_of(kStatus);
  ASSERT_EQ(statuses.size(), 1u);
  const auto& s = statuses[0];
  EXPECT_EQ(str(s, "/data/status"), "requested");
  EXPECT_EQ(str(s, "/data/previousStatus"), "<null>");
  EXPECT_EQ(str(s, "/data/sequence"), "1");
  EXPECT_EQ(str(s, "/data/updatedBy/role"), "clinic");
  EXPECT_EQ(str(s, "/data/agency/id"), "ehv-durham");
  EXPECT_EQ(str(s, "/data/category"), "food-insecurity");
  EXPECT_EQ(store_.events[1].topic, "sdoh.referral-status.v1");
  EXPECT_EQ(str(s, "/data/referralId"), str(events_of(kReferral)[0], "/data/referralId"));
}

TEST_F(Hl7PipelineTest, RefWithoutConsentCarriesNoContactAndNoNote) {
  send(without(sample("ref-i12-home-visiting.hl7"), "CON"));
  auto referrals = events_of(kReferral);
  ASSERT_EQ(referrals.size(), 1u);
  EXPECT_EQ(str(referrals[0], "/data/consent/status"), "none");
  EXPECT_EQ(str(referrals[0], "/data/consent/source"), "none");
  EXPECT_EQ(str(referrals[0], "/data/contact"), "<absent>");
  EXPECT_EQ(str(referrals[0], "/data/note"), "<null>");
  EXPECT_EQ(str(referrals[0], "/data/businessStatus"), "awaiting-consent");
  for (const auto& e : store_.events) {
    for (const char* phi : {"Garcia", "Sofia", "5551234", "Elm St", "MRN12345"})
      EXPECT_EQ(e.value.find(phi), std::string::npos) << phi << " in " << e.value;
  }
}

TEST_F(Hl7PipelineTest, RefusedConsentIsNoneAndRescindedIsRevoked) {
  send(replace(sample("ref-i12-home-visiting.hl7"), "A^Active^HL70498", "R^Refused^HL70498"));
  auto rescinded = replace(
      replace(sample("ref-i12-home-visiting.hl7"), "A^Active^HL70498", "X^Rescinded^HL70498"),
      "REF-2026-0001", "REF-2026-0002");
  send(replace(rescinded, "|A1000003|", "|A1000004|"));
  auto referrals = events_of(kReferral);
  ASSERT_EQ(referrals.size(), 2u);
  EXPECT_EQ(str(referrals[0], "/data/consent/status"), "none");
  EXPECT_EQ(str(referrals[1], "/data/consent/status"), "revoked");
  EXPECT_EQ(str(referrals[1], "/data/contact"), "<absent>");
}

TEST_F(Hl7PipelineTest, ClinicPolicyAllowsContactWithoutCon) {
  config::Hl7Config hl7;
  hl7.senders["EHR^PEDS_CLINIC_A"].contact_consent = "clinic-policy";
  configure(hl7);
  send(without(sample("ref-i12-home-visiting.hl7"), "CON"));
  auto referrals = events_of(kReferral);
  ASSERT_EQ(referrals.size(), 1u);
  EXPECT_EQ(str(referrals[0], "/data/consent/status"), "active");
  EXPECT_EQ(str(referrals[0], "/data/consent/source"), "clinic-policy");
  EXPECT_EQ(str(referrals[0], "/data/contact/name/family"), "Garcia");
}

TEST_F(Hl7PipelineTest, ClinicPolicyDoesNotOverrideARefusingCon) {
  config::Hl7Config hl7;
  hl7.senders["EHR^PEDS_CLINIC_A"].contact_consent = "clinic-policy";
  configure(hl7);
  send(replace(sample("ref-i12-home-visiting.hl7"), "A^Active^HL70498", "R^Refused^HL70498"));
  auto referrals = events_of(kReferral);
  ASSERT_EQ(referrals.size(), 1u);
  EXPECT_EQ(str(referrals[0], "/data/consent/source"), "hl7-con");
  EXPECT_EQ(str(referrals[0], "/data/contact"), "<absent>");
}

TEST_F(Hl7PipelineTest, NeedFromAnswersWhenObrNamesAPanelNotACategory) {
  send(replace(sample("ref-i12-home-visiting.hl7"), "food-insecurity^Food insecurity^SDOHCC",
               "88121-9^Hunger Vital Sign^LN"));
  auto referrals = events_of(kReferral);
  ASSERT_EQ(referrals.size(), 1u);
  EXPECT_EQ(str(referrals[0], "/data/category"), "food-insecurity");
}

TEST_F(Hl7PipelineTest, RefWhoseAnswersNameNoNeedIsAeNamingObr4) {
  auto text = replace(sample("ref-i12-home-visiting.hl7"), "food-insecurity^Food insecurity^SDOHCC",
                      "88121-9^Hunger Vital Sign^LN");
  auto ack = send(replace(text, "LA28397-0^Often true", "LA28398-8^Never true"));
  // Enhanced mode: accepted (kept as a dead letter), then the application ACK says why not.
  EXPECT_EQ(field(ack, "MSA-1"), "CA");
  EXPECT_EQ(nth_field(ack, 1, "MSA-1"), "AE");
  EXPECT_EQ(nth_field(ack, 1, "ERR-2.1"), "OBR");
  EXPECT_EQ(nth_field(ack, 1, "ERR-2.3"), "4");
  EXPECT_TRUE(events_of(kReferral).empty());
  EXPECT_EQ(events_of(kDeadLetter).size(), 1u);
}

TEST_F(Hl7PipelineTest, RefWithoutRf1IsRejectedNamingRf1WithADeadLetter) {
  auto ack = send(replace(without(sample("ref-i12-home-visiting.hl7"), "RF1"), "|AL|AL", "||"));
  EXPECT_EQ(field(ack, "MSA-1"), "AE");
  EXPECT_EQ(field(ack, "ERR-2.1"), "RF1");
  EXPECT_TRUE(events_of(kReferral).empty());
  auto dead = events_of(kDeadLetter);
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(str(dead[0], "/data/location/segment"), "RF1");
  ASSERT_EQ(store_.dead_letters.size(), 1u);
}

TEST_F(Hl7PipelineTest, RefWithoutReferralNumberIsRejectedNamingRf16) {
  auto ack = send(replace(replace(sample("ref-i12-home-visiting.hl7"), "REF-2026-0001^PEDS_A", ""),
                          "|AL|AL", "||"));
  EXPECT_EQ(field(ack, "MSA-1"), "AE");
  EXPECT_EQ(field(ack, "ERR-2.1"), "RF1");
  EXPECT_EQ(field(ack, "ERR-2.3"), "6");
}

TEST_F(Hl7PipelineTest, UnknownPriorityIsTableValueNotFound) {
  auto ack = send(
      replace(replace(sample("ref-i12-home-visiting.hl7"), "R^Routine^HL70280", "Z^Someday^LOCAL"),
              "|AL|AL", "||"));
  EXPECT_EQ(field(ack, "MSA-1"), "AE");
  EXPECT_EQ(field(ack, "ERR-2.3"), "2");
  EXPECT_EQ(field(ack, "ERR-3.1"), "103");
}

// --- REF^I12 naming no agency: routed, or held ------------------------------------------------

constexpr const char* kReferredTo =
    "PRD|RT^Referred to provider^HL70286|Early Start Home Visiting|||||EHV-DURHAM^AGENCY^NC\r";

// The sample REF^I12 without its PRD of role RT, in original acknowledgment mode (one ACK).
std::string ref_naming_no_agency() {
  return replace(replace(sample("ref-i12-home-visiting.hl7"), kReferredTo, ""), "|AL|AL", "||");
}

std::string for_need(std::string ref, const std::string& obr4) {
  return replace(std::move(ref), "food-insecurity^Food insecurity^SDOHCC", obr4);
}

// The family's address: PID-11 (ZIP, and XAD-9 county) and PID-12 as given.
std::string living_at(std::string ref, const std::string& pid11_tail, const std::string& pid12) {
  return replace(std::move(ref), "^NC^27701^USA||", "^NC^" + pid11_tail + "|" + pid12 + "|");
}

TEST_F(Hl7PipelineTest, RefNamingNoAgencyIsRoutedByNeedAreaAndAge) {
  configure_shipped_routing();
  auto ack = send(ref_naming_no_agency());
  EXPECT_EQ(field(ack, "MSA-1"), "AA");
  // Food, ZIP 27701, a child of 6 months on RF1-7: Durham County WIC (children under 5).
  EXPECT_EQ(routing_asked(), "food-insecurity 277 - 6m");
  EXPECT_EQ(route_calls_.size(), 1u);
  auto referrals = events_of(kReferral);
  ASSERT_EQ(referrals.size(), 1u);
  EXPECT_EQ(json_at(referrals[0], "/data/agency"),
            R"({"id":"wic-durham","name":"Durham County WIC","topic":"sdoh.referral.v1"})");
  EXPECT_EQ(str(referrals[0], "/data/businessStatus"), "<null>");
  EXPECT_EQ(store_.events[0].topic, "sdoh.referral.v1");
  auto statuses = events_of(kStatus);
  ASSERT_EQ(statuses.size(), 1u);
  EXPECT_EQ(str(statuses[0], "/data/agency/id"), "wic-durham");
  EXPECT_EQ(str(statuses[0], "/data/updatedBy/role"), "clinic");
  ASSERT_EQ(store_.referrals.size(), 1u);
  EXPECT_EQ(store_.referrals[0].agency_id, "wic-durham");
  EXPECT_EQ(counter("sdoh_hl7_referral_messages_total{type=\"REF^I12\",outcome=\"created\"}"), 1u);
}

TEST_F(Hl7PipelineTest, RoutedAgencyWithItsOwnTopicGetsTheReferralThere) {
  configure_shipped_routing();
  // Learning and development concerns before the third birthday: Early Intervention.
  EXPECT_EQ(referred_to(for_need(ref_naming_no_agency(),
                                 "educational-attainment^Educational attainment^SDOHCC")),
            "ei-durham");
  EXPECT_EQ(json_at(events_of(kReferral).at(0), "/data/agency/topic"),
            R"("sdoh.referral.ei-durham")");
  ASSERT_EQ(store_.events.size(), 2u);
  EXPECT_EQ(store_.events[0].topic, "sdoh.referral.ei-durham");
  EXPECT_EQ(store_.events[1].topic, "sdoh.referral-status.v1");
}

TEST_F(Hl7PipelineTest, PrdRtWithAnEmptyPrd7IsRoutedLikeNoPrd) {
  configure_shipped_routing();
  EXPECT_EQ(referred_to(replace(sample("ref-i12-home-visiting.hl7"), "EHV-DURHAM^AGENCY^NC", "")),
            "wic-durham");
  // The name is the routed agency's, not PRD-2 of the PRD that named no id.
  EXPECT_EQ(str(events_of(kReferral).at(0), "/data/agency/name"), "Durham County WIC");
}

TEST_F(Hl7PipelineTest, AgencyNamedInPrdWinsOverRouting) {
  configure_shipped_routing();
  // Routing would say wic-durham for this need, area and age.
  EXPECT_EQ(referred_to(sample("ref-i12-home-visiting.hl7")), "ehv-durham");
  EXPECT_TRUE(route_calls_.empty());
}

TEST_F(Hl7PipelineTest, AgencyNamedInPrdGetsItsOwnTopicFromRouting) {
  configure_shipped_routing();
  send(replace(sample("ref-i12-home-visiting.hl7"), "EHV-DURHAM^AGENCY^NC", "EI-DURHAM^AGENCY^NC"));
  auto referrals = events_of(kReferral);
  ASSERT_EQ(referrals.size(), 1u);
  EXPECT_EQ(str(referrals[0], "/data/agency/id"), "ei-durham");
  EXPECT_EQ(str(referrals[0], "/data/agency/topic"), "sdoh.referral.ei-durham");
  EXPECT_EQ(store_.events[0].topic, "sdoh.referral.ei-durham");
}

TEST_F(Hl7PipelineTest, CountyFromPid11WinsOverTheZip3) {
  configure_shipped_routing();
  // ZIP3 277 alone would be Durham's, but XAD-9 says Orange County (37135): Orange County WIC.
  EXPECT_EQ(referred_to(living_at(ref_naming_no_agency(), "27701^USA^^^37135", "")), "wic-orange");
  EXPECT_EQ(routing_asked(), "food-insecurity 277 37135 6m");
}

TEST_F(Hl7PipelineTest, CountyFromPid12WhenTheAddressHasNone) {
  configure_shipped_routing();
  // A ZIP no route lists, in Durham County by PID-12.
  EXPECT_EQ(referred_to(living_at(ref_naming_no_agency(), "90001^USA", "37063")), "wic-durham");
  EXPECT_EQ(routing_asked(), "food-insecurity 900 37063 6m");
}

TEST_F(Hl7PipelineTest, CountyCodeThatIsNotAFiveDigitFipsIsUnknown) {
  configure_shipped_routing();
  send(living_at(ref_naming_no_agency(), "27516^USA^^^135", "ORANGE"));
  EXPECT_EQ(routing_asked(), "food-insecurity 275 - 6m");
}

TEST_F(Hl7PipelineTest, AgeIsCountedInMonthsOnTheReferralDate) {
  configure_shipped_routing();
  const auto ei = for_need(replace(ref_naming_no_agency(), "||20260501|", "||20231121|"),
                           "educational-attainment^Educational attainment^SDOHCC");
  // RF1-7 2026-11-20: a day before the third birthday, 35 months: Early Intervention.
  EXPECT_EQ(referred_to(ei), "ei-durham");
  EXPECT_EQ(routing_asked(), "educational-attainment 277 - 35m");
  // RF1-7 2026-11-21: the third birthday, 36 months: Head Start.
  EXPECT_EQ(referred_to(replace(
                replace(replace(ei, "|20261120|", "|20261121|"), "REF-2026-0001", "REF-2026-0002"),
                "|A1000003|", "|A1000004|")),
            "headstart-durham");
  EXPECT_EQ(routing_asked(), "educational-attainment 277 - 36m");
}

TEST_F(Hl7PipelineTest, RoutedReferralWithoutConsentAwaitsConsent) {
  configure_shipped_routing();
  EXPECT_EQ(referred_to(without(ref_naming_no_agency(), "CON")), "wic-durham");
  EXPECT_EQ(str(events_of(kReferral).at(0), "/data/businessStatus"), "awaiting-consent");
}

TEST_F(Hl7PipelineTest, RefWithNoRouteIsHeldNotRefused) {
  configure_shipped_routing();
  auto ack = send(living_at(ref_naming_no_agency(), "90001^USA", ""));
  EXPECT_EQ(field(ack, "MSA-1"), "AA");
  EXPECT_EQ(ack.find("\rERR|"), std::string::npos) << ack;
  EXPECT_EQ(store_.answer_codes, std::vector<std::string>{"AA"});
  // Listed for operations as a dead letter (stage route), replayed once a route exists.
  ASSERT_EQ(store_.dead_letters.size(), 1u);
  EXPECT_EQ(store_.dead_letters[0].stage, "route");
  EXPECT_EQ(store_.dead_letters[0].location, "PRD^1^7");
  EXPECT_EQ(events_of(kDeadLetter).size(), 1u);
  // No agency sees it: no referral event; its one status event says why it waits.
  EXPECT_TRUE(events_of(kReferral).empty());
  auto statuses = events_of(kStatus);
  ASSERT_EQ(statuses.size(), 1u);
  const auto& s = statuses[0];
  // requested + no-route, announced by the gateway's routing, for no agency.
  EXPECT_EQ(str(s, "/data/status") + " " + str(s, "/data/businessStatus"), "requested no-route");
  EXPECT_EQ(str(s, "/data/updatedBy/role") + "/" + str(s, "/data/updatedBy/id"), "gateway/routing");
  EXPECT_EQ(str(s, "/data/agency"), "<null>");
  EXPECT_EQ(str(s, "/data/previousStatus"), "<null>");
  EXPECT_EQ(str(s, "/data/sequence"), "1");
  EXPECT_EQ(str(s, "/data/category"), "food-insecurity");
  const auto rid = str(s, "/data/referralId");
  EXPECT_EQ(rid.size(), 32u);
  // Its state is kept (counted in sdoh_referrals_held, listed for ops) and the ledger knows it.
  ASSERT_EQ(store_.referrals.size(), 1u);
  EXPECT_EQ(store_.referrals[0].referral_id, rid);
  EXPECT_EQ(store_.referrals[0].agency_id, "");
  EXPECT_EQ(store_.referrals[0].status, "requested");
  EXPECT_EQ(store_.referrals[0].business_status, "no-route");
  EXPECT_EQ(store_.referrals[0].category, "food-insecurity");
  EXPECT_EQ(store_.referrals[0].return_to, "EHR^PEDS_CLINIC_A");
  auto known = store_.find_referral({rid, "", "", ""});
  ASSERT_TRUE(known && *known);
  EXPECT_EQ((*known)->business_status, "no-route");
  EXPECT_EQ((*known)->agency_id, "");
  EXPECT_EQ(counter("sdoh_hl7_referral_messages_total{type=\"REF^I12\",outcome=\"held\"}"), 1u);
  EXPECT_EQ(counter("sdoh_hl7_referral_messages_total{type=\"REF^I12\",outcome=\"created\"}"), 0u);
}

TEST_F(Hl7PipelineTest, HeldReferralKeepsItsTaskWithoutAnOwner) {
  configure_shipped_routing();
  send(living_at(ref_naming_no_agency(), "90001^USA", ""));
  ASSERT_EQ(store_.resources.size(), 1u);
  const auto& task = store_.resources[0];
  EXPECT_EQ(task.type, "Task");
  EXPECT_EQ(task.id, str(events_of(kStatus).at(0), "/data/referralId"));
  rapidjson::Document d;
  d.Parse(task.json.c_str());
  ASSERT_FALSE(d.HasParseError()) << task.json;
  EXPECT_EQ(str(d, "/status"), "requested");
  EXPECT_EQ(str(d, "/businessStatus/coding/0/code"), "no-route");
  EXPECT_EQ(str(d, "/businessStatus/coding/0/system"),
            "urn:sdoh:codesystem:referral-business-status");
  EXPECT_EQ(str(d, "/owner"), "<absent>");
  EXPECT_EQ(str(d, "/reasonCode/coding/0/code"), "food-insecurity");
  const std::pair<std::string, std::string> held{"business-status", "no-route"};
  EXPECT_NE(std::find(task.search.begin(), task.search.end(), held), task.search.end());
  for (const auto& [name, value] : task.search)
    EXPECT_NE(name, "owner") << value;
}

TEST_F(Hl7PipelineTest, WithoutRoutingARefNamingNoAgencyIsHeld) {
  auto ack = send(ref_naming_no_agency());
  EXPECT_EQ(field(ack, "MSA-1"), "AA");
  EXPECT_TRUE(events_of(kReferral).empty());
  EXPECT_EQ(only_business_status(), "no-route");
}

TEST_F(Hl7PipelineTest, NoRouteWinsOverAwaitingConsent) {
  configure_shipped_routing();
  send(without(living_at(ref_naming_no_agency(), "90001^USA", ""), "CON"));
  EXPECT_EQ(only_business_status(), "no-route");
}

TEST_F(Hl7PipelineTest, HeldReferralSentAgainUnderANewControlIdAddsNothing) {
  configure_shipped_routing();
  const auto held = living_at(ref_naming_no_agency(), "90001^USA", "");
  send(held);
  auto ack = send(replace(held, "|A1000003|", "|A1000098|"));
  EXPECT_EQ(field(ack, "MSA-1"), "AA");
  EXPECT_EQ(events_of(kStatus).size(), 1u);
  EXPECT_EQ(counter("sdoh_hl7_referral_messages_total{type=\"REF^I12\",outcome=\"already-known\"}"),
            1u);
}

TEST_F(Hl7PipelineTest, HeldReferralIsReleasedWhenARouteFindsItsAgency) {
  configure_shipped_routing();
  const auto held = living_at(ref_naming_no_agency(), "90001^USA", "");
  send(held);
  const auto rid = str(events_of(kStatus).at(0), "/data/referralId");
  // The clinic corrects the family's address (ZIP 27701) and sends the referral again.
  auto ack =
      send(replace(living_at(ref_naming_no_agency(), "27701^USA", ""), "|A1000003|", "|A1000097|"));
  EXPECT_EQ(field(ack, "MSA-1"), "AA");
  auto referrals = events_of(kReferral);
  ASSERT_EQ(referrals.size(), 1u);
  EXPECT_EQ(str(referrals[0], "/data/referralId"), rid);
  EXPECT_EQ(str(referrals[0], "/data/agency/id"), "wic-durham");
  auto statuses = events_of(kStatus);
  ASSERT_EQ(statuses.size(), 2u);
  const auto& routed = statuses[1];
  EXPECT_EQ(str(routed, "/data/updatedBy/role") + "/" + str(routed, "/data/updatedBy/id"),
            "gateway/routing");
  EXPECT_EQ(str(routed, "/data/sequence"), "2");
  EXPECT_EQ(str(routed, "/data/businessStatus"), "<null>");
  EXPECT_EQ(str(routed, "/data/agency/id"), "wic-durham");
  ASSERT_EQ(store_.referrals.size(), 2u);
  EXPECT_EQ(store_.referrals[1].agency_id, "wic-durham");
  EXPECT_EQ(store_.referrals[1].sequence, 2);
  EXPECT_EQ(store_.dead_letters.size(), 1u);  // only the first message's
  ASSERT_EQ(store_.resources.size(), 2u);
  EXPECT_EQ(store_.resources[1].version, 2);
  rapidjson::Document d;
  d.Parse(store_.resources[1].json.c_str());
  EXPECT_EQ(str(d, "/owner/reference"), "Organization/wic-durham");
  EXPECT_EQ(str(d, "/meta/versionId"), "2");
  EXPECT_EQ((*store_.find_referral({rid, "", "", ""}))->agency_id, "wic-durham");
  EXPECT_EQ(counter("sdoh_hl7_referral_messages_total{type=\"REF^I12\",outcome=\"released\"}"), 1u);
}

// The AHC HRSN sample in which the family also asks for help with school or training (96782-8).
std::string oru_asking_for_help() {
  auto oru = sample("oru-r01-ahc-hrsn-positive.hl7");
  if (!oru.ends_with("\r")) oru += "\r";
  return oru +
         "OBX|7|CWE|96782-8^Do you want help with school or training^LN||LA33-6^Yes^LN||||||F\r";
}

TEST_F(Hl7PipelineTest, OruScreeningWithAssistanceRequestedOpensARoutedReferral) {
  refer_from_screening_ = true;
  configure_shipped_routing();
  auto ack = send(oru_asking_for_help());
  EXPECT_EQ(field(ack, "MSA-1"), "CA");
  ASSERT_EQ(events_of("org.sdoh.screening.v1").size(), 1u);
  auto referrals = events_of(kReferral);
  ASSERT_EQ(referrals.size(), 1u);
  const auto& r = referrals[0];
  // Born 2026-05-01, screened 2026-11-20 in ZIP 277: Early Intervention, on its own topic.
  EXPECT_EQ(str(r, "/data/category"), "educational-attainment");
  EXPECT_EQ(str(r, "/data/agency/id"), "ei-durham");
  EXPECT_EQ(str(r, "/data/clinicReferralNumber/system"), "urn:sdoh-gateway:screening-referral");
  // No CON segment and the sender's policy asks for one: no contact details, awaiting consent.
  EXPECT_EQ(str(r, "/data/businessStatus"), "awaiting-consent");
  EXPECT_EQ(str(r, "/data/contact"), "<absent>");
  EXPECT_EQ(store_.events.front().topic, "sdoh.screening.v1");
  bool on_agency_topic = false;
  for (const auto& e : store_.events)
    on_agency_topic |= e.type == kReferral && e.topic == "sdoh.referral.ei-durham";
  EXPECT_TRUE(on_agency_topic);
  ASSERT_EQ(events_of(kStatus).size(), 1u);
  ASSERT_EQ(store_.referrals.size(), 1u);
  EXPECT_EQ(store_.referrals[0].return_to, "EHR^PEDS_CLINIC_A");
  EXPECT_EQ(store_.referrals[0].race, "2106-3");
  ASSERT_EQ(store_.resources.size(), 1u);  // its Task
  const auto rid = str(r, "/data/referralId");
  EXPECT_TRUE(*store_.find_referral({rid, "", "", ""}));
  EXPECT_EQ(counter("sdoh_hl7_referral_messages_total{type=\"ORU^R01\",outcome=\"created\"}"), 1u);

  EXPECT_EQ(store_.referrals[0].patient, str(r, "/data/patient/pseudonym"));

  // The family asks again in a later screening: its referral for the need is still open.
  send(replace(oru_asking_for_help(), "|A1000001|", "|A1000091|"));
  EXPECT_EQ(events_of(kReferral).size(), 1u);
  EXPECT_EQ(events_of("org.sdoh.screening.v1").size(), 2u);
  // Once it is closed, a new screening asking for help opens a new referral.
  store_.referrals[0].status = "completed";
  send(replace(oru_asking_for_help(), "|A1000001|", "|A1000092|"));
  EXPECT_EQ(events_of(kReferral).size(), 2u);
}

TEST_F(Hl7PipelineTest, OruScreeningOpensNoReferralWhenTurnedOff) {
  configure_shipped_routing();  // refer_from_screening_ false
  send(oru_asking_for_help());
  EXPECT_TRUE(events_of(kReferral).empty());
  EXPECT_TRUE(store_.referrals.empty());
}

TEST_F(Hl7PipelineTest, WhatIsInvalidIsStillRefusedWhenNoAgencyIsNamed) {
  configure_shipped_routing();
  // MSA-1 and ERR-2 of the answer to the REF naming no agency, edited, under control id `id`.
  auto refusal = [this](const std::string& id, const std::string& from, const std::string& to) {
    const auto ack = send(replace(replace(ref_naming_no_agency(), from, to), "|A1000003|", id));
    return field(ack, "MSA-1") + " " + field(ack, "ERR-2.1") + "-" + field(ack, "ERR-2.3");
  };
  EXPECT_EQ(refusal("|N1|", "MRN12345^^^PEDS_A^MR", ""), "AE PID-3");
  EXPECT_EQ(refusal("|N2|", "REF-2026-0001^PEDS_A", ""), "AE RF1-6");
  // Answers that screen negative under an OBR that names a panel, not a need.
  EXPECT_EQ(refusal("|N3|",
                    "food-insecurity^Food insecurity^SDOHCC\rOBX|1|CWE|88122-7^Within "
                    "the past 12 months we worried whether our food would run out "
                    "before we got money to buy more^LN||LA28397-0^Often true",
                    "88121-9^Hunger Vital Sign^LN\rOBX|1|CWE|88122-7^Food worry^LN||"
                    "LA28398-8^Never true"),
            "AE OBR-4");
  EXPECT_TRUE(route_calls_.empty());
  EXPECT_TRUE(events_of(kStatus).empty());
  EXPECT_EQ(events_of(kDeadLetter).size(), 3u);
}

TEST_F(Hl7PipelineTest, RefResendGetsTheStoredAnswerAndNoNewEvents) {
  auto first = send(sample("ref-i12-home-visiting.hl7"));
  auto again = send(sample("ref-i12-home-visiting.hl7"));
  EXPECT_EQ(again, first);
  EXPECT_EQ(events_of(kReferral).size(), 1u);
  EXPECT_EQ(events_of(kStatus).size(), 1u);
}

TEST_F(Hl7PipelineTest, SameReferralUnderANewControlIdIsAcknowledgedWithoutNewEvents) {
  send(sample("ref-i12-home-visiting.hl7"));
  auto ack = send(replace(sample("ref-i12-home-visiting.hl7"), "|A1000003|", "|A1000099|"));
  EXPECT_EQ(field(ack, "MSA-1"), "CA");
  EXPECT_EQ(events_of(kReferral).size(), 1u);
  EXPECT_EQ(counter("sdoh_hl7_referral_messages_total{type=\"REF^I12\",outcome=\"already-known\"}"),
            1u);
}

TEST_F(Hl7PipelineTest, EnhancedModeAnswersWhatMsh15AndMsh16AskFor) {
  const auto base = sample("oru-r01-ahc-hrsn-positive.hl7");  // MSH-15 AL, MSH-16 NE
  auto only_accept = send(base);
  EXPECT_EQ(split_answers(only_accept).size(), 1u);
  EXPECT_EQ(field(only_accept, "MSA-1"), "CA");
  // MSH-15 NE, MSH-16 AL: no accept ACK, only the application ACK.
  auto app_only = send(replace(replace(base, "|AL|NE", "|NE|AL"), "|A1000001|", "|A1000071|"));
  ASSERT_EQ(split_answers(app_only).size(), 1u);
  EXPECT_EQ(field(app_only, "MSA-1"), "AA");
  // MSH-16 ER: an application ACK only for an error.
  auto quiet = send(replace(replace(base, "|AL|NE", "|AL|ER"), "|A1000001|", "|A1000072|"));
  EXPECT_EQ(split_answers(quiet).size(), 1u);
  // A sender's ACK of our application ACK: consumed, nothing answered, nothing stored.
  const auto committed = store_.events.size() + store_.dead_letters.size();
  auto ack_of_ack = send(
      "MSH|^~\\&|EHR|PEDS_CLINIC_A|SDOH_GW|STATE_EC|20261120||ACK^R01^ACK|X1|P|2.5.1\rMSA|AA|"
      "APP123\r");
  EXPECT_TRUE(ack_of_ack.empty());
  EXPECT_EQ(store_.events.size() + store_.dead_letters.size(), committed);
  EXPECT_EQ(counter("\nsdoh_hl7_acks_received_total"), 1u);
}

TEST_F(Hl7PipelineTest, EnhancedModeAlAlIsCaThenAaAfterTheCommit) {
  const auto text = replace(sample("oru-r01-ahc-hrsn-positive.hl7"), "|AL|NE", "|AL|AL");
  auto answers = send(text);
  ASSERT_EQ(split_answers(answers).size(), 2u) << answers;
  EXPECT_EQ(nth_field(answers, 0, "MSA-1"), "CA");
  EXPECT_EQ(nth_field(answers, 0, "MSA-2"), "A1000001");
  EXPECT_EQ(nth_field(answers, 1, "MSA-1"), "AA");
  EXPECT_EQ(nth_field(answers, 1, "MSA-2"), "A1000001");
  EXPECT_EQ(nth_field(answers, 1, "MSH-9"), "ACK^R01^ACK");
  EXPECT_EQ(nth_field(answers, 1, "MSH-15"), "NE");
  EXPECT_EQ(nth_field(answers, 1, "MSH-16"), "NE");
  EXPECT_EQ(nth_field(answers, 1, "MSH-10"), "APP" + nth_field(answers, 0, "MSH-10").substr(3));
  EXPECT_EQ(store_.commits, 1);
  EXPECT_EQ(store_.answer_codes, std::vector<std::string>{"CA"});
  EXPECT_EQ(events_of(kScreening).size(), 1u);
}

TEST_F(Hl7PipelineTest, EnhancedModeResendGetsBothStoredAnswersAgainAndNoNewEvents) {
  const auto text = replace(sample("oru-r01-ahc-hrsn-positive.hl7"), "|AL|NE", "|AL|AL");
  auto first = send(text);
  auto again = send(text);
  EXPECT_EQ(again, first);
  EXPECT_EQ(split_answers(again).size(), 2u);
  EXPECT_EQ(events_of(kScreening).size(), 1u);
  EXPECT_EQ(counter("\nsdoh_hl7_duplicates_total"), 1u);
}

TEST_F(Hl7PipelineTest, EnhancedModeRejectedResendGetsTheSameCaAndAe) {
  auto text = replace(sample("bad-missing-obx-code.hl7"), "|P|2.5.1", "|P|2.5.1|||AL|AL");
  auto first = send(text);
  ASSERT_EQ(split_answers(first).size(), 2u) << first;
  EXPECT_EQ(nth_field(first, 0, "MSA-1"), "CA");
  EXPECT_EQ(nth_field(first, 1, "MSA-1"), "AE");
  EXPECT_EQ(nth_field(first, 1, "ERR-2"), "OBX^1^3");
  EXPECT_EQ(send(text), first);
  EXPECT_EQ(store_.dead_letters.size(), 1u);
  // The store records what the answer amounts to: a refusal, so delivery.ack=delivered does not
  // wait for the dead letter's publication.
  EXPECT_EQ(store_.answer_codes, std::vector<std::string>{"AE"});
}

TEST_F(Hl7PipelineTest, EnhancedModeUnsupportedTypeIsCrWithoutAnApplicationAck) {
  auto text = replace(sample("bad-unsupported-type.hl7"), "|P|2.5.1", "|P|2.5.1|||AL|AL");
  auto answers = send(text);
  ASSERT_EQ(split_answers(answers).size(), 1u) << answers;
  EXPECT_EQ(field(answers, "MSA-1"), "CR");
  EXPECT_EQ(field(answers, "MSA-2"), "A1000009");
  EXPECT_EQ(field(answers, "ERR-2"), "MSH^1^9");
  EXPECT_EQ(field(answers, "ERR-3.1"), "200");
  EXPECT_EQ(store_.dead_letters.size(), 1u);
  EXPECT_EQ(store_.answer_codes, std::vector<std::string>{"CR"});
}

TEST_F(Hl7PipelineTest, EnhancedModeStoreFailureIsCeAndNeverAPositiveAnswer) {
  store_.fail = Error::unavailable("the disk is full");
  const auto text = replace(sample("oru-r01-ahc-hrsn-positive.hl7"), "|AL|NE", "|AL|AL");
  auto answers = send(text);
  ASSERT_EQ(split_answers(answers).size(), 1u) << answers;
  EXPECT_EQ(field(answers, "MSA-1"), "CE");
  EXPECT_EQ(field(answers, "ERR-3.1"), "207");
  EXPECT_NE(field(answers, "ERR-8").find("try again later"), std::string::npos);
  EXPECT_EQ(answers.find("MSA|AA"), std::string::npos);
  EXPECT_EQ(answers.find("MSA|CA"), std::string::npos);
}

TEST_F(Hl7PipelineTest, StoreFailureWithoutAnAcceptAckIsReportedByTheApplicationAck) {
  // MSH-15 NE, MSH-16 AL: the sender relies on the application ACK alone.
  store_.fail = Error::unavailable("the disk is full");
  const auto text = replace(sample("oru-r01-ahc-hrsn-positive.hl7"), "|AL|NE", "|NE|AL");
  auto answers = send(text);
  ASSERT_EQ(split_answers(answers).size(), 1u) << answers;
  EXPECT_EQ(field(answers, "MSA-1"), "AE");
  EXPECT_EQ(field(answers, "MSH-16"), "NE");
  EXPECT_EQ(field(answers, "ERR-3.1"), "207");
  EXPECT_NE(field(answers, "ERR-8").find("try again later"), std::string::npos);
}

TEST_F(Hl7PipelineTest, SendersAckIsConsumedWhateverItsHeaderHolds) {
  // An ACK with values that would get any other message refused (MSH-11, MSH-18) and asking
  // for acknowledgments itself: still never answered, stored or dead-lettered.
  auto answer = send(
      "MSH|^~\\&|EHR|PEDS_CLINIC_A|SDOH_GW|STATE_EC|20261120||ACK^R01^ACK|X2|Q|2.5.1|||AL|AL||"
      "KLINGON\rMSA|AA|APP123\r");
  EXPECT_TRUE(answer.empty()) << answer;
  auto bare = send(
      "MSH|^~\\&|EHR|PEDS_CLINIC_A|SDOH_GW|STATE_EC|20261120||ACK|X3|P|2.5.1\rMSA|CA|"
      "APP124\r");
  EXPECT_TRUE(bare.empty()) << bare;
  EXPECT_EQ(store_.commits, 0);
  EXPECT_TRUE(store_.events.empty());
  EXPECT_TRUE(store_.dead_letters.empty());
  EXPECT_EQ(counter("\nsdoh_hl7_acks_received_total"), 2u);
  EXPECT_EQ(counter("\nsdoh_hl7_parse_errors_total"), 0u);
}

TEST_F(Hl7PipelineTest, BatchAnswerCountsEveryAckItHolds) {
  // The first message asks for both acknowledgments, the second is in original mode.
  const auto batch =
      replace(sample("batch-two-screenings.hl7"), "|B2000101|P|2.5.1", "|B2000101|P|2.5.1|||AL|AL");
  auto answer = send(batch);
  ASSERT_EQ(answer.rfind("BHS|", 0), 0u) << answer;
  EXPECT_NE(answer.find("\rMSA|CA|B2000101\r"), std::string::npos) << answer;
  EXPECT_NE(answer.find("\rMSA|AA|B2000101\r"), std::string::npos) << answer;
  EXPECT_NE(answer.find("\rMSA|AA|B2000102\r"), std::string::npos) << answer;
  EXPECT_NE(answer.find("\rBTS|3\r"), std::string::npos) << answer;
}

TEST(SplitAnswers, OneFramePerMessageBatchesWhole) {
  EXPECT_TRUE(split_answers("").empty());
  auto two = split_answers("MSH|a\rMSA|CA|1\rMSH|b\rMSA|AA|1\r");
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(two[0], "MSH|a\rMSA|CA|1\r");
  EXPECT_EQ(two[1], "MSH|b\rMSA|AA|1\r");
  EXPECT_EQ(split_answers("BHS|x\rMSH|a\rMSH|b\rBTS|2\r").size(), 1u);
}

// --- RRI^I12 → referral status ------------------------------------------------------------

TEST_F(Hl7PipelineTest, RriSampleAcceptsTheReferral) {
  config::Hl7Config hl7;
  hl7.default_timezone = "America/New_York";
  configure(hl7);
  send(sample("ref-i12-home-visiting.hl7"));
  auto ack = send(sample("rri-i12-accepted.hl7"));
  EXPECT_EQ(field(ack, "MSA-1"), "AA");
  EXPECT_EQ(field(ack, "MSA-2"), "EHV-55");
  auto statuses = events_of(kStatus);
  ASSERT_EQ(statuses.size(), 2u);
  const auto& s = statuses[1];
  EXPECT_EQ(str(s, "/data/referralId"), str(events_of(kReferral)[0], "/data/referralId"));
  EXPECT_EQ(str(s, "/data/status"), "accepted");
  EXPECT_EQ(str(s, "/data/previousStatus"), "requested");
  EXPECT_EQ(str(s, "/data/sequence"), "2");
  EXPECT_EQ(str(s, "/data/reason"), "Family contacted, first visit scheduled");
  EXPECT_EQ(str(s, "/data/updatedBy/role"), "agency");
  EXPECT_EQ(str(s, "/data/updatedBy/id"), "ehv-durham");
  EXPECT_EQ(str(s, "/data/time"), "2026-11-22T09:00:00-05:00");
  EXPECT_EQ(str(s, "/data/agency/id"), "ehv-durham");
  EXPECT_EQ(str(s, "/data/category"), "food-insecurity");
  EXPECT_EQ(store_.events.back().key, str(s, "/data/referralId"));
}

TEST_F(Hl7PipelineTest, RriTimeWithoutOffsetOrZoneIsWhenReceived) {
  send(sample("ref-i12-home-visiting.hl7"));
  send(sample("rri-i12-accepted.hl7"));
  auto statuses = events_of(kStatus);
  ASSERT_EQ(statuses.size(), 2u);
  EXPECT_EQ(str(statuses[1], "/data/time"), str(statuses[1], "/time"));
}

TEST_F(Hl7PipelineTest, RriFindsTheReferralByMsa2AloneToo) {
  send(sample("ref-i12-home-visiting.hl7"));
  auto ack = send(replace(sample("rri-i12-accepted.hl7"), "REF-2026-0001^PEDS_A", ""));
  EXPECT_EQ(field(ack, "MSA-1"), "AA");
  EXPECT_EQ(events_of(kStatus).size(), 2u);
}

TEST_F(Hl7PipelineTest, RriFindsTheReferralByItsReferralIdInRf111) {
  send(sample("ref-i12-home-visiting.hl7"));
  const auto id = str(events_of(kReferral)[0], "/data/referralId");
  auto rri = replace(sample("rri-i12-accepted.hl7"), "REF-2026-0001^PEDS_A", "");
  rri = replace(rri, "MSA|AA|A1000003", "MSA|AA|");
  rri = replace(rri, "^Family contacted, first visit scheduled",
                "^Family contacted, first visit scheduled|" + id);
  auto ack = send(rri);
  EXPECT_EQ(field(ack, "MSA-1"), "AA");
  EXPECT_EQ(events_of(kStatus).size(), 2u);
}

TEST_F(Hl7PipelineTest, RriForAnUnknownReferralIsAeUnknownKeyWithADeadLetter) {
  auto ack = send(sample("rri-i12-accepted.hl7"));
  EXPECT_EQ(field(ack, "MSA-1"), "AE");
  EXPECT_EQ(field(ack, "ERR-2.1"), "RF1");
  EXPECT_EQ(field(ack, "ERR-2.3"), "6");
  EXPECT_EQ(field(ack, "ERR-3.1"), "204");
  EXPECT_TRUE(events_of(kStatus).empty());
  auto dead = events_of(kDeadLetter);
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(str(dead[0], "/data/stage"), "lifecycle");
}

TEST_F(Hl7PipelineTest, RriFromAnotherAgencyIsRefused) {
  send(sample("ref-i12-home-visiting.hl7"));
  auto rri =
      replace(sample("rri-i12-accepted.hl7"), "EHV-DURHAM^AGENCY^NC", "WIC-DURHAM^AGENCY^NC");
  auto ack = send(replace(rri, "|AGENCY|EHV-DURHAM|", "|AGENCY|WIC-DURHAM|"));
  EXPECT_EQ(field(ack, "MSA-1"), "AE");
  EXPECT_EQ(field(ack, "ERR-3.1"), "204");
  EXPECT_EQ(events_of(kStatus).size(), 1u);
}

TEST_F(Hl7PipelineTest, StatusHistoryIsNumberedAndAFinalStatusIsFinal) {
  send(sample("ref-i12-home-visiting.hl7"));
  send(sample("rri-i12-accepted.hl7"));
  auto completed = replace(sample("rri-i12-accepted.hl7"), "A^Accepted^HL70283", "completed");
  send(replace(completed, "|EHV-55|", "|EHV-56|"));
  auto late = replace(sample("rri-i12-accepted.hl7"), "A^Accepted^HL70283", "in-progress");
  auto ack = send(replace(late, "|EHV-55|", "|EHV-57|"));
  EXPECT_EQ(field(ack, "MSA-1"), "AE");
  EXPECT_EQ(field(ack, "ERR-2.3"), "1");
  EXPECT_EQ(field(ack, "ERR-3.1"), "103");
  auto statuses = events_of(kStatus);
  ASSERT_EQ(statuses.size(), 3u);
  EXPECT_EQ(str(statuses[2], "/data/status"), "completed");
  EXPECT_EQ(str(statuses[2], "/data/previousStatus"), "accepted");
  EXPECT_EQ(str(statuses[2], "/data/sequence"), "3");
  EXPECT_NE(str(statuses[1], "/id"), str(statuses[2], "/id"));
}

TEST_F(Hl7PipelineTest, RriResendIsAnsweredFromTheStoreWithoutANewEvent) {
  send(sample("ref-i12-home-visiting.hl7"));
  auto first = send(sample("rri-i12-accepted.hl7"));
  auto again = send(sample("rri-i12-accepted.hl7"));
  EXPECT_EQ(again, first);
  EXPECT_EQ(events_of(kStatus).size(), 2u);
}

TEST_F(Hl7PipelineTest, RriWithUnknownStatusCodeIsAeNamingRf11) {
  send(sample("ref-i12-home-visiting.hl7"));
  auto ack = send(replace(sample("rri-i12-accepted.hl7"), "A^Accepted^HL70283", "Q^Queued^LOCAL"));
  EXPECT_EQ(field(ack, "MSA-1"), "AE");
  EXPECT_EQ(field(ack, "ERR-2.1"), "RF1");
  EXPECT_EQ(field(ack, "ERR-2.3"), "1");
  EXPECT_EQ(field(ack, "ERR-3.1"), "103");
}

TEST_F(Hl7PipelineTest, RriWithoutRf1IsAeNamingRf1) {
  send(sample("ref-i12-home-visiting.hl7"));
  auto ack = send(without(sample("rri-i12-accepted.hl7"), "RF1"));
  EXPECT_EQ(field(ack, "MSA-1"), "AE");
  EXPECT_EQ(field(ack, "ERR-2.1"), "RF1");
  EXPECT_EQ(events_of(kDeadLetter).size(), 1u);
}

TEST_F(Hl7PipelineTest, AnRriThatLosesARaceForItsReferralDecidesAgain) {
  send(sample("ref-i12-home-visiting.hl7"));
  store_.lose_races = 1;  // another change of the referral commits first, once
  auto ack = send(sample("rri-i12-accepted.hl7"));
  EXPECT_EQ(field(ack, "MSA-1"), "AA");
  EXPECT_EQ(store_.conflicts, 1);
  ASSERT_EQ(events_of(kStatus).size(), 2u);
  EXPECT_EQ(str(events_of(kStatus)[1], "/data/sequence"), "2");
}

TEST_F(Hl7PipelineTest, ReferralBusyWithOtherMessagesGetsARetryableNakNotRecorded) {
  send(sample("ref-i12-home-visiting.hl7"));
  store_.lose_races = 100;  // it keeps losing: the sender is told to resend later
  auto busy = send(sample("rri-i12-accepted.hl7"));
  EXPECT_EQ(field(busy, "MSA-1"), "AE");
  EXPECT_EQ(field(busy, "ERR-3.1"), "206");
  EXPECT_EQ(store_.conflicts, 4);
  store_.lose_races = 0;
  auto retried = send(sample("rri-i12-accepted.hl7"));  // not recorded: processed again
  EXPECT_EQ(field(retried, "MSA-1"), "AA");
  EXPECT_EQ(events_of(kStatus).size(), 2u);
}

TEST_F(Hl7PipelineTest, LogLinesAboutReferralsCarryNoPhi) {
  log::init(log::Level::kDebug);
  testing::internal::CaptureStdout();
  send(sample("ref-i12-home-visiting.hl7"));
  send(sample("rri-i12-accepted.hl7"));
  send(replace(sample("rri-i12-accepted.hl7"), "|EHV-55|", "|EHV-58|"));  // unchanged
  send(without(sample("rri-i12-accepted.hl7"), "RF1"));                   // rejected
  send(replace(replace(without(sample("ref-i12-home-visiting.hl7"), "PRD"), "REF-2026-0001",
                       "REF-2026-0002"),
               "|A1000003|", "|A1000005|"));  // held: no route configured
  const auto out = testing::internal::GetCapturedStdout();
  log::init(log::Level::kInfo);
  EXPECT_NE(out.find("hl7.referral_created"), std::string::npos);
  EXPECT_NE(out.find("hl7.referral_held"), std::string::npos);
  EXPECT_NE(out.find("hl7.referral_updated"), std::string::npos);
  EXPECT_NE(out.find("hl7.rejected"), std::string::npos);
  for (const char* phi : {"Garcia", "Sofia", "Maria", "MRN12345", "5551234", "Elm St", "20260501",
                          "Family asked", "Rivera"})
    EXPECT_EQ(out.find(phi), std::string::npos) << phi;
}

TEST_F(Hl7PipelineTest, OtherMessageTypesAreStillRefused) {
  auto ack = send(sample("bad-unsupported-type.hl7"));
  EXPECT_EQ(field(ack, "MSA-1"), "AR");
  EXPECT_EQ(field(ack, "ERR-2.3"), "9");
}

}  // namespace
}  // namespace sdoh::hl7v2

// --- the clinic's own changes: REF^I14 (cancel) and REF^I13 (modify) -----------------------------

namespace sdoh::hl7v2 {
namespace {

// The sample REF^I12 as another REF message of the clinic's, in original acknowledgment mode.
std::string as_type(std::string message, const std::string& type, const std::string& control_id) {
  return replace(
      replace(replace(message, "REF^I12^REF_I12", type), "|A1000003|", "|" + control_id + "|"),
      "|AL|AL", "||");
}

TEST_F(Hl7PipelineTest, TheClinicCancelsItsReferralWithRefI14) {
  send(sample("ref-i12-home-visiting.hl7"));
  const auto rid = str(events_of(kStatus).at(0), "/data/referralId");
  auto ack = send(as_type(sample("ref-i12-home-visiting.hl7"), "REF^I14^REF_I12", "A1000004"));
  EXPECT_EQ(field(ack, "MSA-1"), "AA");
  auto statuses = events_of(kStatus);
  ASSERT_EQ(statuses.size(), 2u);
  const auto& cancelled = statuses[1];
  EXPECT_EQ(str(cancelled, "/data/referralId"), rid);
  EXPECT_EQ(str(cancelled, "/data/status"), "cancelled");
  EXPECT_EQ(str(cancelled, "/data/previousStatus"), "requested");
  EXPECT_EQ(str(cancelled, "/data/updatedBy/role"), "clinic");
  EXPECT_EQ(str(cancelled, "/data/sequence"), "2");
  auto state = store_.find_referral({rid, "", "", ""});
  ASSERT_TRUE(state && *state);
  EXPECT_EQ((*state)->status, "cancelled");
  auto task = store_.read_resource("Task", rid, 0);
  ASSERT_TRUE(task && *task);
  EXPECT_EQ((*task)->version, 2);
  rapidjson::Document d;
  d.Parse((*task)->json.c_str());
  EXPECT_EQ(str(d, "/status"), "cancelled");
  // Sent again under a new control id: acknowledged, nothing new.
  auto again = send(as_type(sample("ref-i12-home-visiting.hl7"), "REF^I14^REF_I12", "A1000005"));
  EXPECT_EQ(field(again, "MSA-1"), "AA");
  EXPECT_EQ(events_of(kStatus).size(), 2u);
  EXPECT_EQ(counter("sdoh_hl7_referral_messages_total{type=\"REF^I14\",outcome=\"cancelled\"}"),
            1u);
  // A final referral is not modified any more.
  auto late = send(as_type(sample("ref-i12-home-visiting.hl7"), "REF^I13^REF_I12", "A1000006"));
  EXPECT_EQ(field(late, "MSA-1"), "AE");
  EXPECT_EQ(field(late, "ERR-2.1"), "RF1");
  EXPECT_EQ(field(late, "ERR-2.3"), "1");
  EXPECT_EQ(store_.dead_letters.size(), 1u);
}

TEST_F(Hl7PipelineTest, OnlyTheClinicThatMadeAReferralChangesIt) {
  send(sample("ref-i12-home-visiting.hl7"));
  auto other = replace(as_type(sample("ref-i12-home-visiting.hl7"), "REF^I14^REF_I12", "B1"),
                       "MSH|^~\\&|EHR|PEDS_CLINIC_A|", "MSH|^~\\&|EHR|PEDS_CLINIC_B|");
  auto ack = send(other);
  EXPECT_EQ(field(ack, "MSA-1"), "AE");
  EXPECT_EQ(field(ack, "ERR-2.1"), "RF1");
  EXPECT_EQ(field(ack, "ERR-2.3"), "6");
  EXPECT_EQ(field(ack, "ERR-3.1"), "204");
  EXPECT_EQ(events_of(kStatus).size(), 1u);
  // A referral the gateway never saw: the same answer, and a dead letter to replay later.
  auto unknown = send(replace(as_type(sample("ref-i12-home-visiting.hl7"), "REF^I14^REF_I12", "C1"),
                              "REF-2026-0001", "REF-2026-0999"));
  EXPECT_EQ(field(unknown, "MSA-1"), "AE");
  EXPECT_EQ(field(unknown, "ERR-3.1"), "204");
  EXPECT_EQ(store_.dead_letters.size(), 2u);
}

TEST_F(Hl7PipelineTest, ARefI13WithConReleasesAReferralWaitingForConsent) {
  send(without(sample("ref-i12-home-visiting.hl7"), "CON"));
  ASSERT_EQ(str(events_of(kStatus).at(0), "/data/businessStatus"), "awaiting-consent");
  ASSERT_EQ(str(events_of(kReferral).at(0), "/data/contact"), "<absent>");
  auto ack = send(as_type(sample("ref-i12-home-visiting.hl7"), "REF^I13^REF_I12", "A1000007"));
  EXPECT_EQ(field(ack, "MSA-1"), "AA");
  auto statuses = events_of(kStatus);
  ASSERT_EQ(statuses.size(), 2u);
  EXPECT_EQ(str(statuses[1], "/data/businessStatus"), "<null>");
  EXPECT_EQ(str(statuses[1], "/data/updatedBy/role") + "/" + str(statuses[1], "/data/updatedBy/id"),
            "gateway/consent");
  auto referral_events = events_of(kReferral);
  ASSERT_EQ(referral_events.size(), 2u);
  EXPECT_EQ(str(referral_events[1], "/data/consent/status"), "active");
  EXPECT_NE(str(referral_events[1], "/data/contact"), "<absent>");
  EXPECT_NE(str(referral_events[1], "/id"), str(referral_events[0], "/id"));
  EXPECT_EQ(counter("sdoh_hl7_referral_messages_total{type=\"REF^I13\",outcome=\"released\"}"), 1u);
}

TEST_F(Hl7PipelineTest, ARefI13ReRoutesOnlyUntilAnAgencyHasReceivedIt) {
  send(sample("ref-i12-home-visiting.hl7"));
  const auto to_wic = [](std::string m, const std::string& id) {
    return replace(as_type(std::move(m), "REF^I13^REF_I12", id), "EHV-DURHAM^AGENCY^NC",
                   "WIC-DURHAM^AGENCY^NC");
  };
  auto ack = send(to_wic(sample("ref-i12-home-visiting.hl7"), "A1000008"));
  EXPECT_EQ(field(ack, "MSA-1"), "AA");
  auto statuses = events_of(kStatus);
  ASSERT_EQ(statuses.size(), 2u);
  EXPECT_EQ(str(statuses[1], "/data/agency/id"), "wic-durham");
  EXPECT_EQ(str(statuses[1], "/data/updatedBy/role"), "clinic");
  EXPECT_EQ(str(events_of(kReferral).back(), "/data/agency/id"), "wic-durham");
  const auto rid = str(statuses[1], "/data/referralId");
  EXPECT_EQ((*store_.find_referral({rid, "", "", ""}))->agency_id, "wic-durham");
  // The new agency receives it; the clinic can no longer send it elsewhere.
  auto rri = replace(replace(replace(sample("rri-i12-accepted.hl7"), "EHV-DURHAM", "WIC-DURHAM"),
                             "EHV-DURHAM", "WIC-DURHAM"),
                     "A^Accepted^HL70283", "received^Received^LOCAL");
  ASSERT_EQ(field(send(rri), "MSA-1"), "AA");
  auto back = send(replace(to_wic(sample("ref-i12-home-visiting.hl7"), "A1000009"),
                           "WIC-DURHAM^AGENCY^NC", "EHV-DURHAM^AGENCY^NC"));
  EXPECT_EQ(field(back, "MSA-1"), "AE");
  EXPECT_EQ(field(back, "ERR-2.1"), "PRD");
  EXPECT_EQ(field(back, "ERR-2.3"), "7");
}

}  // namespace
}  // namespace sdoh::hl7v2
