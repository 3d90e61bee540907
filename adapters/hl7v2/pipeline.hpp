#pragma once
// The HL7 v2 ingest pipeline behind the MLLP listener: parse → validate → map (the shared
// mapping engine) → one durable commit of the message, its events and its ACK → answer.
// A positive ACK leaves only after the commit completed (DESIGN.md, delivery promise); a
// resend of a committed control id from the same sender gets the stored ACK and adds nothing;
// a rejected message gets AE/AR (or CE/CR) with ERR, a dead letter and a dead-letter event.
// Enhanced acknowledgment mode (MSH-15/MSH-16) answers with the accept ACK and, as a separate
// message in the same answer, the application ACK; ack.hpp states the rules. The stored answer
// holds both, so a resend gets both again. A sender's ACK (MSH-9 ACK, e.g. acknowledging our
// application ACK) is consumed: empty answer, nothing stored, counted in
// sdoh_hl7_acks_received_total.
//
// Message types: ORU^R01 → screening events; REF^I12 → a referral event and its first status
// event (requested); RRI^I12 → a referral status event. A REF^I12 that names no agency (no PRD of
// role RT, or PRD-7 empty) is routed by need, area and the child's age (`route`); when no route
// matches it is held, as FHIR referrals are: accepted (AA/CA), its Task kept without an owner,
// one status event requested + no-route by the gateway, no referral event. MSH-18 decides how bytes
// become text (charset.hpp); times without an offset are read in the sender's configured time zone.
#include <functional>
#include <memory>
#include <string>

#include "gateway/config/config.hpp"
#include "gateway/identity/parties.hpp"
#include "gateway/identity/rate_limits.hpp"
#include "gateway/mapping/engine.hpp"
#include "gateway/mapping/routing.hpp"
#include "gateway/metrics/registry.hpp"
#include "gateway/ops/last_hour.hpp"
#include "gateway/pipeline/commit_port.hpp"
#include "gateway/pipeline/hl7_port.hpp"
#include "gateway/pipeline/referral_port.hpp"
#include "gateway/pipeline/resource_port.hpp"
#include "gateway/pipeline/store_executor.hpp"

namespace sdoh::hl7v2 {

struct Hl7PipelineOptions {
  std::string gateway_id = "sdoh-gateway";
  config::KafkaTopics topics;
  config::Hl7Config hl7;  ///< time zones and consent policy per sender
  /// The referrals the gateway keeps, for linking RRI^I12 responses and finding a referral a
  /// REF^I12 or screening made before; null: none is known (every RRI^I12 is refused). Must
  /// outlive the pipeline.
  const pipeline::ReferralRepository* referrals = nullptr;
  /// Where the decisions that read the store run (a referral's: its reads block): the store
  /// executor; parsing, validation, mapping and commits stay on the caller's executor (the
  /// connection's I/O thread). Null: everything on the caller's executor (unit tests). Must
  /// outlive the pipeline.
  pipeline::StoreExecutor* store_executor = nullptr;
  /// The FHIR resources the gateway keeps: when set, a REF^I12 also creates the referral's Task
  /// (GET /fhir/Task/{referralId}) and each RRI^I12 a new version of it, in the same commit.
  const pipeline::ResourceReader* resources = nullptr;
  /// Routing for a REF^I12 that names no agency; empty function: none is routed (all held).
  mapping::RouteLookup route;
  /// The topic of an agency's referral events (its own from routing); empty function or result:
  /// topics.referral.
  std::function<std::string(std::string_view agency_id)> agency_topic;
  /// An ORU^R01 screening in which the family asked for help with a need (assistanceRequested
  /// true) opens a referral for it, routed like a REF^I12 naming no agency.
  bool refer_from_screening = false;
  /// The open (not final) referral of this patient (pseudonym) for this need, if any: a
  /// screening does not open a second one. Empty function: none is looked for.
  std::function<std::optional<std::string>(std::string_view patient, std::string_view category)>
      open_referral_for;
  /// Who each party is (the `parties` config section): an RRI^I12 counts as the agency its
  /// connection proves to be. Null: the message's PRD-7 (else MSH-4) names its agency
  /// (unit tests of the mapping only).
  const identity::Parties* parties = nullptr;
  /// Messages per party (its connection's, else its source address); over the limit a message
  /// gets AE with ERR-3 207 and is not stored: the sender resends it later. Null: no limit.
  identity::RateLimits* rate_limits = nullptr;
  /// Each answer's ACK code by sender, for the ops API's last hour; null: not counted. Must
  /// outlive the pipeline.
  ops::Throughput* throughput = nullptr;
};

class Hl7Pipeline final : public pipeline::Hl7Handler {
 public:
  /// References must outlive the pipeline; whatever must hear of a commit observes `store`
  /// (pipeline::ObservedCommitPort). Throws std::runtime_error when a configured time zone cannot
  /// be loaded (start-up only; --check-config reports it first).
  Hl7Pipeline(const mapping::ScreeningMapper& mapper, pipeline::CommitPort& store,
              Hl7PipelineOptions options, metrics::Registry& registry);
  ~Hl7Pipeline() override;

  boost::asio::awaitable<std::string> handle(std::string message,
                                             const pipeline::Peer& peer) override;

  struct Impl;

 private:
  boost::asio::awaitable<std::string> handle_here(std::string message, const pipeline::Peer& peer);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sdoh::hl7v2
