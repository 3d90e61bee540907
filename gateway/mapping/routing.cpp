#include "gateway/mapping/routing.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <limits>
#include <map>
#include <set>

#include <rapidjson/document.h>
#include <rapidjson/schema.h>

#include "gateway/core/text.hpp"
#include "gateway/mapping/data_file.hpp"
#include "gateway/mapping/tables.hpp"

namespace sdoh::mapping {

namespace {

namespace rj = rapidjson;

using std::chrono::seconds;

constexpr seconds kMaxSla = std::chrono::days(365);

// The gateway's own event topics (their default names): an agency's referral topic must not be
// one of them, or the agency would read screenings, other agencies' status events or dead letters.
constexpr std::array<std::string_view, 4> kGatewayTopics = {
    "sdoh.screening.v1", "sdoh.referral-status.v1", "sdoh.deadletter.v1",
    "sdoh.referral-updates.v1"};

std::string str(const rj::Value& obj, const char* key) {
  auto it = obj.FindMember(key);
  return it != obj.MemberEnd() && it->value.IsString() ? std::string(it->value.GetString())
                                                       : std::string();
}

// A string or a list of strings (the schema allows both where this is used).
std::vector<std::string> one_or_many(const rj::Value& v) {
  std::vector<std::string> out;
  if (v.IsString()) {
    out.emplace_back(v.GetString());
  } else if (v.IsArray()) {
    for (const auto& s : v.GetArray()) {
      if (s.IsString()) out.emplace_back(s.GetString());
    }
  }
  return out;
}

std::vector<std::string> strings(const rj::Value& obj, const char* key) {
  auto it = obj.FindMember(key);
  return it == obj.MemberEnd() ? std::vector<std::string>() : one_or_many(it->value);
}

// Specificity of one way a route matches (RoutingTable::route's rules 1-3): greater wins.
struct Specificity {
  AreaLevel area = AreaLevel::kAnywhere;
  bool banded = false;
  long narrowness = 0;  ///< minus the band's width in months
  auto operator<=>(const Specificity&) const = default;
};

long band_width(const AgeBand& b) {
  return b.max_months ? static_cast<long>(*b.max_months) - b.min_months + 1
                      : std::numeric_limits<int>::max();
}

Specificity specificity(const Route& r, AreaLevel level) {
  Specificity s;
  s.area = level;
  if (r.age) {
    s.banded = true;
    s.narrowness = -band_width(*r.age);
  }
  return s;
}

bool contains(const std::vector<std::string>& list, std::string_view v) {
  return !v.empty() && std::find(list.begin(), list.end(), v) != list.end();
}

std::optional<std::string> first_shared(const std::vector<std::string>& a,
                                        const std::vector<std::string>& b) {
  for (const auto& x : a) {
    if (contains(b, x)) return x;
  }
  return std::nullopt;
}

std::string describe(const std::optional<AgeBand>& age) {
  if (!age) return "any age";
  if (!age->max_months) return std::to_string(age->min_months) + "+ months";
  return std::to_string(age->min_months) + "-" + std::to_string(*age->max_months) + " months";
}

// Where two routes of one category could both match one referral equally specifically: the
// shared place, or nullopt. Exact, because an unknown county or ZIP leaves only the other to match
// on: two routes sharing a county tie for a family whose ZIP is unknown, and likewise for ZIPs.
std::optional<std::string> tie(const Route& a, const Route& b) {
  std::optional<std::string> place;
  if (auto c = first_shared(a.counties, b.counties)) {
    place = "county " + *c;
  } else if (auto z = first_shared(a.zip3, b.zip3)) {
    place = "ZIP3 " + *z;
  } else if (a.anywhere && b.anywhere) {
    place = "area \"*\"";
  }
  if (!place) return std::nullopt;
  if (a.age.has_value() != b.age.has_value()) return std::nullopt;
  if (a.age) {
    if (band_width(*a.age) != band_width(*b.age)) return std::nullopt;
    const bool disjoint = (a.age->max_months && *a.age->max_months < b.age->min_months) ||
                          (b.age->max_months && *b.age->max_months < a.age->min_months);
    if (disjoint) return std::nullopt;
  }
  return *place + ", " + describe(a.age) + (a.age == b.age ? "" : " and " + describe(b.age));
}

}  // namespace

std::string_view to_string(AreaLevel a) {
  switch (a) {
    case AreaLevel::kAnywhere:
      return "anywhere";
    case AreaLevel::kZip3:
      return "zip3";
    case AreaLevel::kCounty:
      return "county";
  }
  return "anywhere";
}

std::optional<seconds> parse_duration(std::string_view text) {
  if (text.size() < 2) return std::nullopt;
  const char unit = text.back();
  const auto digits = text.substr(0, text.size() - 1);
  long value = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (ec != std::errc() || end != digits.data() + digits.size() || value <= 0 ||
      value > 100'000'000) {
    return std::nullopt;
  }
  switch (unit) {
    case 'm':
      return std::chrono::minutes(value);
    case 'h':
      return std::chrono::hours(value);
    case 'd':
      return std::chrono::days(value);
    default:
      return std::nullopt;
  }
}

Result<std::shared_ptr<const RoutingTable>> RoutingTable::load(const std::filesystem::path& dir,
                                                               const MappingTables& tables) {
  return load_file(dir / "routing.json", dir / "routing.schema.json", tables);
}

Result<std::shared_ptr<const RoutingTable>> RoutingTable::load_file(
    const std::filesystem::path& file, const std::filesystem::path& schema_file,
    const MappingTables& tables) {
  using data_file::error;

  auto schema_json = data_file::read_json(schema_file);
  if (!schema_json) return fail(schema_json.error());
  rj::SchemaDocument schema(*schema_json);
  auto doc = data_file::read_json(file);
  if (!doc) return fail(doc.error());
  if (auto r = data_file::check_schema(schema, "routing.schema.json", *doc, file); !r) {
    return fail(r.error());
  }

  auto table = std::make_shared<RoutingTable>();
  if (auto ex = doc->FindMember("example"); ex != doc->MemberEnd() && ex->value.IsBool())
    table->example_ = ex->value.GetBool();
  std::map<std::string, std::size_t, std::less<>> ids;  // agency id → index

  const auto& agencies = (*doc)["agencies"];
  for (rj::SizeType i = 0; i < agencies.Size(); ++i) {
    const auto& a = agencies[i];
    const auto p = "/agencies/" + std::to_string(i);
    Agency agency;
    agency.id = str(a, "id");
    agency.name = str(a, "name");
    agency.kind = str(a, "kind");
    agency.topic = str(a, "topic");
    agency.update_topic = str(a, "update_topic");
    if (agency.update_topic.empty()) agency.update_topic = "sdoh.referral-updates." + agency.id;
    agency.owner = str(a, "owner");
    if (auto [it, fresh] = ids.emplace(agency.id, i); !fresh) {
      return fail(error(file, p + "/id",
                        "duplicate agency id \"" + agency.id + "\", also /agencies/" +
                            std::to_string(it->second)));
    }
    if (a.HasMember("sla")) {
      const auto sla_text = str(a, "sla");
      const auto sla = parse_duration(sla_text);
      if (!sla || *sla > kMaxSla) {
        return fail(error(file, p + "/sla",
                          "bad SLA \"" + sla_text +
                              "\": give minutes, hours or days up to 365 days, e.g. \"72h\" or "
                              "\"3d\""));
      }
      agency.sla = *sla;
    }
    if (agency.owner.empty()) {
      agency.owner = "Organization/" + agency.id;
    } else if (ascii_lower(agency.owner.substr(agency.owner.find('/') + 1)) != agency.id) {
      // The gateway knows an agency by Task.owner's id (lower-cased), e.g. in ownership checks.
      return fail(error(
          file, p + "/owner",
          "owner \"" + agency.owner + "\" must name the agency's id: Organization/" + agency.id));
    }
    if (std::find(kGatewayTopics.begin(), kGatewayTopics.end(), agency.topic) !=
        kGatewayTopics.end()) {
      return fail(error(file, p + "/topic",
                        "topic \"" + agency.topic +
                            "\" is one of the gateway's own topics; give the agency a referral "
                            "topic of its own (e.g. sdoh.referral." +
                            agency.id + ") or none"));
    }
    if (std::find(kGatewayTopics.begin(), kGatewayTopics.end(), agency.update_topic) !=
        kGatewayTopics.end()) {
      return fail(error(file, p + "/update_topic",
                        "update_topic \"" + agency.update_topic +
                            "\" is one of the gateway's own topics; an agency's updates come on a "
                            "topic of its own (e.g. sdoh.referral-updates." +
                            agency.id + ")"));
    }
    for (const auto& other : table->agencies_) {
      if (other.update_topic == agency.update_topic) {
        return fail(error(file, p + "/update_topic",
                          "update_topic \"" + agency.update_topic + "\" is also agency " +
                              other.id + "'s: the topic is how the gateway knows who wrote"));
      }
    }
    table->agencies_.push_back(std::move(agency));
  }

  const auto& routes = (*doc)["routes"];
  for (rj::SizeType i = 0; i < routes.Size(); ++i) {
    const auto& r = routes[i];
    const auto p = "/routes/" + std::to_string(i);
    Route base;
    base.pointer = p;
    const auto agency_id = str(r, "agency");
    auto agency = ids.find(agency_id);
    if (agency == ids.end()) {
      return fail(
          error(file, p + "/agency", "unknown agency \"" + agency_id + "\" (not in /agencies)"));
    }
    base.agency = agency->second;
    const auto& area = r["area"];
    base.anywhere = area.IsString();
    if (area.IsObject()) {
      base.zip3 = strings(area, "zip3");
      base.counties = strings(area, "county");
      for (const auto* list : {&base.zip3, &base.counties}) {
        std::set<std::string> seen;
        for (const auto& v : *list) {
          if (!seen.insert(v).second) {
            return fail(error(file, p + "/area", "\"" + v + "\" is listed twice"));
          }
        }
      }
    }
    if (auto it = r.FindMember("ageMonths"); it != r.MemberEnd()) {
      AgeBand band;
      if (auto m = it->value.FindMember("min"); m != it->value.MemberEnd())
        band.min_months = m->value.GetInt();
      if (auto m = it->value.FindMember("max"); m != it->value.MemberEnd())
        band.max_months = m->value.GetInt();
      if (band.max_months && *band.max_months < band.min_months) {
        return fail(error(file, p + "/ageMonths",
                          "min " + std::to_string(band.min_months) + " is above max " +
                              std::to_string(*band.max_months)));
      }
      base.age = band;
    }
    const auto categories = one_or_many(r["category"]);
    const bool listed = r["category"].IsArray();
    std::set<std::string> seen;
    for (std::size_t c = 0; c < categories.size(); ++c) {
      const auto cp = p + "/category" + (listed ? "/" + std::to_string(c) : std::string());
      if (!tables.known_category(categories[c])) {
        return fail(error(file, cp,
                          "unknown category \"" + categories[c] +
                              "\" (not in schemas/mappings/categories.json)"));
      }
      if (!seen.insert(categories[c]).second) {
        return fail(error(file, cp, "category \"" + categories[c] + "\" is listed twice"));
      }
      Route route = base;
      route.category = categories[c];
      for (const auto& earlier : table->routes_) {
        if (earlier.category != route.category) continue;
        if (auto place = tie(earlier, route)) {
          const auto& other = table->agencies_[earlier.agency].id;
          const auto& mine = table->agencies_[route.agency].id;
          return fail(error(
              file, p,
              "overlaps " + earlier.pointer + ": both route " + route.category + " for " + *place +
                  (other == mine ? " (both to " + mine + ")"
                                 : " (to " + other + " and " + mine + ")") +
                  " equally specifically; narrow one (a county, a ZIP3, an age band) or remove "
                  "one"));
        }
      }
      table->routes_.push_back(std::move(route));
    }
  }
  return std::shared_ptr<const RoutingTable>(std::move(table));
}

std::optional<RouteMatch> RoutingTable::route(std::string_view category, std::string_view zip3,
                                              std::string_view county_fips,
                                              std::optional<int> age_months) const {
  std::optional<RouteMatch> best;
  Specificity best_specificity;
  for (const auto& r : routes_) {
    if (r.category != category) continue;
    if (r.age && (!age_months || !r.age->contains(*age_months))) continue;
    AreaLevel level;
    if (contains(r.counties, county_fips)) {
      level = AreaLevel::kCounty;
    } else if (contains(r.zip3, zip3)) {
      level = AreaLevel::kZip3;
    } else if (r.anywhere) {
      level = AreaLevel::kAnywhere;
    } else {
      continue;
    }
    const auto s = specificity(r, level);
    // load() refused equal specificities, so ">" never has to break a tie.
    if (!best || s > best_specificity) {
      best = RouteMatch{&agencies_[r.agency], &r, level};
      best_specificity = s;
    }
  }
  return best;
}

std::optional<RouteChoice> RoutingTable::choose(std::string_view category, const RoutingKeys& keys,
                                                const ZipCountyCrosswalk* crosswalk) const {
  const auto county = family_county(keys.county_fips, keys.zip, crosswalk);
  const auto match = route(category, keys.zip3, county.county_fips, keys.age_months);
  if (!match) return std::nullopt;
  return RouteChoice{match->agency->id, match->agency->name, {match->area, county.basis}};
}

const Agency* RoutingTable::agency(std::string_view id) const {
  for (const auto& a : agencies_) {
    if (a.id == id) return &a;
  }
  return nullptr;
}

}  // namespace sdoh::mapping
