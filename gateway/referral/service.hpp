#pragma once
// The referral service: the one place that decides how a referral moves, whichever protocol
// asks. FHIR (a Task PUT/PATCH, a Consent), HL7 (RRI^I12, REF^I13, REF^I14), an agency's Kafka
// update and the gateway's own checks (overdue) translate their request into a Move or a
// consent decision; the service checks it against the lifecycle (gateway/mapping/lifecycle) and
// who may make it, and returns the typed Change: the referral's next state, its status event,
// the Task's next version. The adapters commit the Change with their own inbound record and
// answer as their protocol does. Pure: the caller reads the referral and its Task first.
//
// Locking is optimistic, by the referral's sequence (the number of its last status event): a
// Change's state is written only if the stored referral is still at the sequence it was read
// at (pipeline::ReferralState::expected_sequence), and its Task only if the Task is still at
// the version read (ResourceWrite::expected_version). A commit that loses the race fails with
// kConflict and changes nothing; the caller reads again and decides again.
#include <expected>
#include <optional>
#include <string>
#include <string_view>

#include "gateway/mapping/lifecycle.hpp"
#include "gateway/mapping/referral.hpp"
#include "gateway/pipeline/commit_port.hpp"
#include "gateway/pipeline/resource_port.hpp"

namespace sdoh::referral {

using mapping::Actor;
using mapping::ReferralStatus;

/// One referral as the closed loop knows it: its lifecycle position typed, and the rest of what
/// the store keeps for it (keys, agency, equity fields, where HL7 answers go) as stored.
struct Referral {
  std::string id;
  ReferralStatus status = ReferralStatus::kRequested;
  std::string business_status;  ///< a code of the lifecycle's vocabulary; empty: none
  int sequence = 1;             ///< of its last status event
  std::string agency_id;        ///< empty: held for no route
  std::string category;
  pipeline::ReferralState stored;  ///< as read (status and businessStatus as text)

  /// The typed referral of a stored state; nullopt when its status is not a lifecycle status
  /// (a store written by something else).
  static std::optional<Referral> from(const pipeline::ReferralState& state);
  /// The state to store: `stored` with this record's status, businessStatus, sequence, agency.
  pipeline::ReferralState state() const;
  mapping::LifecycleState lifecycle() const { return {status, business_status}; }
};

/// Who makes a change: the status event's updatedBy (role and id).
struct Party {
  Actor role = Actor::kAgency;
  std::string id;  ///< agency id, clinic (facility) id, or the gateway's check (overdue, consent)
};

/// A change of status and businessStatus a party asks for.
struct Move {
  Party by;
  ReferralStatus status = ReferralStatus::kRequested;
  std::string business_status;  ///< empty: none
  std::string reason;           ///< statusReason text; empty: none
  std::string note;             ///< added to Task.note (kept at the gateway, never in an event)
  std::string time;             ///< when it happened (RFC 3339); empty: when it was received
  /// The Task as the party wrote it (FHIR PUT or PATCH); none: the service edits the stored Task.
  std::optional<std::string> task_json;
  /// The businessStatus was not part of the request (a FHIR PATCH of /status, an HL7 message
  /// without a code): a code that does not go with the new status is dropped rather than refused.
  bool keep_business_status = false;
};

/// Why a change is refused. Every protocol answers alike: kConflict is FHIR 409 / HL7 AE; a
/// business rule FHIR 422 / HL7 AE; kForbidden FHIR 403 / HL7 AE; kTaskUnreadable FHIR 500 /
/// HL7 AE. Each is dead-lettered by its adapter (stage `lifecycle`). Messages never carry PHI.
struct Refusal {
  enum class Kind { kConflict, kBusinessRule, kForbidden, kTaskUnreadable };
  Kind kind = Kind::kConflict;
  mapping::Refusal why = mapping::Refusal::kNone;
  mapping::LifecycleField field = mapping::LifecycleField::kStatus;
  std::string message;
};

/// What a change does to a referral, for its adapter to commit.
struct Change {
  Referral before;
  Referral after;
  /// Nothing changes (a repeat): answer as usual; no event, no state, no Task version.
  bool unchanged = false;
  mapping::ReferralTransition transition;       ///< the status event's data (sequence before + 1)
  std::optional<pipeline::ResourceWrite> task;  ///< the Task's next version (none: no Task)
};

struct Settings {
  std::string gateway_id = "sdoh-gateway";
  std::string status_topic = "sdoh.referral-status.v1";
};

class Service {
 public:
  explicit Service(Settings settings) : settings_(std::move(settings)) {}

  /// A new referral: requested, held for no route when it has no agency (by the gateway's
  /// routing, whoever asked; held uncategorised instead when `r.business_status` is
  /// mapping::kUncategorised: its need could not be told), else awaiting-consent without active
  /// consent, else waiting for its agency (by `by`, the clinic). `r` names the referral (id,
  /// agency, category and the rest of `stored`); its first status event has sequence 1. Written
  /// only if no referral has its id yet. `time` is when the clinic made it (empty: when received).
  Change open(Referral r, bool consent_active, Party by, std::string time) const;

