#include "gateway/mapping/referral.hpp"

#include <algorithm>
#include <regex>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "gateway/core/json_parse.hpp"
#include "gateway/core/json_text.hpp"
#include "gateway/events/event.hpp"
#include "gateway/mapping/lifecycle.hpp"
#include "gateway/mapping/local_codes.hpp"

namespace sdoh::mapping {
namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

constexpr std::string_view kStatusNames[] = {"requested", "received",    "accepted",
                                             "rejected",  "in-progress", "on-hold",
                                             "completed", "failed",      "cancelled"};

void key(Writer& w, std::string_view k) {
  w.Key(k.data(), static_cast<rapidjson::SizeType>(k.size()));
}

void str(Writer& w, std::string_view k, std::string_view v) {
  key(w, k);
  w.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
}

void opt_str(Writer& w, std::string_view k, std::string_view v) {
  if (!v.empty()) str(w, k, v);
}

void str_or_null(Writer& w, std::string_view k, std::string_view v) {
  key(w, k);
  if (v.empty()) {
    w.Null();
  } else {
    w.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
  }
}

void coding(Writer& w, std::string_view k, const Coding& c) {
  key(w, k);
  w.StartObject();
  opt_str(w, "system", clip_text(c.system, 256));
  str(w, "code", clip_text(c.code, 64));
  opt_str(w, "display", clip_text(c.display, 512));
  w.EndObject();
}

void name(Writer& w, std::string_view k, const HumanName& n) {
  key(w, k);
  w.StartObject();
  opt_str(w, "family", clip_text(n.family, 128));
  if (!n.given.empty()) {
    key(w, "given");
    w.StartArray();
    for (const auto& g : n.given) {
      const auto v = clip_text(g, 128);
      w.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
    }
    w.EndArray();
  }
  w.EndObject();
}

// The schema's phone pattern: digits with an optional leading +, and the separators ( ) - . x.
bool valid_phone(std::string_view phone) {
  static const std::regex pattern(R"(^\+?[0-9(][0-9 ().x-]*$)");
  return !phone.empty() && phone.size() <= 32 &&
         std::regex_match(phone.begin(), phone.end(), pattern);
}

Error invalid(std::string expression, std::string message) {
  Location where;
  where.expression = std::move(expression);
  return Error::invalid(std::move(where), std::move(message));
}

}  // namespace

std::string_view to_string(ReferralStatus s) {
  return kStatusNames[static_cast<int>(s)];
}

std::optional<ReferralStatus> referral_status_from(std::string_view token) {
  for (std::size_t i = 0; i < std::size(kStatusNames); ++i) {
    if (kStatusNames[i] == token) return static_cast<ReferralStatus>(i);
  }
  return std::nullopt;
}

bool is_final(ReferralStatus s) {
  return s == ReferralStatus::kRejected || s == ReferralStatus::kCompleted ||
         s == ReferralStatus::kFailed || s == ReferralStatus::kCancelled;
}

std::string_view to_string(ConsentStatus s) {
  switch (s) {
    case ConsentStatus::kActive:
      return "active";
    case ConsentStatus::kNone:
      return "none";
    case ConsentStatus::kRevoked:
      return "revoked";
    case ConsentStatus::kUnknown:
      return "unknown";
  }
  return "unknown";
}

std::string clip_text(std::string_view text, std::size_t max_chars) {
  std::size_t chars = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) continue;  // continuation byte
    if (chars++ == max_chars) return std::string(text.substr(0, i));
  }
  return std::string(text);
}

std::string legacy_referral_id(std::string_view system, std::string_view value) {
  std::string identity = "referral|";
  identity += system;
  identity += '|';
  identity += value;
  return events::event_id(identity, 0);
}

