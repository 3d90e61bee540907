#include "gateway/mapping/lifecycle.hpp"

#include <array>

namespace sdoh::mapping {

namespace {

using S = ReferralStatus;
using A = Actor;

// THE table. Keep schemas/README.md ("Allowed transitions") in step: a test compares them.
// SDOHCC TaskForReferralManagement's state diagram, with two choices of ours: `received` (the
// agency has the referral and is deciding; HL7 RF1-1 P) before accepted/rejected, and
// cancellation by the requesting clinic only — an agency ends a referral with rejected (before
// accepting) or failed (after), so that "who ended it" is never ambiguous in reports.
constexpr std::array kTransitions = {
    Transition{S::kRequested, S::kReceived, A::kAgency},
    Transition{S::kRequested, S::kAccepted, A::kAgency},
    Transition{S::kRequested, S::kRejected, A::kAgency},
    Transition{S::kRequested, S::kCancelled, A::kClinic},
    Transition{S::kReceived, S::kAccepted, A::kAgency},
    Transition{S::kReceived, S::kRejected, A::kAgency},
    Transition{S::kReceived, S::kCancelled, A::kClinic},
    Transition{S::kAccepted, S::kInProgress, A::kAgency},
    Transition{S::kAccepted, S::kOnHold, A::kAgency},
    Transition{S::kAccepted, S::kCompleted, A::kAgency},
    Transition{S::kAccepted, S::kFailed, A::kAgency},
    Transition{S::kAccepted, S::kCancelled, A::kClinic},
    Transition{S::kInProgress, S::kOnHold, A::kAgency},
    Transition{S::kInProgress, S::kCompleted, A::kAgency},
    Transition{S::kInProgress, S::kFailed, A::kAgency},
    Transition{S::kInProgress, S::kCancelled, A::kClinic},
    Transition{S::kOnHold, S::kInProgress, A::kAgency},
    Transition{S::kOnHold, S::kCompleted, A::kAgency},
    Transition{S::kOnHold, S::kFailed, A::kAgency},
    Transition{S::kOnHold, S::kCancelled, A::kClinic},
};

constexpr StatusSet operator|(S a, S b) {
  return static_cast<StatusSet>(status_bit(a) | status_bit(b));
}
constexpr StatusSet operator|(StatusSet a, S b) {
  return static_cast<StatusSet>(a | status_bit(b));
}
constexpr ActorSet kByGateway = actor_bit(A::kGateway);
constexpr ActorSet kByAgency = actor_bit(A::kAgency);
constexpr ActorSet kByAgencyOrClinic = actor_bit(A::kAgency) | actor_bit(A::kClinic);

// The businessStatus vocabulary. Keep schemas/README.md ("businessStatus") in step: a test
// compares them. SDOHCC defines no businessStatus value set; `sdohcc` names its temporary code
// (SDOHCC-CodeSystemTemporaryCodes) for the same idea where there is one.
constexpr std::array kBusinessStatuses = {
    BusinessStatusCode{kAwaitingConsent, "Awaiting consent", status_bit(S::kRequested), kByGateway,
                       "The family's consent to share contact details with the agency is not on "
                       "file: the agency has the referral without them, and its SLA waits.",
                       ""},
    BusinessStatusCode{kNoRoute, "No route (held)", status_bit(S::kRequested), kByGateway,
                       "No agency was named and no route matched: the referral is held at the "
                       "gateway, counted and listed for operations, until a route is added.",
                       ""},
    BusinessStatusCode{
        kUncategorised, "Uncategorised (held)", status_bit(S::kRequested), kByGateway,
        "The referral's need could not be told from the codes the clinic sent (local "
        "codes no table translates): the referral is held at the gateway, counted "
        "and kept as a dead letter, until a local code table translates them.",
        ""},
    BusinessStatusCode{kOverdue, "Overdue", status_bit(S::kRequested), kByGateway,
                       "The agency did not receive or accept the referral within its SLA; "
                       "raised once.",
                       ""},
    BusinessStatusCode{"family-contacted", "Family contacted",
                       S::kReceived | S::kAccepted | S::kInProgress | S::kOnHold, kByAgency,
                       "The agency reached the family.", ""},
    BusinessStatusCode{
        "unable-to-contact", "Unable to contact",
        S::kReceived | S::kAccepted | S::kInProgress | S::kOnHold | S::kRejected | S::kFailed,
        kByAgency, "The agency tried and could not reach the family.", ""},
    BusinessStatusCode{"scheduled", "First visit scheduled", S::kAccepted | S::kInProgress,
                       kByAgency, "A first visit, intake or appointment is booked.", ""},
    BusinessStatusCode{"waitlisted", "Waitlisted", S::kReceived | S::kAccepted | S::kOnHold,
                       kByAgency, "The family is on the agency's waiting list.",
                       "not-enrolled-on-waitlist"},
    BusinessStatusCode{"enrolled", "Enrolled", S::kInProgress | S::kCompleted, kByAgency,
                       "The family is enrolled in the agency's program.", "enrolled"},
    BusinessStatusCode{"service-provided", "Service provided", S::kInProgress | S::kCompleted,
                       kByAgency,
                       "A one-time service was given (a food box, a legal consultation, a "
                       "child-care placement list).",
                       ""},
    BusinessStatusCode{"declined-by-family", "Declined by family",
                       S::kRejected | S::kFailed | S::kCancelled, kByAgencyOrClinic,
                       "The family does not want the service.", ""},
    BusinessStatusCode{"no-capacity", "No capacity", S::kRejected | S::kOnHold, kByAgency,
                       "The agency cannot take the family now.", "no-capacity"},
    BusinessStatusCode{"ineligible", "Not eligible", S::kRejected | S::kFailed, kByAgency,
                       "The family does not meet the program's eligibility rules.", ""},
    BusinessStatusCode{"out-of-area", "Outside the service area", S::kRejected | S::kFailed,
                       kByAgency, "The family lives or moved outside the agency's service area.",
                       ""},
    BusinessStatusCode{
        "duplicate-referral", "Duplicate referral", S::kRejected | S::kCancelled, kByAgencyOrClinic,
        "The family was already referred to or is already served by the agency.", ""},
    BusinessStatusCode{"expired", "Expired", status_bit(S::kFailed), kByAgency,
                       "The referral lapsed at the agency (HL7 table 0283 E).", ""},
};

// The gateway's own moves on a requested referral. Keep schemas/README.md ("Holds and the
// gateway's moves") in step: a test compares them. Nothing leads back to "" from overdue, and
// overdue is reached only from "", which is how the alert is raised once.
constexpr std::array kGatewayMoves = {
    GatewayMove{kNoRoute, "",
                "a route found an agency (an operator's replay after adding one); consent on file"},
    GatewayMove{kNoRoute, kAwaitingConsent, "a route found an agency; no consent on file"},
    GatewayMove{kUncategorised, "",
                "a local code table now translates the need (an operator's replay after adding "
                "the code) and the clinic or a route names an agency; consent on file"},
    GatewayMove{kUncategorised, kAwaitingConsent,
                "the need is now translated and an agency found; no consent on file"},
    GatewayMove{kUncategorised, kNoRoute, "the need is now translated, and no route matches it"},
    GatewayMove{kAwaitingConsent, "", "the clinic sent the family's consent; the SLA starts"},
    GatewayMove{"", kAwaitingConsent,
                "the family's consent was revoked before the agency answered; the SLA stops"},
    GatewayMove{"", kOverdue, "the agency's SLA passed without an answer"},
};

std::string name(ReferralStatus s) {
  return std::string(to_string(s));
}

std::string quoted(std::string_view code) {
  return code.empty() ? std::string("none") : "\"" + std::string(code) + "\"";
}

TransitionCheck refuse(Verdict v, Refusal r, LifecycleField f, std::string message) {
  TransitionCheck c;
  c.verdict = v;
  c.refusal = r;
  c.field = f;
  c.message = std::move(message);
  return c;
}

std::string statuses_of(const BusinessStatusCode& c) {
  std::string out;
  for (int i = 0; i <= static_cast<int>(S::kCancelled); ++i) {
    const auto s = static_cast<S>(i);
    if (!c.goes_with(s)) continue;
    if (!out.empty()) out += ", ";
    out += to_string(s);
  }
  return out;
}

bool is_gateway_move(std::string_view from, std::string_view to) {
  for (const auto& m : kGatewayMoves) {
    if (m.from == from && m.to == to) return true;
  }
  return false;
}

}  // namespace

std::string_view to_string(Actor a) {
  switch (a) {
    case Actor::kAgency:
      return "agency";
    case Actor::kClinic:
      return "clinic";
    case Actor::kGateway:
      return "gateway";
  }
  return "gateway";
}

std::optional<Actor> actor_from(std::string_view role) {
  for (auto a : {Actor::kAgency, Actor::kClinic, Actor::kGateway}) {
    if (to_string(a) == role) return a;
  }
  return std::nullopt;
}

std::string_view to_string(Refusal r) {
  switch (r) {
    case Refusal::kNone:
      return "none";
    case Refusal::kFinal:
      return "final";
    case Refusal::kNotInTable:
      return "not-in-table";
    case Refusal::kHeld:
      return "held";
    case Refusal::kGatewayMove:
      return "gateway-move";
    case Refusal::kWrongActor:
      return "wrong-actor";
    case Refusal::kUnknownBusinessStatus:
      return "unknown-business-status";
    case Refusal::kBusinessStatusMismatch:
      return "business-status-mismatch";
    case Refusal::kReservedBusinessStatus:
      return "reserved-business-status";
  }
  return "none";
}

std::span<const Transition> transitions() {
  return kTransitions;
}

TransitionCheck check_transition(ReferralStatus from, ReferralStatus to, Actor by) {
  if (is_final(from)) {
    return refuse(
        Verdict::kConflict, Refusal::kFinal, LifecycleField::kStatus,
        "the referral is " + name(from) + ", a final status: nothing changes it any more");
  }
  if (from == to) {
    if (by == Actor::kClinic) {
      return refuse(Verdict::kBusinessRule, Refusal::kWrongActor, LifecycleField::kBusinessStatus,
                    "only the agency that owns the referral changes its businessStatus; the "
                    "clinic may only cancel it");
    }
    return {};
  }
  bool from_state = false;
  for (const auto& t : kTransitions) {
    if (t.from != from || t.to != to) continue;
    from_state = true;
    if (t.by == by) return {};
  }
  if (!from_state) {
    return refuse(Verdict::kConflict, Refusal::kNotInTable, LifecycleField::kStatus,
                  "a referral that is " + name(from) + " cannot become " + name(to) +
                      " (see the referral lifecycle table)");
  }
  if (to == S::kCancelled) {
    return refuse(Verdict::kBusinessRule, Refusal::kWrongActor, LifecycleField::kStatus,
                  "only the clinic that requested the referral may cancel it (" +
                      std::string(to_string(by)) + " tried); an agency rejects or fails it");
  }
  return refuse(Verdict::kBusinessRule, Refusal::kWrongActor, LifecycleField::kStatus,
                "only the agency that owns the referral may move it from " + name(from) + " to " +
                    name(to) + " (" + std::string(to_string(by)) + " tried)");
}

std::span<const BusinessStatusCode> business_status_codes() {
  return kBusinessStatuses;
}

const BusinessStatusCode* find_business_status(std::string_view code) {
  for (const auto& c : kBusinessStatuses) {
    if (c.code == code) return &c;
  }
  return nullptr;
}

TransitionCheck check_business_status(ReferralStatus status, std::string_view code, Actor by) {
  if (code.empty()) return {};
  const auto* entry = find_business_status(code);
  if (entry == nullptr) {
    return refuse(Verdict::kBusinessRule, Refusal::kUnknownBusinessStatus,
                  LifecycleField::kBusinessStatus,
                  "businessStatus " + quoted(code) + " is not a referral businessStatus code (" +
                      std::string(kBusinessStatusSystem) + ", listed in schemas/README.md)");
  }
  if (!entry->goes_with(status)) {
    return refuse(Verdict::kBusinessRule, Refusal::kBusinessStatusMismatch,
                  LifecycleField::kBusinessStatus,
                  "businessStatus " + quoted(code) + " does not go with status " + name(status) +
                      " (only with " + statuses_of(*entry) + ")");
  }
  if (!entry->settable_by(by)) {
    if (entry->reserved()) {
      return refuse(Verdict::kBusinessRule, Refusal::kReservedBusinessStatus,
                    LifecycleField::kBusinessStatus,
                    "businessStatus " + quoted(code) + " is set only by the gateway (" +
                        std::string(to_string(by)) + " tried)");
    }
    return refuse(Verdict::kBusinessRule, Refusal::kWrongActor, LifecycleField::kBusinessStatus,
                  "businessStatus " + quoted(code) + " is the agency's to set, not the " +
                      std::string(to_string(by)) + "'s");
  }
  return {};
}

LifecycleState carry_over(const LifecycleState& from, const LifecycleState& to) {
  if (to.status == from.status || to.business_status != from.business_status ||
      to.business_status.empty()) {
    return to;
  }
  const auto* entry = find_business_status(to.business_status);
  if (entry != nullptr && entry->goes_with(to.status)) return to;
  return {to.status, {}};
}

TransitionCheck check_change(const LifecycleState& from, const LifecycleState& to, Actor by) {
  if (from == to) {
    TransitionCheck same;
    same.unchanged = true;
    return same;
  }
  if (is_final(from.status)) return check_transition(from.status, to.status, by);

  const bool status_changes = from.status != to.status;
  const bool business_changes = from.business_status != to.business_status;
  const auto* current = find_business_status(from.business_status);
  const bool current_reserved = current != nullptr && current->reserved();

  if (by == Actor::kGateway) {
    // The gateway moves businessStatus only, and only along its own table.
    if (status_changes) {
      return refuse(Verdict::kConflict, Refusal::kGatewayMove, LifecycleField::kStatus,
                    "the gateway does not change a referral's status (" + name(from.status) +
                        " to " + name(to.status) + "); it moves only its own businessStatus codes");
    }
    if (from.status != S::kRequested ||
        !is_gateway_move(from.business_status, to.business_status)) {
      return refuse(Verdict::kConflict, Refusal::kGatewayMove, LifecycleField::kBusinessStatus,
                    "the gateway does not move a " + name(from.status) + " referral from " +
                        quoted(from.business_status) + " to " + quoted(to.business_status) +
                        " (see the gateway's moves in the referral lifecycle)");
    }
    return {};
  }

  if (from.status == S::kRequested && from.business_status == kNoRoute && by == Actor::kAgency) {
    return refuse(Verdict::kConflict, Refusal::kHeld, LifecycleField::kStatus,
                  "the referral is held (no-route): no agency owns it until a route is found");
  }
  if (from.status == S::kRequested && from.business_status == kUncategorised &&
      by == Actor::kAgency) {
    return refuse(Verdict::kConflict, Refusal::kHeld, LifecycleField::kStatus,
                  "the referral is held (uncategorised): no agency owns it until its need is "
                  "translated");
  }

  if (auto status = check_transition(from.status, to.status, by); !status.allowed()) return status;

  if (!status_changes && current_reserved) {
    // A gateway code changes by the gateway's moves or with the status, never alone by another
    // party: that keeps `overdue` raised once.
    return refuse(Verdict::kBusinessRule, Refusal::kReservedBusinessStatus,
                  LifecycleField::kBusinessStatus,
                  "businessStatus " + quoted(from.business_status) +
                      " is changed only by the gateway or by a new status (" +
                      std::string(to_string(by)) + " tried " + quoted(to.business_status) + ")");
  }

  if (business_changes) return check_business_status(to.status, to.business_status, by);
  // Carried over unchanged into a new status: the party did not set it, but it must still fit.
  if (const auto* kept = find_business_status(to.business_status);
      kept != nullptr && !kept->goes_with(to.status)) {
    return refuse(Verdict::kBusinessRule, Refusal::kBusinessStatusMismatch,
                  LifecycleField::kBusinessStatus,
                  "businessStatus " + quoted(to.business_status) + " does not go with status " +
                      name(to.status) + " (only with " + statuses_of(*kept) +
                      "); send a businessStatus for the new status, or none");
  }
  if (!to.business_status.empty() && find_business_status(to.business_status) == nullptr) {
    return check_business_status(to.status, to.business_status, by);
  }
  return {};
}

std::span<const GatewayMove> gateway_moves() {
  return kGatewayMoves;
}

LifecycleState initial_state(bool has_agency, bool consent_active) {
  if (!has_agency) return {S::kRequested, kNoRoute};
  if (!consent_active) return {S::kRequested, kAwaitingConsent};
  return {S::kRequested, {}};
}

bool held(const LifecycleState& s) {
  return s.status == S::kRequested &&
         (s.business_status == kNoRoute || s.business_status == kUncategorised ||
          s.business_status == kAwaitingConsent);
}

bool awaiting_agency(ReferralStatus status, std::string_view business_status) {
  return status == S::kRequested && !held({status, business_status});
}

std::optional<Clock::time_point> overdue_at(const LifecycleState& s,
                                            Clock::time_point waiting_since,
                                            std::chrono::milliseconds sla) {
  if (!awaiting_agency(s.status, s.business_status) || s.business_status == kOverdue) {
    return std::nullopt;
  }
  return waiting_since + sla;
}

bool overdue_due(const LifecycleState& s, Clock::time_point waiting_since,
                 std::chrono::milliseconds sla, Clock::time_point now) {
  const auto at = overdue_at(s, waiting_since, sla);
  return at && now >= *at;
}

LifecycleState overdue_alert() {
  return {S::kRequested, kOverdue};
}

}  // namespace sdoh::mapping