  /// A referral held for no route that routing now finds `agency_id` for: owned by the agency,
  /// requested with awaiting-consent (no active consent) or nothing, by the gateway's routing;
  /// its Task names the agency as owner. nullopt when it is not held for no route.
  std::optional<Change> route(const Referral& held, const pipeline::ResourceRow* task,
                              const std::string& agency_id, const std::string& agency_name,
                              bool consent_active, std::string_view received_at) const;

  /// A referral held uncategorised (its need in codes no table translated) whose need is now
  /// `category` (a local code table translates it): with `agency_id` (the clinic named it, or
  /// routing found it) requested with awaiting-consent or nothing, owned by the agency; without
  /// one held for no route. By the gateway's routing; its Task's need and owner are rewritten.
  /// nullopt when it is not held uncategorised.
  std::optional<Change> categorise(const Referral& held, const pipeline::ResourceRow* task,
                                   const std::string& category, const std::string& agency_id,
                                   const std::string& agency_name, bool consent_active,
                                   std::string_view received_at) const;

  /// The clinic's re-routing of a referral to another agency (HL7 REF^I13 naming a new one):
  /// only while no agency has received it (requested). A held referral is routed (route(), by
  /// the gateway); one waiting for its agency is given to `agency_id` by the clinic: requested,
  /// with awaiting-consent or nothing as its consent says (an overdue alert belonged to the old
  /// agency's SLA), the Task owned by the new agency, its status event naming the new agency.
  /// Refused (kConflict, field status) once received or later; nothing when it is already that
  /// agency's (unchanged).
  std::expected<Change, Refusal> reroute(const Referral& current, const pipeline::ResourceRow* task,
                                         Party clinic, const std::string& agency_id,
                                         const std::string& agency_name, bool consent_active,
                                         std::string_view received_at) const;

  /// The org.sdoh.referral.v1 event of a referral (`data` as the referral mapping made it) on
  /// the agency's topic, as of status sequence `sequence` (1: when it was made, later: sent
  /// again on release, with consent and contact details).
  /// `revision` names a later edition at the same sequence (a clinic's modify): its event id
  /// differs from the first one's, so consumers that dedupe by id take it.
  pipeline::OutboxEvent referral_event(const std::string& referral_id, int sequence,
                                       std::string topic, std::string data,
                                       std::string_view received_at,
                                       std::string_view revision = {}) const;

  /// A status (and businessStatus) change by `move.by` of `current`, whose Task is `task` (null:
  /// the referral has no Task at the gateway). Checks, in this order: an agency changes only
  /// its own referrals (kForbidden); the lifecycle (status, businessStatus and who, see
  /// mapping::check_change); the Task can be edited.
  std::expected<Change, Refusal> transition(const Referral& current,
                                            const pipeline::ResourceRow* task, const Move& move,
                                            std::string_view received_at) const;

  /// A clinic's cancel of its own referral (FHIR Task status cancelled, HL7 REF^I14).
  std::expected<Change, Refusal> cancel(const Referral& current, const pipeline::ResourceRow* task,
                                        Party clinic, std::string reason,
                                        std::string_view received_at) const;

  /// What a consent decision for the referral's agency does to it, by the gateway: an active
  /// consent releases a referral waiting with awaiting-consent (the agency's SLA starts now); a
  /// revoked one holds a referral still waiting for its agency (requested, no businessStatus)
  /// until consent comes again. nullopt: nothing changes (not requested, no agency, or already
  /// so).
  std::optional<Change> consent(const Referral& current, const pipeline::ResourceRow* task,
                                bool active, std::string_view received_at) const;

  /// The overdue alert (requested → requested + overdue, by the gateway), when `current` is due
  /// (mapping::overdue_due); nullopt when not.
  std::optional<Change> overdue(const Referral& current, const pipeline::ResourceRow* task,
                                mapping::Clock::time_point waiting_since,
                                std::chrono::milliseconds sla, mapping::Clock::time_point now,
                                std::string_view received_at) const;

  /// Adds a Change to a commit: its status event (org.sdoh.referral.status.v1), the referral's
  /// next state (written only if the stored one is still at change.before's sequence) and the
  /// Task's next version. Nothing for an unchanged Change.
  void add_to(pipeline::CommitRequest& commit, const Change& change,
              std::string_view received_at) const;

  /// The org.sdoh.referral.status.v1 event of one transition (its id is derived from the
  /// referral and the sequence, so a resend never makes a second one).
  pipeline::OutboxEvent status_event(const mapping::ReferralTransition& t,
                                     std::string_view received_at) const;

  const Settings& settings() const { return settings_; }

 private:
  // A held referral the gateway's routing moves on to `to` as `after` (its agency, its need):
  // the Task (`task_json`, the stored one edited so far) owned by the agency, with the new
  // status. nullopt when the lifecycle does not allow the move.
  std::optional<Change> release(const Referral& held, const Referral& after,
                                const pipeline::ResourceRow* task, std::string task_json,
                                const std::string& agency_name, mapping::LifecycleState to,
                                std::string_view received_at) const;
  std::expected<Change, Refusal> change(const Referral& current, const pipeline::ResourceRow* task,
                                        const Move& move, mapping::LifecycleState to,
                                        std::string_view received_at) const;
  Settings settings_;
};

}  // namespace sdoh::referral
