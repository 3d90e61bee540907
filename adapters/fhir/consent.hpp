#pragma once
// What an SDOHCC Consent says about sharing a family's contact details with an agency: the
// consent value the referral event's `consent` carries and that gates `contact` and `note`
// (schemas/events/referral.v1.schema.json). Pure.
#include <string>
#include <string_view>
#include <vector>

#include "adapters/fhir/resources.hpp"
#include "gateway/mapping/referral.hpp"

namespace sdoh::fhir {

/// The agency id for an Organization reference: its identifier's value, else the id of
/// "Organization/{id}"; lower case, characters outside [a-z0-9._-] as '-' (the same rule as
/// the HL7 adapter's agency ids, so one agency has one id). Empty when there is neither.
std::string agency_id_of(const Reference& organization);

/// The consent for disclosure to `agency_id` (empty: any agency) on `on_date` (RFC 3339; empty:
/// no period check). FHIR Consent.status: active → look at the provision; inactive → revoked;
/// draft, proposed, rejected, entered-in-error → none. An active Consent allows disclosure when
/// its provision permits (or it has no provision), its actors (if any) include the agency, its
/// actions (if any) include disclose (http://terminology.hl7.org/CodeSystem/consentaction),
/// and `on_date` is inside provision.period; otherwise none. Source "fhir-consent", date
/// Consent.dateTime.
mapping::ReferralConsent consent_decision(const Consent& consent, std::string_view agency_id,
                                          std::string_view on_date);

/// The agencies a Consent names as recipients (provision.actor), as agency ids.
std::vector<std::string> consent_recipients(const Consent& consent);

}  // namespace sdoh::fhir
