#include "adapters/hl7v2/referral.hpp"

#include <algorithm>
#include <cctype>

#include "adapters/hl7v2/oru.hpp"
#include "gateway/core/text.hpp"
#include "gateway/mapping/lifecycle.hpp"

namespace sdoh::hl7v2 {
namespace {

using mapping::ConsentStatus;
using mapping::ReferralStatus;

// A value the HL7 table does not have: AE with ERR-3 103 (the pipeline sets the code).
Error not_in_table(const char* segment, int field, std::string message) {
  Location where;
  where.segment = segment;
  where.sequence = 1;
  where.field = field;
  where.component = 1;
  return Error::invalid(std::move(where), std::move(message));
}

std::string digits_of(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c >= '0' && c <= '9') out += c;
  }
  return out;
}

// The PRD segment with PRD-1 (provider role, table 0286) `role`, and its occurrence number.
std::pair<const Segment*, int> provider(const Message& m, std::string_view role) {
  int occurrence = 0;
  for (const auto& s : m.segments()) {
    if (s.id() != "PRD") continue;
    ++occurrence;
    for (int r = 1; r <= std::max(1, s.repetitions(1)); ++r) {
      if (s.value(1, r, 1) == role) return {&s, occurrence};
    }
  }
  return {nullptr, 0};
}

// XPN (family^given^middle^suffix^prefix) → HumanName.
mapping::HumanName person_name(const Segment& s, int field) {
  int rep = 1;
  for (int r = 1; r <= s.repetitions(field); ++r) {
    if (s.value(field, r, 7) == "L") {  // legal name (table 0200)
      rep = r;
      break;
    }
  }
  mapping::HumanName n;
  n.family = s.value(field, rep, 1, 1);
  for (int c : {2, 3}) {
    if (auto g = s.value(field, rep, c); !g.empty()) n.given.push_back(std::move(g));
  }
  return n;
}

std::string display_name(const Segment& s, int field) {
  std::string out;
  for (auto part : {s.value(field, 1, 5), s.value(field, 1, 2), s.value(field, 1, 3),
                    s.value(field, 1, 1, 1), s.value(field, 1, 4)}) {
    if (part.empty()) continue;
    if (!out.empty()) out += ' ';
    out += part;
  }
  return out;
}

// XTN → E.164 when the country code, area code and number are given (XTN-5, -6, -7), else the
// digits of area code and number, else XTN-1 as sent (the older unstructured form).
std::string phone_number(const Segment& s, int field) {
  for (int r = 1; r <= s.repetitions(field); ++r) {
    const auto country = digits_of(s.value(field, r, 5));
    const auto area = digits_of(s.value(field, r, 6));
    const auto local = digits_of(s.value(field, r, 7));
    if (!local.empty()) {
      if (!country.empty() && !area.empty()) return "+" + country + area + local;
      return area + local;
    }
    if (auto legacy = s.value(field, r, 1); !legacy.empty()) return legacy;
  }
  return {};
}

std::optional<mapping::PostalAddress> address(const Segment& s, int field) {
  mapping::PostalAddress a;
  for (auto line : {s.value(field, 1, 1, 1), s.value(field, 1, 2)}) {
    if (!line.empty()) a.lines.push_back(std::move(line));
  }
  a.city = s.value(field, 1, 3);
  a.state = s.value(field, 1, 4);
  a.postal_code = s.value(field, 1, 5);
  if (a.lines.empty() && a.city.empty() && a.state.empty() && a.postal_code.empty())
    return std::nullopt;
  return a;
}

