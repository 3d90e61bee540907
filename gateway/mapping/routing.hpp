#pragma once
// Referral routing, loaded from data (schemas/routing/routing.json, checked against
// routing.schema.json and the rules between entries): the agencies referrals go to — each with
// its Kafka topic, its response SLA and its FHIR Organization — and the routes that pick the
// agency for a referral that names none, by need (Gravity category), the family's area (3-digit
// ZIP or county FIPS code; a county the sender does not give comes from the ZIP through the
// ZIP-to-county crosswalk, zip_county.hpp) and the child's age in months. A referral no route
// matches is held (lifecycle.hpp: requested + no-route), never dropped. schemas/README.md
// ("Routing") documents the format for operators. Pure: load() reads two files; route() is a
// lookup.
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gateway/core/result.hpp"
#include "gateway/mapping/zip_county.hpp"

namespace sdoh::mapping {

class MappingTables;

/// A community agency: the owner (Task.owner) of the referrals routed or named to it.
struct Agency {
  std::string id;     ///< events' agency.id; lowercase, a valid FHIR id
  std::string name;   ///< for people
  std::string kind;   ///< home-visiting | wic | early-intervention | head-start | child-care | ...
  std::string topic;  ///< its own Kafka topic (ACLs keep it to its families); empty: the default
  /// The topic it writes its updates to, and the only one whose updates count as its own
  /// (ACLs let only this agency write it): routing's update_topic, else sdoh.referral-updates.<id>.
  std::string update_topic;
  /// How long it has to receive or accept a referral before the overdue alert; none: the
  /// gateway's default (referrals.default_sla).
  std::optional<std::chrono::milliseconds> sla;
  std::string owner;  ///< FHIR reference for Task.owner: "Organization/<id>"

  /// Its SLA, else `default_sla`.
  std::chrono::milliseconds sla_or(std::chrono::milliseconds default_sla) const {
    return sla.value_or(default_sla);
  }

  /// The topic its referrals are published on: its own, else `referral_topic`
  /// (kafka.topics.referral, default sdoh.referral.v1).
  std::string_view topic_or(std::string_view referral_topic) const {
    return topic.empty() ? referral_topic : std::string_view(topic);
  }
};

/// Ages in completed months, both ends inclusive: {0, 35} is "before the third birthday".
struct AgeBand {
  int min_months = 0;
  std::optional<int> max_months;  ///< none: no upper limit
  bool contains(int months) const {
    return months >= min_months && (!max_months || months <= *max_months);
  }
  friend bool operator==(const AgeBand&, const AgeBand&) = default;
};

/// How specifically a route's area matched a family, least specific first.
enum class AreaLevel { kAnywhere, kZip3, kCounty };
std::string_view to_string(AreaLevel a);

/// One route for one category (a file entry listing several categories is one Route each).
struct Route {
  std::string category;
  bool anywhere = false;  ///< area "*"
  std::vector<std::string> zip3;
  std::vector<std::string> counties;  ///< 5-digit FIPS
  std::optional<AgeBand> age;         ///< none: any age, including unknown
  std::size_t agency = 0;             ///< index into RoutingTable::agencies()
  std::string pointer;  ///< where it is in the file ("/routes/3"), for logs and errors
};

/// What routing looks at beside the need, for a referral that names no agency (referral.hpp's
/// routing_keys() takes them from a referral). Never in an event: the real ZIP, not the Safe
/// Harbor "000" events carry for small areas.
struct RoutingKeys {
  std::string zip3;               ///< the postal code's first three digits; empty: not a US ZIP
  std::string zip;                ///< the postal code as given, for the county crosswalk
  std::string county_fips;        ///< 5 digits, as the sender gave it; empty: unknown
  std::optional<int> age_months;  ///< the child's age in completed months; nullopt: unknown
};

/// How routing chose an agency: the referral event's `routing` object.
struct RoutingBasis {
  AreaLevel area = AreaLevel::kAnywhere;    ///< how the chosen route's area matched
  CountyBasis county = CountyBasis::kNone;  ///< how the county routing looked at was known
  friend bool operator==(const RoutingBasis&, const RoutingBasis&) = default;
};

/// The agency routing chose, and how.
struct RouteChoice {
  std::string agency_id;
  std::string agency_name;
  RoutingBasis basis;
};

struct RouteMatch {
  const Agency* agency = nullptr;
  const Route* route = nullptr;
  AreaLevel area = AreaLevel::kAnywhere;  ///< how the family's area matched
};

class RoutingTable {
 public:
  /// Loads `dir`/routing.json, checked against `dir`/routing.schema.json and these rules, each
  /// refusal naming the file, the JSON path and the reason (kConfig): a category not in the
  /// mapping tables' categories.json, a route to an agency not in `agencies`, a duplicate agency
  /// id, an SLA over 365 days, an owner that does not name the agency's id, an agency topic that
  /// is one of the gateway's other topics, an age band with min > max, and two routes that could
  /// both match one referral equally specifically (the tie route() could not break).
  static Result<std::shared_ptr<const RoutingTable>> load(const std::filesystem::path& dir,
                                                          const MappingTables& tables);
  /// The same for a routing file anywhere (referrals.routing_file, a mounted file), checked
  /// against `schema_file`.
  static Result<std::shared_ptr<const RoutingTable>> load_file(
      const std::filesystem::path& file, const std::filesystem::path& schema_file,
      const MappingTables& tables);