Result<ReferralMapper::Need> ReferralMapper::need(const NormalizedReferral& r) const {
  const auto& tables = screenings_.tables();
  std::vector<std::string> named;
  auto name_need = [&named](const std::string& c) {
    if (std::find(named.begin(), named.end(), c) == named.end()) named.push_back(c);
  };
  auto one = [&named]() -> Result<Need> {
    if (named.size() > 1) {
      return fail(invalid("category", "the referral names more than one need (" + named[0] + ", " +
                                          named[1] + "); send one referral per need"));
    }
    return Need{named.front(), {}};
  };
  if (!r.category.empty()) {
    if (!tables.known_category(r.category)) {
      return fail(invalid("category", "the category is not a Gravity SDOH category code"));
    }
    name_need(r.category);
  }
  // An evidence group headed by a category code (HL7 OBR-4 food-insecurity^...^SDOHCC).
  for (const auto& e : r.evidence) {
    if (e.panel && tables.known_category(e.panel->code)) name_need(e.panel->code);
  }
  // A Gravity category code elsewhere (RF1-5 food-insecurity^Food insecurity^SDOHCC).
  for (const auto& c : r.need_codes) {
    if (c.coding.system == tables.category_system() && tables.known_category(c.coding.code))
      name_need(c.coding.code);
  }
  if (!named.empty()) return one();

  // The clinic's own codes, as its local code tables translate them.
  std::string untranslated;
  for (const auto& c : r.need_codes) {
    if (c.coding.system == tables.category_system()) continue;
    // An instrument's own question or panel: its answers, not its code, tell the need.
    if (tables.by_item(c.coding.system, c.coding.code) != nullptr ||
        tables.by_panel(c.coding.system, c.coding.code) != nullptr)
      continue;
    const auto meaning = tables.local_codes().find(r.sender, c.coding.system, c.coding.code);
    if (!meaning) {
      if (!untranslated.empty()) untranslated += ", ";
      untranslated +=
          c.where + " " + clip_text(c.coding.system, 64) + "|" + clip_text(c.coding.code, 64);
    } else if (!meaning->category.empty()) {
      name_need(meaning->category);
    }
  }
  if (!named.empty()) return one();

  // Only answers: the need is the positive domain, preferring those the family asked help with.
  std::vector<std::string> positive, asked;
  for (const auto& e : r.evidence) {
    if (e.items.empty()) continue;
    auto mapped = screenings_.evaluate(e);
    if (!mapped) return fail(invalid("evidence", mapped.error().message));
    for (const auto& d : mapped->domains) {
      if (d.status != AnswerResult::kPositive || d.assistance_requested == false) continue;
      if (std::find(positive.begin(), positive.end(), d.category) == positive.end())
        positive.push_back(d.category);
      if (d.assistance_requested == true &&
          std::find(asked.begin(), asked.end(), d.category) == asked.end())
        asked.push_back(d.category);
    }
  }
  if (asked.size() == 1) return Need{asked.front(), {}};
  if (asked.empty() && positive.size() == 1) return Need{positive.front(), {}};
  if (!positive.empty()) {
    return fail(invalid("category",
                        "the answers screen positive for more than one need; name the need the "
                        "referral is for with a Gravity category code"));
  }
  // Nothing tells the need: held uncategorised, never refused, until a table translates it.
  return Need{
      std::string(kUnspecifiedCategory),
      untranslated.empty() ? std::string("no need code and no positive answer") : untranslated};
}

Result<MappedReferral> ReferralMapper::identify(const NormalizedReferral& r) const {
  if (r.patient_identifier.empty())
    return fail(invalid("patient.identifier", "the referral names no patient identifier"));
  if (r.clinic_number_value.empty())
    return fail(invalid("clinicReferralNumber", "the referral has no referral number"));
  auto found = need(r);
  if (!found) return fail(found.error());
  MappedReferral out;
  out.referral_id = screenings_.referral_id(r.clinic_number_system, r.clinic_number_value);
  out.category = std::move(found->category);
  out.uncategorised = !found->untranslated.empty();
  out.untranslated = std::move(found->untranslated);
  out.patient_pseudonym =
      screenings_.pseudonymizer().pseudonym(r.patient_authority, r.patient_identifier);
  out.business_status = out.uncategorised ? std::string(kUncategorised) : r.business_status;
  out.zip3 = screenings_.zip_policy().zip3(r.postal_code);
  return out;
}

