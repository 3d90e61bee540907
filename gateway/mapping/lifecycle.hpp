#pragma once
// The referral lifecycle (SDOHCC Task for referral management): the one table of allowed status
// transitions, who may make each, the businessStatus codes and the statuses they go with, the
// gateway's holds (no route, awaiting consent) and what releases them, and the overdue rule.
// Used by every way a referral moves: FHIR PUT/PATCH of its Task, an agency's update on Kafka, an
// HL7 RRI^I12, the gateway's own routing, consent and overdue checks. Pure: no I/O, no clock.
// schemas/README.md ("Referral lifecycle") documents the same tables; unit tests keep them equal.
//
// Refusals come in two kinds, so that every protocol answers alike:
//   Verdict::kConflict      the referral's current state does not allow the change (from a final
//                           status, a pair not in the table, a held referral, a gateway move not
//                           in its table): FHIR 409 (issue `conflict`).
//   Verdict::kBusinessRule  the change exists, but the request breaks a rule: another party's
//                           change (a clinic accepting, an agency cancelling), a businessStatus the
//                           vocabulary does not know, does not pair with the status, or that only
//                           the gateway sets: FHIR 422 (issue `business-rule`).
// HL7 answers both with AE; a Kafka update refused either way becomes a dead letter (stage
// `lifecycle`). A refusal changes nothing. Messages name statuses, codes and parties, never PHI.
#include <chrono>
#include <cstdint>
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
  kGateway,  ///< the gateway itself: routing (no-route), consent (awaiting-consent), overdue
};
std::string_view to_string(Actor a);
/// "agency" → kAgency (the status event's updatedBy.role); nullopt for anything else.
std::optional<Actor> actor_from(std::string_view role);

// ---------------------------------------------------------------------------------------------
// Status transitions

struct Transition {
  ReferralStatus from;
  ReferralStatus to;
  Actor by;
};

/// Every allowed status change (THE table). A change of businessStatus alone (same status) is not
/// a row: see check_change().
std::span<const Transition> transitions();

enum class Verdict {
  kAllowed,
  kConflict,      ///< the current state does not allow it (FHIR 409 conflict)
  kBusinessRule,  ///< allowed from this state, but not this request (FHIR 422 business-rule)
  // The first names of the two refusals, kept for existing callers.
  kNotFromState = kConflict,
  kNotThisActor = kBusinessRule,
};

/// Why a change is refused, finer than the Verdict: for metrics labels, dead-letter text and the
/// FHIR issue expression (field()).
enum class Refusal {
  kNone,
  kFinal,                   ///< conflict: rejected, completed, failed and cancelled end a referral
  kNotInTable,              ///< conflict: no row from → to (e.g. requested → completed)
  kHeld,                    ///< conflict: held for no route; no agency owns it yet
  kGatewayMove,             ///< conflict: a gateway businessStatus move not in its table
  kWrongActor,              ///< business rule: the row belongs to another party
  kUnknownBusinessStatus,   ///< business rule: the code is not in the vocabulary
  kBusinessStatusMismatch,  ///< business rule: the code does not go with the status
  kReservedBusinessStatus,  ///< business rule: only the gateway sets or clears this code
};
std::string_view to_string(Refusal r);

/// Which element a refusal is about: Task.status / data.status, or Task.businessStatus /
/// data.businessStatus.
enum class LifecycleField { kStatus, kBusinessStatus };

struct TransitionCheck {
  Verdict verdict = Verdict::kAllowed;
  Refusal refusal = Refusal::kNone;
  LifecycleField field = LifecycleField::kStatus;
  std::string message;     ///< why not, naming statuses, codes and parties (never PHI)
  bool unchanged = false;  ///< allowed because nothing changes: answer as usual, no status event
  bool allowed() const { return verdict == Verdict::kAllowed; }
};

/// Whether `by` may move a referral from status `from` to `to`, the status alone (the table).
/// from == to is a businessStatus change: allowed to the agency and the gateway in any status that
/// is not final, refused to the clinic. check_change() decides with the businessStatus too.
TransitionCheck check_transition(ReferralStatus from, ReferralStatus to, Actor by);

/// A referral's position in its lifecycle: Task.status and Task.businessStatus (empty: none).
/// The view does not own the code.
struct LifecycleState {
  ReferralStatus status = ReferralStatus::kRequested;
  std::string_view business_status;
  friend bool operator==(const LifecycleState&, const LifecycleState&) = default;
};

/// Whether `by` may change a referral from `from` to `to`, status and businessStatus together.
/// In this order:
///  - nothing changes (same status, same businessStatus): allowed, `unchanged` (a repeat is
///    answered as before and makes no status event);
///  - from a final status: conflict;
///  - held for no route: only the gateway (releasing it, gateway_moves()) and the clinic
///    (cancelling) change it; an agency gets a conflict;
///  - the status part by check_transition(); the same status with a new businessStatus only by
///    the agency (its codes) or the gateway (gateway_moves());
///  - a businessStatus that is new must be in the vocabulary, go with the new status and be one
///    `by` may set; a gateway code (awaiting-consent, no-route, overdue) stays until the gateway
///    moves it or the status changes, so an agency cannot clear `overdue` and have it raised
///    again. A code carried over unchanged into a new status must go with that status: apply
///    carry_over() first.
TransitionCheck check_change(const LifecycleState& from, const LifecycleState& to, Actor by);

