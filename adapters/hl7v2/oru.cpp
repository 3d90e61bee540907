#include "adapters/hl7v2/oru.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace sdoh::hl7v2 {
namespace {

mapping::Coding coding(const Segment& s, int field, int repetition = 1) {
  return coding_of(s, field, repetition);
}

mapping::ResultStatus result_status(std::string_view obx11) {
  if (obx11 == "C") return mapping::ResultStatus::kCorrected;
  if (obx11 == "X" || obx11 == "D" || obx11 == "W") return mapping::ResultStatus::kCancelled;
  if (obx11 == "P" || obx11 == "I" || obx11 == "R" || obx11 == "S")
    return mapping::ResultStatus::kPreliminary;
  return mapping::ResultStatus::kFinal;
}

// Whether `raw` (one repetition of a field, as sent) holds no value: empty, HL7's explicit null
// "" (HL7 v2.5.1 2.5.3), or only component and subcomponent separators ("^^").
bool no_value(std::string_view raw, const Delimiters& d) {
  if (raw == "\"\"") return true;
  return raw.find_first_not_of(std::string{d.component, d.subcomponent}) == std::string_view::npos;
}

}  // namespace

mapping::Coding coding_of(const Segment& s, int field, int repetition) {
  return {fhir_system(s.value(field, repetition, 3)), s.value(field, repetition, 1),
          s.value(field, repetition, 2)};
}

std::string sender_of(const Message& m) {
  return m.get("MSH-3.1") + "^" + m.get("MSH-4.1");
}

std::string fhir_system(std::string_view s) {
  if (s == "LN" || s == "LOINC") return "http://loinc.org";
  if (s == "SCT" || s == "SNM") return "http://snomed.info/sct";
  if (s == "CDCREC") return "urn:oid:2.16.840.1.113883.6.238";
  if (s == "SDOHCC")  // the SDOH Clinical Care IG's categories (its temporary code system)
    return "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes";
  if (s == "HL70005") return "http://terminology.hl7.org/CodeSystem/v2-0005";
  if (s == "HL70189") return "http://terminology.hl7.org/CodeSystem/v2-0189";
  if (s == "HL70063") return "http://terminology.hl7.org/CodeSystem/v2-0063";
  if (s == "ISO6392") return "urn:iso:std:iso:639:2";
  return std::string(s);
}

std::string dtm_to_rfc3339(std::string_view dtm, const TimeZone* zone) {
  auto digits = [](std::string_view s) {
    for (char c : s) {
      if (c < '0' || c > '9') return false;
    }
    return true;
  };
  auto two = [](std::string_view s, std::size_t at) {
    return (s[at] - '0') * 10 + (s[at + 1] - '0');
  };
  const auto sign = dtm.find_first_of("+-");
  const auto main = dtm.substr(0, sign);
  const auto offset = sign == std::string_view::npos ? std::string_view() : dtm.substr(sign);
  const auto whole = main.substr(0, main.find('.'));
  if (whole.size() < 8 || !digits(whole)) return {};
  const int month = two(whole, 4), day = two(whole, 6);
  if (month < 1 || month > 12 || day < 1 || day > 31) return {};
  std::string date = std::string(whole.substr(0, 4)) + "-" + std::string(whole.substr(4, 2)) + "-" +
                     std::string(whole.substr(6, 2));
  if (whole.size() < 12) return date;
  if (two(whole, 8) > 23 || two(whole, 10) > 59 || (whole.size() >= 14 && two(whole, 12) > 60))
    return {};
  const auto seconds = whole.size() >= 14 ? whole.substr(12, 2) : std::string_view("00");
  if (offset.size() == 5 && digits(offset.substr(1))) {
    return date + "T" + std::string(whole.substr(8, 2)) + ":" + std::string(whole.substr(10, 2)) +
           ":" + std::string(seconds) + std::string(offset.substr(0, 3)) + ":" +
           std::string(offset.substr(3, 2));
  }
  if (!offset.empty() || zone == nullptr) return date;
  namespace chrono = std::chrono;
  const chrono::year_month_day ymd{chrono::year(std::stoi(std::string(whole.substr(0, 4)))),
                                   chrono::month(static_cast<unsigned>(month)),
                                   chrono::day(static_cast<unsigned>(day))};
  if (!ymd.ok()) return {};
  const auto local = chrono::local_days(ymd) + chrono::hours(two(whole, 8)) +
                     chrono::minutes(two(whole, 10)) + chrono::seconds(two(seconds, 0));
  const auto utc = zone->to_utc(local);
  const auto off = zone->offset_at(utc);
  // The wall time as the zone shows that instant (differs from the input only in a DST gap).
  const auto shown = chrono::sys_seconds(utc.time_since_epoch() + off);
  const auto day_start = chrono::floor<chrono::days>(shown);
  const chrono::year_month_day d(day_start);
  const chrono::hh_mm_ss hms(shown - day_start);
  const auto minutes_east = off.count() / 60;
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d%c%02d:%02d", int(d.year()),
                unsigned(d.month()), unsigned(d.day()), int(hms.hours().count()),
                int(hms.minutes().count()), int(hms.seconds().count()),
                minutes_east < 0 ? '-' : '+', int(std::abs(minutes_east) / 60),
                int(std::abs(minutes_east) % 60));
  return buf;
}