Result<MappedReferral> ReferralMapper::map(const NormalizedReferral& r) const {
  auto identified = identify(r);
  if (!identified) return identified;
  if (r.agency_id.empty())
    return fail(invalid("agency.id", "the referral names no agency to refer to"));
  if (identified->uncategorised) {
    return fail(invalid("category", "the referral's need cannot be told from its codes (" +
                                        identified->untranslated +
                                        "): it is held uncategorised, not sent to an agency"));
  }
  auto out = std::move(*identified);
  const bool consented = r.consent.status == ConsentStatus::kActive;

  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  str(w, "referralId", out.referral_id);
  key(w, "clinicReferralNumber");
  w.StartObject();
  opt_str(w, "system", clip_text(r.clinic_number_system, 256));
  str(w, "value", clip_text(r.clinic_number_value, 128));
  w.EndObject();
  str(w, "status", to_string(out.status));
  str_or_null(w, "businessStatus", r.business_status);
  str(w, "category", out.category);
  if (r.service) {
    coding(w, "service", *r.service);
  } else {
    key(w, "service");
    w.Null();
  }
  str(w, "priority", r.priority);
  key(w, "agency");
  w.StartObject();
  str(w, "id", r.agency_id);
  opt_str(w, "name", clip_text(r.agency_name, 256));
  opt_str(w, "topic", r.agency_topic);
  w.EndObject();
  if (r.routed) {
    key(w, "routing");
    w.StartObject();
    str(w, "area", to_string(r.routed->area));
    str(w, "countyBasis", to_string(r.routed->county));
    w.EndObject();
  }
  key(w, "requester");
  w.StartObject();
  str(w, "id", clip_text(r.requester_id, 256));
  opt_str(w, "system", clip_text(r.requester_system, 256));
  opt_str(w, "display", clip_text(r.requester_display, 256));
  if (!r.facility.code.empty()) {
    key(w, "facility");
    w.StartObject();
    str(w, "id", clip_text(r.facility.code, 128));
    opt_str(w, "system", clip_text(r.facility.system, 256));
    opt_str(w, "name", clip_text(r.facility.display, 256));
    w.EndObject();
  }
  w.EndObject();
  str(w, "authoredOn", r.authored_on);
  key(w, "patient");
  w.StartObject();
  str(w, "pseudonym", out.patient_pseudonym);
  opt_str(w, "ageBand", age_band(r.birth_date, r.authored_on));
  opt_str(w, "zip3", out.zip3);
  w.EndObject();
  key(w, "screeningId");
  w.Null();
  key(w, "consent");
  w.StartObject();
  str(w, "status", to_string(r.consent.status));
  str(w, "source", r.consent.source);
  opt_str(w, "date", r.consent.date);
  w.EndObject();
  // Consent rule (schemas/README.md): contact details and free text only with active consent.
  if (consented && r.contact) {
    const auto& c = *r.contact;
    out.contact_included = true;
    key(w, "contact");
    w.StartObject();
    if (!c.name.empty()) name(w, "name", c.name);
    if (valid_phone(c.phone)) str(w, "phone", c.phone);
    if (c.address) {
      key(w, "address");
      w.StartObject();
      if (!c.address->lines.empty()) {
        key(w, "line");
        w.StartArray();
        for (const auto& l : c.address->lines) {
          const auto v = clip_text(l, 256);
          w.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
        }
        w.EndArray();
      }
      opt_str(w, "city", clip_text(c.address->city, 128));
      opt_str(w, "state", clip_text(c.address->state, 64));
      opt_str(w, "postalCode", clip_text(c.address->postal_code, 16));
      w.EndObject();
    }
    if (c.preferred_language) coding(w, "preferredLanguage", *c.preferred_language);
    if (c.guardian && !c.guardian->name.empty() && !c.guardian->relationship.code.empty()) {
      key(w, "guardian");
      w.StartObject();
      name(w, "name", c.guardian->name);
      coding(w, "relationship", c.guardian->relationship);
      if (valid_phone(c.guardian->phone)) str(w, "phone", c.guardian->phone);
      w.EndObject();
    }
    w.EndObject();
  }
  str_or_null(w, "note", consented ? clip_text(r.note, 2000) : std::string());
  w.EndObject();
  out.data.assign(buf.GetString(), buf.GetSize());
  return out;
}