/// The state a change should be checked and stored as: when the status changes and the request
/// keeps the current businessStatus (a FHIR PUT of the whole Task, a PATCH of /status only), a
/// code that does not go with the new status is dropped — `overdue` does not follow a referral
/// into received, `family-contacted` does not follow it into cancelled. Anything else is returned
/// as asked.
LifecycleState carry_over(const LifecycleState& from, const LifecycleState& to);

// ---------------------------------------------------------------------------------------------
// businessStatus vocabulary

/// The code system of the gateway's businessStatus codes (Task.businessStatus.coding.system).
/// The SDOHCC IG defines no value set for Task.businessStatus; where it has a code for the same
/// idea (SDOHCC-CodeSystemTemporaryCodes) the entry names it.
inline constexpr std::string_view kBusinessStatusSystem =
    "urn:sdoh:codesystem:referral-business-status";

/// The gateway's own codes (the status stays what it is):
inline constexpr std::string_view kAwaitingConsent = "awaiting-consent";  ///< requested: no consent
inline constexpr std::string_view kNoRoute = "no-route";  ///< requested: no agency found, held
/// requested: the need could not be told from the codes sent (a clinic's local codes no table
/// translates), held before routing
inline constexpr std::string_view kUncategorised = "uncategorised";
inline constexpr std::string_view kOverdue = "overdue";   ///< no agency answer within the SLA

/// A set of statuses as bits (1 << status); a set of actors likewise.
using StatusSet = std::uint16_t;
using ActorSet = std::uint8_t;
constexpr StatusSet status_bit(ReferralStatus s) {
  return static_cast<StatusSet>(1u << static_cast<unsigned>(s));
}
constexpr ActorSet actor_bit(Actor a) {
  return static_cast<ActorSet>(1u << static_cast<unsigned>(a));
}

struct BusinessStatusCode {
  std::string_view code;
  std::string_view display;
  StatusSet statuses;  ///< the statuses it goes with
  ActorSet set_by;     ///< who may set it
  std::string_view definition;
  std::string_view sdohcc;  ///< the SDOHCC temporary code for the same idea, or empty
  bool goes_with(ReferralStatus s) const { return (statuses & status_bit(s)) != 0; }
  bool settable_by(Actor a) const { return (set_by & actor_bit(a)) != 0; }
  bool reserved() const { return set_by == actor_bit(Actor::kGateway); }
};

/// Every code, in the order schemas/README.md lists them.
std::span<const BusinessStatusCode> business_status_codes();
/// The entry for `code`, or nullptr when the vocabulary does not know it.
const BusinessStatusCode* find_business_status(std::string_view code);

/// Whether `by` may put a referral in `status` with businessStatus `code` (empty: none, always
/// allowed). Refusals are kBusinessRule with field kBusinessStatus.
TransitionCheck check_business_status(ReferralStatus status, std::string_view code, Actor by);

// ---------------------------------------------------------------------------------------------
// The gateway's holds and moves

/// A businessStatus change the gateway makes on a `requested` referral (the status does not
/// change): holding it, releasing it, or raising the overdue alert.
struct GatewayMove {
  std::string_view from;  ///< businessStatus before ("" none)
  std::string_view to;    ///< businessStatus after
  std::string_view why;   ///< what makes the gateway do it, for the documentation
};
/// Every move the gateway may make (the second table). Rows with from == kNoRoute,
/// kUncategorised or kAwaitingConsent release a hold; the row to kOverdue is the overdue alert,
/// which only a referral waiting for its agency can get, once.
std::span<const GatewayMove> gateway_moves();

/// The state of a new referral (its first status event, sequence 1): requested, with no-route when
/// no agency was named or routed (whatever the consent), else awaiting-consent without active
/// consent, else no businessStatus.
LifecycleState initial_state(bool has_agency, bool consent_active);

/// Whether the gateway holds the referral: requested with no-route or uncategorised (no agency
/// owns it; nothing but a route, a translation of its codes or the clinic's cancel moves it) or
/// awaiting-consent (the agency has it without
/// contact details; the SLA clock waits for the consent).
bool held(const LifecycleState& s);

/// Whether a referral is still waiting for its agency to receive or accept it, so that its
/// agency's SLA runs: requested, and not held by the gateway (`overdue` is still waiting).
bool awaiting_agency(ReferralStatus status, std::string_view business_status);

// ---------------------------------------------------------------------------------------------
// Overdue

using Clock = std::chrono::system_clock;

/// When a referral in state `s`, waiting for its agency since `waiting_since`, falls overdue:
/// waiting_since + sla. nullopt when no alert can fall due: the referral is not waiting for its
/// agency (received, accepted or later; held), or the alert was already raised (businessStatus
/// overdue: raised once). `waiting_since` is when the referral started waiting for this agency —
/// the time of its last status event while it is requested without a businessStatus (its first
/// event, or the gateway's release of a hold), since nothing else changes a waiting referral.
std::optional<Clock::time_point> overdue_at(const LifecycleState& s,
                                            Clock::time_point waiting_since,
                                            std::chrono::milliseconds sla);

/// Whether the gateway raises the overdue alert at `now`: overdue_at() has a time and `now` is at
/// or past it (within the SLA means strictly before the deadline). The alert is the change
/// overdue_alert(): the status unchanged, businessStatus overdue, by the gateway; once it is
/// made, overdue_at() is nullopt, so it is raised once.
bool overdue_due(const LifecycleState& s, Clock::time_point waiting_since,
                 std::chrono::milliseconds sla, Clock::time_point now);

/// The state the overdue alert moves a referral to: requested + overdue.
LifecycleState overdue_alert();

}  // namespace sdoh::mapping