int patient_identifier_repetition(const Segment& pid) {
  for (int r = 1; r <= pid.repetitions(3); ++r) {
    if (pid.value(3, r, 5) == "MR") return r;
  }
  return 1;
}

Result<mapping::NormalizedScreening> patient_from_pid(const Message& m, const char* message_type) {
  const auto* pid = m.segment("PID");
  // ERR-2 names a segment the sender sent: the message itself, for a segment it left out.
  if (pid == nullptr)
    return fail(field_error("MSH", 1, 0, std::string(message_type) + " needs a PID segment"));
  const int rep = patient_identifier_repetition(*pid);
  const auto identifier = pid->value(3, rep, 1);
  if (identifier.empty())
    return fail(field_error("PID", 1, 3, "PID-3 patient identifier is empty"));

  mapping::NormalizedScreening base;
  base.protocol = "hl7v2";
  base.sender = sender_of(m);
  base.message_id = m.get("MSH-10");
  base.facility = {m.get("MSH-4.2"), m.get("MSH-4.1"), ""};
  base.patient_authority = pid->value(3, rep, 4, 1);
  base.patient_identifier = identifier;
  if (const auto dob = dtm_to_rfc3339(pid->value(7)); !dob.empty())
    base.birth_date = dob.substr(0, 10);
  for (int r = 1; r <= pid->repetitions(10); ++r) {
    if (auto c = coding(*pid, 10, r); !c.code.empty()) base.race.push_back(std::move(c));
  }
  for (int r = 1; r <= pid->repetitions(22); ++r) {
    if (auto c = coding(*pid, 22, r); !c.code.empty()) base.ethnicity.push_back(std::move(c));
  }
  if (auto lang = coding(*pid, 15); !lang.code.empty()) base.language = std::move(lang);
  base.postal_code = pid->value(11, 1, 5);
  return base;
}

Result<std::vector<mapping::NormalizedScreening>> observation_groups(
    const Message& m, const mapping::NormalizedScreening& base, const TimeZone* zone) {
  std::vector<mapping::NormalizedScreening> out;
  int obr_seq = 0, obx_seq = 0;
  for (const auto& seg : m.segments()) {
    if (seg.id() == "OBR") {
      ++obr_seq;
      auto s = base;
      s.position = obr_seq - 1;
      if (auto panel = coding(seg, 4); !panel.code.empty()) s.panel = std::move(panel);
      s.performed = dtm_to_rfc3339(seg.value(7), zone);
      out.push_back(std::move(s));
      continue;
    }
    if (seg.id() != "OBX") continue;
    ++obx_seq;
    if (out.empty())
      return fail(field_error("OBX", obx_seq, 0, "OBX before any OBR: results need their order"));
    mapping::ItemResponse item;
    item.question = coding(seg, 3);
    if (item.question.code.empty()) {
      return fail(field_error("OBX", obx_seq, 3, "OBX-3 observation identifier is empty"));
    }
    item.status = result_status(seg.value(11));
    const auto type = seg.value(2);
    for (int r = 1; r <= seg.repetitions(5); ++r) {
      // An empty repetition, or HL7's explicit null "", is no answer. An item left without any
      // (a question the family did not answer) still goes to the mapping engine with no
      // answers, which records it as unanswered: it is never dropped here.
      if (no_value(seg.raw(5, r, 0), m.delimiters())) continue;
      mapping::AnswerValue a;
      if (type == "NM" || type == "SN") {
        const auto text = seg.value(5, r, type == "SN" ? 2 : 1);
        try {
          a.number = std::stod(text);
        } catch (const std::exception&) {
          Location where{"OBX", obx_seq, 5, 0, ""};
          return fail(Error::invalid(where, "OBX-5 is not a number for value type " + type));
        }
      } else if (type == "ST" || type == "TX" || type == "FT") {
        a.text = seg.value(5, r, 0);
      } else {
        a.coding = coding(seg, 5, r);
      }
      item.answers.push_back(std::move(a));
    }
    auto& s = out.back();
    if (s.performed.empty()) s.performed = dtm_to_rfc3339(seg.value(14), zone);
    s.items.push_back(std::move(item));
  }
  for (auto& s : out) {
    if (s.performed.empty()) s.performed = dtm_to_rfc3339(m.get("MSH-7"), zone);
  }
  return out;
}

Result<std::vector<mapping::NormalizedScreening>> screenings_from_oru(const Message& m,
                                                                      const TimeZone* zone) {
  auto base = patient_from_pid(m, "ORU^R01");
  if (!base) return fail(base.error());
  auto out = observation_groups(m, *base, zone);
  if (!out) return out;
  // No OBR: named at PID, the segment its order group should follow (HL7 v2.5.1 7.3.1).
  if (out->empty()) return fail(field_error("PID", 1, 0, "ORU^R01 needs an OBR segment"));
  return out;
}

}  // namespace sdoh::hl7v2
