#include "gateway/mapping/zip_county.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <vector>

#include "gateway/mapping/data_file.hpp"

namespace sdoh::mapping {

namespace {

constexpr std::string_view kHeader = "zcta,county_fips,land_share";
// Shares are rounded to four decimals, so a ZCTA of up to six counties may be this far from 1.
constexpr double kShareTolerance = 0.01;

bool five_digits(std::string_view s) {
  return s.size() == 5 &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::uint32_t zip_number(std::string_view five) {
  std::uint32_t n = 0;
  std::from_chars(five.data(), five.data() + five.size(), n);
  return n;
}

// One ZCTA while the file is read: its parts in file order.
struct Parts {
  std::size_t first_line = 0;
  std::vector<std::pair<std::string, double>> counties;
};

}  // namespace

std::string_view to_string(CountyBasis b) {
  switch (b) {
    case CountyBasis::kNone:
      return "none";
    case CountyBasis::kAddress:
      return "address";
    case CountyBasis::kZipSole:
      return "zip-sole";
    case CountyBasis::kZipLargestShare:
      return "zip-largest-share";
  }
  return "none";
}

Result<std::shared_ptr<const ZipCountyCrosswalk>> ZipCountyCrosswalk::load(
    const std::filesystem::path& file) {
  using data_file::error;
  std::ifstream in(file, std::ios::binary);
  if (!in) return fail(error(file, "", "cannot read the file"));
  const auto at = [](std::size_t line) { return "line " + std::to_string(line); };

  std::map<std::uint32_t, Parts> zctas;
  std::string text;
  std::size_t line = 0;
  while (std::getline(in, text)) {
    ++line;
    std::string_view row(text);
    if (!row.empty() && row.back() == '\r') row.remove_suffix(1);
    if (line == 1) {
      if (row.starts_with("\xEF\xBB\xBF")) row.remove_prefix(3);  // a UTF-8 byte order mark
      if (row != kHeader) {
        return fail(error(file, at(line),
                          "the first line must be the header \"" + std::string(kHeader) + "\""));
      }
      continue;
    }
    if (row.empty()) continue;
    std::vector<std::string_view> fields;
    for (std::size_t start = 0;;) {
      const auto comma = row.find(',', start);
      fields.push_back(row.substr(start, comma - start));
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
    if (fields.size() != 3) {
      return fail(error(file, at(line),
                        "expected 3 fields (zcta,county_fips,land_share), found " +
                            std::to_string(fields.size())));
    }
    const auto zcta = fields[0], county = fields[1], share_text = fields[2];
    if (!five_digits(zcta)) {
      return fail(error(file, at(line),
                        "zcta \"" + std::string(zcta) + "\" is not a 5-digit ZIP code area"));
    }
    if (!five_digits(county)) {
      return fail(error(file, at(line),
                        "county_fips \"" + std::string(county) +
                            "\" is not a 5-digit county FIPS code (state and county)"));
    }
    double share = -1;
    const auto [end, ec] =
        std::from_chars(share_text.data(), share_text.data() + share_text.size(), share);
    if (ec != std::errc() || end != share_text.data() + share_text.size() || !(share >= 0) ||
        share > 1) {
      return fail(
          error(file, at(line),
                "land_share \"" + std::string(share_text) + "\" is not a number from 0 to 1"));
    }
    auto& parts = zctas[zip_number(zcta)];
    if (parts.counties.empty()) parts.first_line = line;
    for (const auto& [other, _] : parts.counties) {
      if (other == county) {
        return fail(error(
            file, at(line),
            "county " + std::string(county) + " is listed twice for zcta " + std::string(zcta)));
      }
    }
    parts.counties.emplace_back(county, share);
  }
  if (line == 0) return fail(error(file, "", "the file is empty; it needs at least its header"));

  auto crosswalk = std::make_shared<ZipCountyCrosswalk>();
  crosswalk->zips_.reserve(zctas.size());
  for (const auto& [zip, parts] : zctas) {
    double total = 0;
    const std::pair<std::string, double>* largest = nullptr;
    for (const auto& part : parts.counties) {
      total += part.second;
      if (largest == nullptr || part.second > largest->second) largest = &part;  // first of equals
    }
    if (std::abs(total - 1.0) > kShareTolerance) {
      char zcta[6];
      std::snprintf(zcta, sizeof zcta, "%05u", static_cast<unsigned>(zip));
      return fail(error(file, at(parts.first_line),
                        "the land shares of zcta " + std::string(zcta) + " add up to " +
                            std::to_string(total) + ", not 1"));
    }
    crosswalk->zips_.emplace(
        zip, ZipCounty{largest->first, largest->second, static_cast<int>(parts.counties.size())});
  }
  return std::shared_ptr<const ZipCountyCrosswalk>(std::move(crosswalk));
}

std::optional<ZipCounty> ZipCountyCrosswalk::county(std::string_view zip) const {
  const bool digits =
      std::all_of(zip.begin(), zip.end(), [](char c) { return c >= '0' && c <= '9'; });
  const bool zip_plus_4 =
      zip.size() == 10 && zip[5] == '-' && five_digits(zip.substr(0, 5)) &&
      std::all_of(zip.begin() + 6, zip.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!((digits && (zip.size() == 5 || zip.size() == 9)) || zip_plus_4)) return std::nullopt;
  const auto it = zips_.find(zip_number(zip.substr(0, 5)));
  if (it == zips_.end()) return std::nullopt;
  return it->second;
}

FamilyCounty family_county(std::string_view county_fips, std::string_view zip,
                           const ZipCountyCrosswalk* crosswalk) {
  if (five_digits(county_fips)) return {std::string(county_fips), CountyBasis::kAddress};
  if (crosswalk == nullptr) return {};
  const auto found = crosswalk->county(zip);
  if (!found) return {};
  return {found->county_fips,
          found->sole() ? CountyBasis::kZipSole : CountyBasis::kZipLargestShare};
}

}  // namespace sdoh::mapping
