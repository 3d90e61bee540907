#include "gateway/identity/parties.hpp"

#include <algorithm>

#include "gateway/identity/networks.hpp"

namespace sdoh::identity {

namespace {

Error refused(std::string message) {
  // HL7: MSH-4 (sending facility) names who the message says it is from.
  return Error::unsupported(std::move(message), Location{"MSH", 1, 4, 0, ""});
}

}  // namespace

bool certificate_matches(std::string_view subject, std::string_view expected) {
  if (subject.empty() || expected.empty()) return false;
  if (subject == expected) return true;
  if (expected.find('=') != std::string_view::npos) return false;
  // A bare name: the subject's CN, the last "/CN=" component of the one-line form.
  const auto at = subject.rfind("/CN=");
  if (at == std::string_view::npos) return false;
  auto cn = subject.substr(at + 4);
  cn = cn.substr(0, cn.find('/'));
  return cn == expected;
}

std::string Parties::connection_party(const ConnectionIdentity& connection) const {
  for (const auto& p : parties_) {
    if (proves(p, connection)) return p.id;
  }
  return {};
}

bool proves(const config::PartyConfig& party, const ConnectionIdentity& connection) {
  if (!party.certificate_subject.empty() &&
      certificate_matches(connection.tls_subject, party.certificate_subject))
    return true;
  return !party.source_addresses.empty() && in_networks(party.source_addresses, connection.address);
}

const config::PartyConfig* Parties::find(std::string_view id) const {
  for (const auto& p : parties_) {
    if (p.id == id) return &p;
  }
  return nullptr;
}

const config::PartyConfig* Parties::by_sender(std::string_view application,
                                              std::string_view facility) const {
  const std::string full = std::string(application) + "^" + std::string(facility);
  for (const auto& p : parties_) {
    if (std::find(p.mllp_senders.begin(), p.mllp_senders.end(), full) != p.mllp_senders.end())
      return &p;
  }
  for (const auto& p : parties_) {
    if (std::find(p.mllp_senders.begin(), p.mllp_senders.end(), facility) != p.mllp_senders.end())
      return &p;
  }
  return nullptr;
}

Result<std::string> Parties::mllp_agency(const ConnectionIdentity& connection,
                                         std::string_view application,
                                         std::string_view facility) const {
  if (parties_.empty() && dev_mode_) return std::string();
  const std::string named = std::string(application) + "^" + std::string(facility);
  const auto* party = by_sender(application, facility);
  if (party == nullptr) {
    return fail(refused("MSH-3^MSH-4 " + named +
                        " is not the MLLP sender of any agency (parties.<id>.mllp_senders)"));
  }
  if (party->kind != "agency") {
    return fail(refused("MSH-3^MSH-4 " + named + " is clinic " + party->id +
                        ": only the agency a referral went to answers about it"));
  }
  if (dev_mode_) return party->id;
  // Production: the connection proves who it is; the message's header proves nothing.
  if (proves(*party, connection)) return party->id;
  return fail(refused("this connection is not agency " + party->id +
                      "'s: neither its client certificate nor its source address is the one "
                      "parties." +
                      party->id + " names"));
}

Result<std::string> Parties::mllp_clinic(const ConnectionIdentity& connection,
                                         std::string_view application,
                                         std::string_view facility) const {
  const std::string named = std::string(application) + "^" + std::string(facility);
  const auto* party = by_sender(application, facility);
  if (party != nullptr && party->kind != "clinic") {
    return fail(refused("MSH-3^MSH-4 " + named + " is agency " + party->id +
                        ": an agency answers about referrals (RRI^I12); it does not send "
                        "screenings or referrals"));
  }
  if (dev_mode_) return party != nullptr ? party->id : std::string();
  // Production: the connection proves who it is; the message's header proves nothing.
  if (party == nullptr) {
    if (const auto proven = connection_party(connection); !proven.empty()) {
      return fail(refused("this connection is " + proven + "'s, but MSH-3^MSH-4 " + named +
                          " is not among parties." + proven + ".mllp_senders"));
    }
    return fail(refused("MSH-3^MSH-4 " + named +
                        " is not the MLLP sender of any clinic (parties.<id>.mllp_senders)"));
  }
  if (proves(*party, connection)) return party->id;
  return fail(refused("this connection is not clinic " + party->id +
                      "'s: neither its client certificate nor its source address is the one "
                      "parties." +
                      party->id + " names"));
}

}  // namespace sdoh::identity
