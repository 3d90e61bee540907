#include "adapters/fhir/consent.hpp"

#include <algorithm>
#include <cctype>

#include "gateway/referral/task_document.hpp"

namespace sdoh::fhir {

std::string agency_id_of(const Reference& organization) {
  std::string raw = organization.identifier.value;
  if (raw.empty()) {
    auto [type, id] = organization.type_and_id();
    if (type == "Organization") raw = id;
  }
  return referral::agency_id_from(raw);
}

std::vector<std::string> consent_recipients(const Consent& consent) {
  std::vector<std::string> out;
  for (const auto& actor : consent.provision_actors) {
    if (auto id = agency_id_of(actor); !id.empty()) out.push_back(std::move(id));
  }
  return out;
}

mapping::ReferralConsent consent_decision(const Consent& c, std::string_view agency_id,
                                          std::string_view on_date) {
  using mapping::ConsentStatus;
  mapping::ReferralConsent out;
  out.source = "fhir-consent";
  out.date = full_date_or_date_time(c.date_time) ? c.date_time : std::string();
  if (c.status == "inactive") {
    out.status = ConsentStatus::kRevoked;
    return out;
  }
  out.status = ConsentStatus::kNone;
  if (c.status != "active") return out;
  if (c.provision_type == "deny") return out;
  if (!agency_id.empty() && !c.provision_actors.empty()) {
    const auto recipients = consent_recipients(c);
    if (std::find(recipients.begin(), recipients.end(), agency_id) == recipients.end()) return out;
  }
  if (!c.provision_actions.empty() &&
      std::none_of(c.provision_actions.begin(), c.provision_actions.end(),
                   [](const Coding& a) { return a.code == "disclose"; })) {
    return out;
  }
  // Dates compare by their YYYY-MM-DD prefix: enough for consent periods, which are days.
  const auto day = on_date.substr(0, 10);
  if (!day.empty() && !c.provision_start.empty() && day < c.provision_start.substr(0, 10))
    return out;
  if (!day.empty() && !c.provision_end.empty() && day > c.provision_end.substr(0, 10)) return out;
  out.status = ConsentStatus::kActive;
  return out;
}

}  // namespace sdoh::fhir
