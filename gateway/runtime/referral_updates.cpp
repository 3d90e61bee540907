#include "gateway/runtime/referral_updates.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <rapidjson/document.h>

#include "adapters/fhir/ingest.hpp"
#include "adapters/fhir/task_change.hpp"
#include "gateway/core/json_parse.hpp"
#include "gateway/events/event.hpp"
#include "gateway/events/kafka_binding.hpp"
#include "gateway/log/log.hpp"
#include "gateway/referral/task_document.hpp"

namespace sdoh::runtime {

namespace asio = boost::asio;

namespace {

std::string str(const rapidjson::Value& obj, const char* name) {
  if (!obj.IsObject()) return {};
  auto it = obj.FindMember(name);
  if (it == obj.MemberEnd() || !it->value.IsString()) return {};
  return {it->value.GetString(), it->value.GetStringLength()};
}

}  // namespace

kafka::UpdateDisposition ReferralUpdates::handle(const kafka::UpdateRecord& record) {
  RecordIdentity who;
  who.received_at = events::now_rfc3339();
  who.key =
      record.topic + "/" + std::to_string(record.partition) + "/" + std::to_string(record.offset);
  try {
    if (events::is_binary_mode(record.headers)) {
      // CloudEvents binary mode (ce_* headers, the value is data): read, stored and replayed as
      // the same event in structured mode.
      auto structured = events::structured_from_binary(record.headers, record.value);
      if (!structured) {
        return refuse(
            record, who,
            fhir::Problem::bad_request(
                fhir::IssueType::kStructure, structured.error().where.expression,
                "not a valid org.sdoh.referral.update.v1 event: " + structured.error().message),
            "parse");
      }
      kafka::UpdateRecord as_structured = record;
      as_structured.headers.clear();
      as_structured.value = std::move(*structured);
      return apply(as_structured, who);
    }
    return apply(record, who);
  } catch (const std::exception&) {
    // A fault while handling this record (its text is not logged: it may quote the record).
    // Handing it over again would fail the same way after every restart, so it is kept as a
    // dead letter for an operator instead, and the partition moves on.
    log::error("kafka.update_failed", {{"partition", record.partition}, {"offset", record.offset}});
    try {
      return refuse(record, who,
                    fhir::Problem{fhir::FhirErrc::kInternal,
                                  {fhir::Issue::error(fhir::IssueType::kException, "",
                                                      "the update could not be processed")}},
                    "process");
    } catch (const std::exception&) {
      return kafka::UpdateDisposition::kRetry;
    }
  }
}

// The consumer's thread is outside any io_context: it waits for the commit, which runs on the
// store threads (no io_context of its own per record).
Result<pipeline::CommitOutcome> ReferralUpdates::commit(pipeline::CommitRequest request) {
  return store_threads_.wait(commits_.commit(std::move(request)));
}

kafka::UpdateDisposition ReferralUpdates::refuse(const kafka::UpdateRecord& record,
                                                 const RecordIdentity& who, fhir::Problem problem,
                                                 std::string_view stage) {
  fhir::IngestContext ctx;
  ctx.sender = who.agency.empty() ? std::string("unknown-agency") : "agency:" + who.agency;
  ctx.gateway_id = gateway_id_;
  ctx.topics = topics_;
  auto rejected =
      fhir::rejection(std::move(problem), stage, ctx, who.key, "org.sdoh.referral.update.v1",
                      record.value, who.received_at, "kafka");
  const auto& first = rejected.problem.first_error();
  log::info("kafka.update_refused", {{"agency", who.agency},
                                     {"partition", record.partition},
                                     {"offset", record.offset},
                                     {"stage", stage},
                                     {"reason", first.diagnostics}});
  auto outcome = commit(std::move(rejected.commit));
  if (!outcome) return kafka::UpdateDisposition::kRetry;
  return kafka::UpdateDisposition::kDeadLettered;
}

kafka::UpdateDisposition ReferralUpdates::apply(const kafka::UpdateRecord& record,
                                                RecordIdentity& who) {
  const auto& received_at = who.received_at;
  rapidjson::Document doc;
  const auto parsed = sdoh::json::parse(doc, record.value);
  const bool object = parsed && doc.IsObject();
  const auto& data = object && doc.HasMember("data") ? doc["data"] : doc;
  const auto named = object ? str(data.HasMember("agency") ? data["agency"] : data, "id") : "";
  const auto referral_id = object ? str(data, "referralId") : "";
  // The agency is who owns the topic the update came on (its ACL lets only that agency write),
  // never what the payload says; only the shared development topic has no owner.
  const auto owner = topic_owners_.find(record.topic);
  const std::string agency = owner != topic_owners_.end() ? owner->second : named;
  who.agency = agency;
  // Dedupe: the CloudEvent id the agency gave it; else where it sits in Kafka.
  if (auto id = object ? str(doc, "id") : ""; !id.empty()) who.key = id;
  const auto& key = who.key;

  fhir::IngestContext ctx;
  ctx.sender = agency.empty() ? std::string("unknown-agency") : "agency:" + agency;
  ctx.gateway_id = gateway_id_;
  ctx.topics = topics_;
  pipeline::InboundRecord inbound{"kafka", ctx.sender, key,         "org.sdoh.referral.update.v1",
                                  "",      "",         record.value};
  auto refuse = [&](fhir::Problem problem, std::string_view stage) {
    return this->refuse(record, who, std::move(problem), stage);
  };

  if (owner != topic_owners_.end() && !named.empty() && named != agency) {
    return refuse(fhir::Problem::forbidden("this update came on agency " + agency +
                                           "'s topic but names agency " + named +
                                           " (data.agency.id): an agency updates only its own "
                                           "referrals"),
                  "validate");
  }
  if (!parsed) {
    return refuse(fhir::Problem::bad_request(fhir::IssueType::kStructure, "",
                                             "not a valid org.sdoh.referral.update.v1 event: "
                                             "the record is not valid JSON: " +
                                                 parsed.error().message),
                  "parse");
  }
  if (auto valid = schemas_.validate_event(record.value); !valid) {
    return refuse(fhir::Problem::bad_request(
                      fhir::IssueType::kInvalid, valid.error().where.expression,
                      "not a valid org.sdoh.referral.update.v1 event: " + valid.error().message),
                  "validate");
  }
  if (str(doc, "type") != "org.sdoh.referral.update.v1") {
    return refuse(fhir::Problem::bad_request(fhir::IssueType::kInvalid, "type",
                                             "only org.sdoh.referral.update.v1 events belong on "
                                             "this topic"),
                  "validate");
  }
  auto referral = referrals_.find_referral({referral_id, "", "", ""});
  if (!referral) return kafka::UpdateDisposition::kRetry;
  auto task = resources_.read_resource("Task", referral_id);
  if (!task) return kafka::UpdateDisposition::kRetry;
  if (!*referral || !*task) {
    return refuse(fhir::Problem::not_found("no referral " + referral_id + " is known here"),
                  "lifecycle");
  }
  const auto current = referral::Referral::from(**referral);
  const auto status = mapping::referral_status_from(str(data, "status"));
  if (!current || !status) {
    return refuse(fhir::Problem::bad_request(fhir::IssueType::kInvalid, "data.status",
                                             "not a referral status this gateway knows"),
                  "validate");
  }
  referral::Move move;
  move.by = {mapping::Actor::kAgency, agency};
  move.status = *status;
  move.business_status = str(data, "businessStatus");
  move.reason = str(data, "reason");
  move.note = str(data, "note");  // stays on the Task at the gateway, never in a status event
  auto decided = service_.transition(*current, &**task, move, received_at);
  if (!decided) return refuse(fhir::problem_of(decided.error()), "lifecycle");
  pipeline::CommitRequest request;
  request.inbound = std::move(inbound);
  request.inbound.answer_code = "200";
  // The agency its topic (or connection) proves, whatever the payload says.
  request.actor = {agency, "agency", ""};
  if (decided->task) request.inbound.answer = decided->task->json;
  service_.add_to(request, *decided, received_at);
  // The agency's trace goes on with the events its update causes (W3C Trace Context).
  if (const auto trace = str(doc, "traceparent"); !trace.empty()) {
    for (auto& e : request.events)
      e.value = events::with_traceparent(std::move(e.value), trace);
  }
  auto outcome = commit(std::move(request));
  if (!outcome) {
    // The store cannot write now, or another change of the Task came first: read it again.
    log::warn("kafka.update_not_stored", {{"partition", record.partition},
                                          {"offset", record.offset},
                                          {"reason", outcome.error().message}});
    return kafka::UpdateDisposition::kRetry;
  }
  log::info("kafka.update_applied",
            {{"agency", agency},
             {"status", std::string(mapping::to_string(decided->after.status))},
             {"duplicate", outcome->status == pipeline::CommitStatus::kDuplicate}});
  return kafka::UpdateDisposition::kCommitted;
}

}  // namespace sdoh::runtime