RoutingKeys routing_keys(const NormalizedReferral& r, std::string_view on_date) {
  RoutingKeys k;
  const auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (r.postal_code.size() >= 3 &&
      std::all_of(r.postal_code.begin(), r.postal_code.begin() + 3, digit))
    k.zip3 = r.postal_code.substr(0, 3);
  if (r.county_fips.size() == 5 && std::all_of(r.county_fips.begin(), r.county_fips.end(), digit))
    k.county_fips = r.county_fips;
  k.zip = r.postal_code;
  k.age_months = age_in_months(r.birth_date, on_date);
  return k;
}

std::string referral_status_data(const ReferralTransition& t) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  str(w, "referralId", t.referral_id);
  str(w, "status", to_string(t.status));
  str_or_null(w, "previousStatus", t.previous ? to_string(*t.previous) : std::string_view());
  str_or_null(w, "businessStatus", t.business_status);
  str_or_null(w, "reason", clip_text(t.reason, 1000));
  key(w, "updatedBy");
  w.StartObject();
  str(w, "role", t.updated_by_role);
  str(w, "id", clip_text(t.updated_by_id, 128));
  w.EndObject();
  str(w, "time", t.time);
  key(w, "sequence");
  w.Int(t.sequence);
  key(w, "agency");
  if (t.agency_id.empty()) {
    w.Null();
  } else {
    w.StartObject();
    str(w, "id", t.agency_id);
    w.EndObject();
  }
  str(w, "category", t.category);
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

std::optional<ReferralTransition> read_referral_status(std::string_view envelope) {
  rapidjson::Document doc;
  if (!sdoh::json::parse(doc, envelope) || !doc.IsObject()) return std::nullopt;
  const auto data = doc.FindMember("data");
  if (data == doc.MemberEnd() || !data->value.IsObject()) return std::nullopt;
  const auto& d = data->value;
  auto text = [](const rapidjson::Value& o, const char* name) -> std::string {
    const auto it = o.FindMember(name);
    return it != o.MemberEnd() && it->value.IsString() ? it->value.GetString() : "";
  };
  const auto status = referral_status_from(text(d, "status"));
  const auto sequence = d.FindMember("sequence");
  if (!status || sequence == d.MemberEnd() || !sequence->value.IsInt()) return std::nullopt;
  ReferralTransition t;
  t.referral_id = text(d, "referralId");
  t.status = *status;
  t.previous = referral_status_from(text(d, "previousStatus"));
  t.business_status = text(d, "businessStatus");
  t.reason = text(d, "reason");
  if (const auto by = d.FindMember("updatedBy"); by != d.MemberEnd() && by->value.IsObject()) {
    t.updated_by_role = text(by->value, "role");
    t.updated_by_id = text(by->value, "id");
  }
  t.time = text(d, "time");
  t.sequence = sequence->value.GetInt();
  if (const auto a = d.FindMember("agency"); a != d.MemberEnd() && a->value.IsObject())
    t.agency_id = text(a->value, "id");
  t.category = text(d, "category");
  return t;
}

}  // namespace sdoh::mapping