// HL7 table 0498 consent status → the event's consent status. A rescinded consent anywhere in
// the message wins; otherwise an active one; otherwise what the first CON says.
mapping::ReferralConsent consent_from(const Message& m, const ReferralReadOptions& o) {
  mapping::ReferralConsent c;
  std::vector<const Segment*> cons;
  for (const auto& s : m.segments()) {
    if (s.id() == "CON") cons.push_back(&s);
  }
  if (cons.empty()) {
    if (o.consent_policy == ContactConsentPolicy::kClinicPolicy) {
      c.status = ConsentStatus::kActive;
      c.source = "clinic-policy";
    }
    return c;
  }
  auto status_of = [](const Segment& s) {
    const auto code = s.value(11, 1, 1);
    if (code == "A") return ConsentStatus::kActive;
    if (code == "X") return ConsentStatus::kRevoked;
    if (code == "R" || code == "P") return ConsentStatus::kNone;  // refused, or not yet given
    return ConsentStatus::kUnknown;  // B bypassed, L limited, empty or local codes
  };
  auto date_of = [&o](const Segment& s) {
    for (int field : {13, 14, 12}) {  // decision, effective, discussion date/time
      if (auto d = dtm_to_rfc3339(s.value(field), o.zone); !d.empty()) return d;
    }
    return std::string();
  };
  const Segment* chosen = cons.front();
  for (const auto* s : cons) {
    if (status_of(*s) == ConsentStatus::kRevoked) {
      chosen = s;
      break;
    }
    if (status_of(*s) == ConsentStatus::kActive && status_of(*chosen) != ConsentStatus::kActive)
      chosen = s;
  }
  c.status = status_of(*chosen);
  c.source = "hl7-con";
  c.date = date_of(*chosen);
  return c;
}

// The family's county as a 5-digit FIPS code (state and county, e.g. 37063), for routing: the
// county/parish code of the address (HL7 v2.5.1 XAD-9, table 0289), else PID-12, which v2.5.1
// keeps for backward compatibility. A code of another form (a 3-digit county without its state,
// a local code) names no county routing can use.
std::string county_of(const Segment& pid) {
  for (auto code : {pid.value(11, 1, 9, 1), pid.value(12, 1, 1)}) {
    if (code.size() == 5 &&
        std::all_of(code.begin(), code.end(), [](unsigned char c) { return std::isdigit(c) != 0; }))
      return code;
  }
  return {};
}

// The family's contact details (PID-5, -11, -13, -15, the first NK1 with a name and
// relationship) and equity fields (PID-10, -22, -15) into `r`.
void read_family(const Message& m, const Segment& pid, mapping::NormalizedReferral& r) {
  mapping::ContactDetails contact;
  contact.name = person_name(pid, 5);
  contact.phone = phone_number(pid, 13);
  contact.address = address(pid, 11);
  if (auto lang = coding_of(pid, 15); !lang.code.empty()) {
    contact.preferred_language = lang;
    r.language = lang.code;
  }
  r.race = pid.value(10, 1, 1);
  r.ethnicity = pid.value(22, 1, 1);
  for (const auto& s : m.segments()) {
    if (s.id() != "NK1") continue;
    mapping::Guardian g;
    g.name = person_name(s, 2);
    g.relationship = coding_of(s, 3);
    if (g.name.empty() || g.relationship.code.empty()) continue;
    g.phone = phone_number(s, 5);
    if (g.phone.empty()) g.phone = phone_number(s, 6);
    contact.guardian = std::move(g);
    break;
  }
  r.contact = std::move(contact);
}

}  // namespace

int provider_occurrence(const Message& m, std::string_view role) {
  return provider(m, role).second;
}

mapping::NormalizedReferral referral_from_screening(const Message& m,
                                                    const mapping::NormalizedScreening& s,
                                                    std::string_view screening_id,
                                                    std::string_view category,
                                                    const ReferralReadOptions& options) {
  mapping::NormalizedReferral r;
  r.protocol = "hl7v2";
  r.sender = sender_of(m);
  r.message_id = m.get("MSH-10");
  r.clinic_number_system = std::string(mapping::kScreeningReferralSystem);
  r.clinic_number_value = std::string(screening_id) + ":" + std::string(category);
  r.category = std::string(category);
  r.facility = {m.get("MSH-4.2"), m.get("MSH-4.1"), ""};
  r.requester_id = r.facility.code;
  r.authored_on = !s.performed.empty() ? s.performed : dtm_to_rfc3339(m.get("MSH-7"), options.zone);
  r.patient_authority = s.patient_authority;
  r.patient_identifier = s.patient_identifier;
  r.birth_date = s.birth_date;
  r.postal_code = s.postal_code;
  r.consent = consent_from(m, options);
  r.business_status =
      mapping::initial_state(false, r.consent.status == ConsentStatus::kActive).business_status;
  if (const auto* pid = m.segment("PID")) {
    r.county_fips = county_of(*pid);
    read_family(m, *pid, r);
  }
  return r;
}

