#pragma once
// The county of a family that only a ZIP code places: a crosswalk from 5-digit ZIP codes to county
// FIPS codes, read from the Census Bureau's ZCTA-to-county relationship file reduced to one row per
// part of a ZCTA in a county (schemas/geo/zcta-county.csv; tools/geo/zcta-county makes it; the
// format and the vintage are in schemas/README.md, "ZIP to county"). Routing uses it when a
// referral gives a ZIP but no county: always for FHIR (an Address has no county), and for HL7 when
// PID-11.9 and PID-12 are empty. A ZCTA (the Census area drawn for a ZIP) is not the USPS ZIP
// itself, but for residential ZIPs they match; a ZIP without a ZCTA (a PO box, a single building)
// is unknown here and routes by its 3-digit area as before. Pure: load() reads one file;
// county() is a lookup.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "gateway/core/result.hpp"

namespace sdoh::mapping {

/// How routing knew the family's county. Written to the referral event (routing.countyBasis).
enum class CountyBasis {
  kNone,             ///< no county: neither given nor found for the ZIP
  kAddress,          ///< the sender gave it (HL7 PID-11.9 or PID-12)
  kZipSole,          ///< derived from the ZIP, which lies in one county
  kZipLargestShare,  ///< derived from the ZIP, which spans counties: the one with most of its land
};
std::string_view to_string(CountyBasis b);

/// The county a ZIP is routed to.
struct ZipCounty {
  std::string county_fips;  ///< 5 digits
  double land_share = 1.0;  ///< the county's share of the ZCTA's land area, 0-1
  int counties = 1;         ///< how many counties the ZCTA has land in
  bool sole() const { return counties == 1; }
};

class ZipCountyCrosswalk {
 public:
  /// Reads a CSV file with the header `zcta,county_fips,land_share` and one row per county part
  /// of a ZCTA. Refuses (kConfig), naming the file, the line and the reason: a missing or other
  /// header, a row without three fields, a ZCTA or county that is not 5 digits, a share that is
  /// not a number from 0 to 1, a county listed twice for one ZCTA, and a ZCTA whose shares do not
  /// add up to 1 (within 0.01, for rounding). An empty file (header only) is valid: no ZIP is
  /// known.
  static Result<std::shared_ptr<const ZipCountyCrosswalk>> load(const std::filesystem::path& file);

  /// The county of `zip`, a ZIP code ("27516") or ZIP+4 ("27516-1234", "275161234"): nullopt
  /// for anything else and for a ZIP the file does not list. Of several
  /// counties the one with the largest land share; of equal shares the first listed.
  std::optional<ZipCounty> county(std::string_view zip) const;

  std::size_t size() const { return zips_.size(); }

 private:
  std::unordered_map<std::uint32_t, ZipCounty> zips_;
};

/// The county routing uses and how it was known: `county_fips` when the sender gave one (5
/// digits), else the crosswalk's for `zip` (when there is a crosswalk), else none.
struct FamilyCounty {
  std::string county_fips;  ///< empty: unknown
  CountyBasis basis = CountyBasis::kNone;
};
FamilyCounty family_county(std::string_view county_fips, std::string_view zip,
                           const ZipCountyCrosswalk* crosswalk);

}  // namespace sdoh::mapping
