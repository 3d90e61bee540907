#include "gateway/mapping/lifecycle.hpp"

#include <array>

namespace sdoh::mapping {

namespace {

using S = ReferralStatus;
using A = Actor;

// THE table. Keep schemas/README.md ("Referral lifecycle") in step: a test compares them.
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

std::span<const Transition> transitions() {
  return kTransitions;
}

TransitionCheck check_transition(ReferralStatus from, ReferralStatus to, Actor by) {
  const auto name = [](ReferralStatus s) { return std::string(to_string(s)); };
  if (is_final(from)) {
    return {Verdict::kNotFromState,
            "the referral is " + name(from) + ", a final status: nothing changes it any more"};
  }
  if (from == to) {
    if (by == Actor::kClinic) {
      return {Verdict::kNotThisActor,
              "only the agency that owns the referral changes its businessStatus; the clinic may "
              "only cancel it"};
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
    return {Verdict::kNotFromState, "a referral that is " + name(from) + " cannot become " +
                                        name(to) + " (see the referral lifecycle table)"};
  }
  if (to == S::kCancelled) {
    return {Verdict::kNotThisActor, "only the clinic that requested the referral may cancel it"};
  }
  return {Verdict::kNotThisActor, "only the agency that owns the referral may move it from " +
                                      name(from) + " to " + name(to)};
}

bool awaiting_agency(ReferralStatus status, std::string_view business_status) {
  return status == S::kRequested && business_status != kNoRoute &&
         business_status != kAwaitingConsent;
}

}  // namespace sdoh::mapping