std::string agency_id_from(std::string_view hl7_id) {
  std::string out;
  for (char ch : hl7_id) {
    const auto c = static_cast<unsigned char>(std::tolower(static_cast<unsigned char>(ch)));
    out += (std::isalnum(c) || c == '.' || c == '_' || c == '-') && c < 0x80 ? static_cast<char>(c)
                                                                             : '-';
  }
  return out.substr(0, 64);
}

namespace {

// An answer that says "no" (HL7 Y/N, LOINC LA32-8 No, a false boolean): its question names no
// need the family has.
bool says_no(const mapping::AnswerValue& a) {
  if (a.boolean) return !*a.boolean;
  if (a.coding) return a.coding->code == "N" || a.coding->code == "LA32-8";
  return a.text == "N" || a.text == "No";
}

// The codes the clinic gives for the need beside a Gravity category, for its local code tables:
// RF1-3 (referral type), RF1-5 (referral category), OBR-4, and OBX-3 of answers that are not
// "no" (mapping::ReferralMapper skips those the instrument tables know).
void add_need_codes(const Segment& rf1, mapping::NormalizedReferral& r) {
  if (auto type = coding_of(rf1, 3); !type.code.empty())
    r.need_codes.push_back({std::move(type), "RF1-3"});
  if (r.service) r.need_codes.push_back({*r.service, "RF1-5"});
  for (const auto& g : r.evidence) {
    if (g.panel && !g.panel->code.empty()) r.need_codes.push_back({*g.panel, "OBR-4"});
    for (const auto& item : g.items) {
      const bool yes = std::any_of(item.answers.begin(), item.answers.end(),
                                   [](const auto& a) { return !says_no(a); });
      if (yes && !item.question.code.empty()) r.need_codes.push_back({item.question, "OBX-3"});
    }
  }
}

}  // namespace

Result<mapping::NormalizedReferral> referral_from_ref(const Message& m,
                                                      const ReferralReadOptions& options) {
  const auto* rf1 = m.segment("RF1");
  // RF1 follows MSH (HL7 v2.5.1 11.3.1): a missing one is named at MSH, which was sent.
  if (rf1 == nullptr) return fail(field_error("MSH", 1, 0, "REF^I12 needs an RF1 segment"));
  const auto status = rf1->value(1, 1, 1);
  if (!status.empty() && status != "P") {
    return fail(
        not_in_table("RF1", 1, "RF1-1 of a new referral (REF^I12) must be P (pending) or empty"));
  }
  auto base = patient_from_pid(m, "REF^I12");
  if (!base) return fail(base.error());

  mapping::NormalizedReferral r;
  r.protocol = "hl7v2";
  r.sender = sender_of(m);
  r.message_id = m.get("MSH-10");

  // RF1-6 (EI): entity id ^ namespace id ^ universal id. HL7 v2.5.1 11.6.1.6: required.
  r.clinic_number_value = rf1->value(6, 1, 1);
  if (r.clinic_number_value.empty())
    return fail(field_error("RF1", 1, 6, "RF1-6 originating referral identifier is empty"));
  r.clinic_number_system = rf1->value(6, 1, 2);
  if (r.clinic_number_system.empty()) r.clinic_number_system = rf1->value(6, 1, 3);
  if (r.clinic_number_system.empty()) r.clinic_number_system = m.get("MSH-4.1");

  const auto priority = rf1->value(2, 1, 1);
  if (priority.empty() || priority == "R") {
    r.priority = "routine";
  } else if (priority == "S") {
    r.priority = "stat";
  } else if (priority == "A") {
    r.priority = "asap";
  } else if (priority == "U") {
    r.priority = "urgent";
  } else {
    return fail(not_in_table("RF1", 2, "RF1-2 referral priority is not one of S, A, R, U"));
  }
  if (auto service = coding_of(*rf1, 5); !service.code.empty()) r.service = std::move(service);
  r.authored_on = dtm_to_rfc3339(rf1->value(7), options.zone);
  if (r.authored_on.empty()) r.authored_on = dtm_to_rfc3339(m.get("MSH-7"), options.zone);
  r.note = rf1->value(10, 1, 2);

  // The referred-to agency, when the clinic names one; otherwise routing chooses (pipeline.cpp).
  if (const auto [agency, agency_seq] = provider(m, "RT"); agency != nullptr) {
    r.agency_id = agency_id_from(agency->value(7, 1, 1));
    if (!r.agency_id.empty()) r.agency_name = agency->value(2, 1, 1);
  }

  r.facility = {m.get("MSH-4.2"), m.get("MSH-4.1"), ""};
  if (const auto [requester, requester_seq] = provider(m, "RP"); requester != nullptr) {
    r.requester_id = requester->value(7, 1, 1);
    const auto type = requester->value(7, 1, 2);
    r.requester_system = type == "NPI" ? "http://hl7.org/fhir/sid/us-npi" : type;
    r.requester_display = display_name(*requester, 2);
  }
  if (r.requester_id.empty()) {
    // No referring provider named: the referring clinic itself is the requester.
    r.requester_id = r.facility.code;
    r.requester_system.clear();
  }

  r.patient_authority = base->patient_authority;
  r.patient_identifier = base->patient_identifier;
  r.birth_date = base->birth_date;
  r.postal_code = base->postal_code;
  const auto* pid = m.segment("PID");
  r.county_fips = county_of(*pid);

  r.consent = consent_from(m, options);
  r.business_status =
      mapping::initial_state(!r.agency_id.empty(), r.consent.status == ConsentStatus::kActive)
          .business_status;
  read_family(m, *pid, r);

  auto groups = observation_groups(m, *base, options.zone);
  if (!groups) return fail(groups.error());
  for (auto& g : *groups) {
    g.message_id = r.message_id;
    r.evidence.push_back(std::move(g));
  }
  add_need_codes(*rf1, r);
  return r;
}

