#pragma once
// The referral lifecycle (SDOHCC Task for referral management): the one table of allowed status
// transitions, who may make each, and the rules around it. Used by every way a referral moves:
// FHIR PUT/PATCH of its Task, an agency's update on Kafka, an HL7 RRI^I12, the gateway's own
// overdue and hold checks. schemas/README.md ("Referral lifecycle") documents the same table;
// a unit test keeps the two equal.
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "gateway/mapping/referral.hpp"

namespace sdoh::mapping {

/// Who changes a referral.
enum class Actor {
  kAgency,   ///< the agency that owns the referral (Task.owner)
  kClinic,   ///< the clinic that requested it
  kGateway,  ///< the gateway itself: holds (no route, awaiting consent), overdue
};
std::string_view to_string(Actor a);

struct Transition {
  ReferralStatus from;
  ReferralStatus to;
  Actor by;
};

/// Every allowed status change. A change of businessStatus alone (same status) is allowed in
/// every status that is not final, to the owning agency and to the gateway (not the clinic).
std::span<const Transition> transitions();

enum class Verdict {
  kAllowed,
  kNotFromState,  ///< the current status does not allow it (FHIR 409 conflict)
  kNotThisActor,  ///< allowed from this status, but not to this actor (FHIR 422 business-rule)
};

struct TransitionCheck {
  Verdict verdict = Verdict::kAllowed;
  std::string message;  ///< why not, naming statuses and actor (never PHI)
  bool allowed() const { return verdict == Verdict::kAllowed; }
};

/// Whether `by` may move a referral from `from` to `to` (from == to: a businessStatus change).
TransitionCheck check_transition(ReferralStatus from, ReferralStatus to, Actor by);

/// The gateway's own businessStatus codes (the status stays what it is):
inline constexpr std::string_view kAwaitingConsent = "awaiting-consent";  ///< requested: no consent
inline constexpr std::string_view kNoRoute = "no-route";  ///< requested: no agency found, held
inline constexpr std::string_view kOverdue = "overdue";   ///< no agency answer within the SLA

/// Whether a referral is still waiting for its agency to receive or accept it, so that it turns
/// overdue once its agency's SLA has passed: requested, and not held by the gateway.
bool awaiting_agency(ReferralStatus status, std::string_view business_status);

}  // namespace sdoh::mapping
