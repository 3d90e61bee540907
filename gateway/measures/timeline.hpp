#pragma once
// A referral's timeline: when it was made, released to its agency, received, accepted and closed,
// with its outcome and the groups the measures count it in (agency, need, clinic, race,
// ethnicity, preferred language, 3-digit ZIP). One per referral, written by the store in the same
// transaction as the referral state change that moves it (advance()), and kept for the measure
// window (measures.window) after the referral closed, even once its Task is pruned: every
// closed-loop figure (/metrics, /ops/api/v1/referrals and /equity, tools/report) is computed from
// timelines. Pure: no I/O, no clock.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "gateway/pipeline/commit_port.hpp"

namespace sdoh::measures {

struct ReferralTimeline {
  std::string referral_id;
  /// Unix milliseconds; 0: not (yet) so.
  std::int64_t created_ms = 0;
  /// When it last began waiting for its agency: its creation, or the release of a hold (no-route,
  /// uncategorised, awaiting-consent), or the clinic's re-routing to another agency. Times are
  /// measured from here; 0 while it has never been released (held since it was made).
  std::int64_t released_ms = 0;
  std::int64_t received_ms = 0;  ///< first reached received, or an agency answer beyond it
  std::int64_t accepted_ms = 0;  ///< first reached accepted (or in-progress, on-hold, ...)
  std::int64_t closed_ms = 0;    ///< reached a final status
  std::string outcome;           ///< completed | rejected | failed | cancelled; empty: open
  std::string status;            ///< the current status (lifecycle name)
  std::string business_status;   ///< the current businessStatus; empty: none
  int sequence = 0;              ///< of the state it was last advanced by
  std::string agency;            ///< empty: none (held for no route, uncategorised)
  std::string category;
  std::string clinic;
  std::string race;
  std::string ethnicity;
  std::string language;
  std::string zip3;

  /// Where its window position is taken from: its release, else (never released) its creation.
  std::int64_t started_ms() const { return released_ms != 0 ? released_ms : created_ms; }
  bool open() const { return outcome.empty(); }
  /// Held by the gateway now (mapping::held): the hold's code, else empty.
  std::string_view held_reason() const;
  /// The funnel's steps, monotone: a referral that reached a step reached the ones before it,
  /// whether or not each was recorded (an agency may accept without "received"; a timeline
  /// filled from a store older than timelines knows only where the referral is).
  bool reached_received() const;
  bool reached_accepted() const;
};

/// The timeline after `after` (a referral state a commit writes) at `at_ms`, from `before` (the
/// stored one; none for a new referral). Each step is recorded once, at its first time; a
/// release after a hold starts the clock again; a state older than the one the timeline was
/// advanced by (a lower sequence) changes nothing, as it does not change the referral. The
/// groups are kept from the first state that names them (a state read back from the store
/// names no ZIP or clinic); the agency and need follow the referral (routing, re-routing,
/// categorising).
ReferralTimeline advance(const std::optional<ReferralTimeline>& before,
                         const pipeline::ReferralState& after, std::int64_t at_ms);

}  // namespace sdoh::measures