Result<ReferralResponse> response_from_rri(const Message& m, const TimeZone* zone) {
  const auto* rf1 = m.segment("RF1");
  if (rf1 == nullptr) return fail(field_error("MSH", 1, 0, "RRI^I12 needs an RF1 segment"));
  ReferralResponse r;
  const auto code = rf1->value(1, 1, 1);
  if (code.empty()) return fail(field_error("RF1", 1, 1, "RF1-1 referral status is empty"));
  // HL7 table 0283, then the Task status tokens agencies use as local codes.
  if (code == "A") {
    r.status = ReferralStatus::kAccepted;
  } else if (code == "R") {
    r.status = ReferralStatus::kRejected;
  } else if (code == "P") {
    r.status = ReferralStatus::kReceived;  // pending at the agency: it has the referral
  } else if (code == "E") {
    r.status = ReferralStatus::kFailed;
    r.business_status = "expired";
  } else if (auto s = mapping::referral_status_from(ascii_lower(code))) {
    r.status = *s;
  } else {
    return fail(not_in_table("RF1", 1,
                             "RF1-1 referral status is not A, R, P, E (table 0283) or a referral "
                             "status such as in-progress or completed"));
  }
  r.reason = rf1->value(10, 1, 2);
  if (auto t = dtm_to_rfc3339(m.get("MSH-7"), zone); t.find('T') != std::string::npos)
    r.time = std::move(t);
  const auto [agency, agency_seq] = provider(m, "RT");
  r.agency_id = agency_id_from(agency != nullptr ? agency->value(7, 1, 1) : std::string());
  r.named_agency = !r.agency_id.empty();
  if (r.agency_id.empty()) r.agency_id = agency_id_from(m.get("MSH-4.1"));
  r.external_id = rf1->value(11, 1, 1);
  r.clinic_number_value = rf1->value(6, 1, 1);
  r.clinic_number_system = rf1->value(6, 1, 2);
  if (r.clinic_number_system.empty()) r.clinic_number_system = rf1->value(6, 1, 3);
  r.original_control_id = m.get("MSA-2");
  if (r.external_id.empty() && r.clinic_number_value.empty() && r.original_control_id.empty()) {
    return fail(field_error(
        "RF1", 1, 6, "RRI^I12 names no referral: RF1-6 (or RF1-11, or MSA-2) must identify it"));
  }
  return r;
}

}  // namespace sdoh::hl7v2