  /// The agency for a referral for `category`, for a family in 3-digit ZIP area `zip3` and county
  /// `county_fips` (empty: unknown), for a child `age_months` old on the referral date (nullopt:
  /// unknown): the most specific matching route's, or nullopt when none matches (the referral is
  /// held: no-route). Pass the ZIP's real first three digits, not the Safe Harbor "000" of events.
  ///
  /// A route matches when its category is `category`, its area is "*" or lists `county_fips` or
  /// `zip3`, and it has no age band or the age is known and inside it. Of the matching routes the
  /// most specific wins, compared in this order:
  ///  1. the area: matched by county, over by 3-digit ZIP, over "*";
  ///  2. the age: a route with an age band over one without;
  ///  3. the narrower age band (fewer months).
  /// Two routes equal on all three for some referral are refused by load(), so there is no tie.
  std::optional<RouteMatch> route(std::string_view category, std::string_view zip3,
                                  std::string_view county_fips,
                                  std::optional<int> age_months) const;

  /// route() for a referral's keys: the county is the sender's, else the one `crosswalk` (may be
  /// null: none) gives for the ZIP (family_county()), and the choice says which, with the area
  /// level the route matched at.
  std::optional<RouteChoice> choose(std::string_view category, const RoutingKeys& keys,
                                    const ZipCountyCrosswalk* crosswalk) const;

  /// The agency with id `id`, or nullptr.
  const Agency* agency(std::string_view id) const;
  const std::vector<Agency>& agencies() const { return agencies_; }
  const std::vector<Route>& routes() const { return routes_; }
  /// The file says "example": true (the shipped schemas/routing/routing.json): invented agencies,
  /// which production mode refuses.
  bool example() const { return example_; }

 private:
  bool example_ = false;
  std::vector<Agency> agencies_;
  std::vector<Route> routes_;
};

/// Routing as the adapters get it (runtime.cpp wires it over RoutingTable::choose with the
/// crosswalk): the agency for a referral's need and routing keys; nullopt: no route (the referral
/// is held, no-route).
using RouteLookup =
    std::function<std::optional<RouteChoice>(std::string_view category, const RoutingKeys& keys)>;

/// "72h" → 72 hours, "3d" → 3 days, "90m" → 90 minutes; nullopt for anything else (no zero, no
/// other units, no spaces).
std::optional<std::chrono::seconds> parse_duration(std::string_view text);

}  // namespace sdoh::mapping
