#include "adapters/hl7v2/charset.hpp"

#include <algorithm>
#include <array>
#include <cctype>

namespace sdoh::hl7v2 {
namespace {

// Windows-1252 0x80-0x9F (WHATWG encoding standard, index-windows-1252).
constexpr std::array<char32_t, 32> kHigh = {
    0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0x008D, 0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178};

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string upper(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return out;
}

bool has_non_ascii(std::string_view text) {
  return std::any_of(text.begin(), text.end(),
                     [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
}

enum class Label { kNone, kAscii, kUtf8, kLatin1, kUnknown };

// HL7 table 0211 values, plus the spellings real senders use instead ("UTF-8", "ISO-8859-1").
Label classify(std::string_view msh18) {
  const auto u = upper(msh18);
  if (u.empty()) return Label::kNone;
  if (u == "ASCII" || u == "US-ASCII") return Label::kAscii;
  if (u == "UNICODE UTF-8" || u == "UNICODE" || u == "UTF-8" || u == "UTF8") return Label::kUtf8;
  if (u == "8859/1" || u == "ISO-8859-1" || u == "ISO_8859-1" || u == "ISO8859-1" ||
      u == "LATIN1" || u == "LATIN-1" || u == "WINDOWS-1252" || u == "CP1252")
    return Label::kLatin1;
  return Label::kUnknown;
}

}  // namespace

std::string_view to_string(Charset c) {
  return c == Charset::kUtf8 ? "utf-8" : "windows-1252";
}

std::optional<std::size_t> first_invalid_utf8(std::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  std::size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte (RFC 3629 table)
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c == 0xE0) {
      len = 3, lo = 0xA0;
    } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
      len = 3;
    } else if (c == 0xED) {
      len = 3, hi = 0x9F;  // no surrogates
    } else if (c == 0xF0) {
      len = 4, lo = 0x90;
    } else if (c >= 0xF1 && c <= 0xF3) {
      len = 4;
    } else if (c == 0xF4) {
      len = 4, hi = 0x8F;  // nothing above U+10FFFF
    } else {
      return i;
    }
    if (i + len > n || p[i + 1] < lo || p[i + 1] > hi) return i;
    for (std::size_t k = 2; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return i;
    }
    i += len;
  }
  return std::nullopt;
}

std::string windows1252_to_utf8(std::string_view text) {
  if (!has_non_ascii(text)) return std::string(text);
  std::string out;
  out.reserve(text.size() + text.size() / 4);
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x80) {
      out += ch;
    } else if (c < 0xA0) {
      append_utf8(out, kHigh[c - 0x80]);
    } else {
      append_utf8(out, c);  // 0xA0-0xFF: the same code points as ISO 8859-1
    }
  }
  return out;
}

CharsetReading read_charset(std::string_view msh18, int repetitions, std::string_view text) {
  CharsetReading r;
  r.declared = std::string(msh18);
  if (repetitions > 1) {
    // Alternate character sets switched with ISO 2022 escapes (HL7 v2.5.1 2.15.9.18).
    r.supported = false;
    return r;
  }
  switch (classify(msh18)) {
    case Label::kUnknown:
      r.supported = false;
      return r;
    case Label::kNone:
    case Label::kAscii:
      if (first_invalid_utf8(text)) {
        r.charset = Charset::kWindows1252;
        r.fallback = true;
      } else if (!msh18.empty() && has_non_ascii(text)) {
        r.fallback = true;  // "ASCII" with UTF-8 text: read as UTF-8
      }
      return r;
    case Label::kUtf8:
      r.invalid_utf8_at = first_invalid_utf8(text);
      return r;
    case Label::kLatin1:
      if (has_non_ascii(text) && !first_invalid_utf8(text)) {
        // Multi-byte UTF-8 sequences are practically never Latin-1 text ("Ã©"): the sender
        // mislabelled UTF-8.
        r.fallback = true;
      } else {
        r.charset = Charset::kWindows1252;
      }
      return r;
  }
  return r;
}

}  // namespace sdoh::hl7v2
