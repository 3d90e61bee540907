#pragma once
// MSH-18 character sets (HL7 table 0211) and how field bytes become UTF-8 text for events.
// Pure: no I/O. The message bytes are never rewritten (parse → serialize stays byte for byte);
// only decoded field values are converted.
//
// What real senders do (FIELD-NOTES: Windows-1252 text declared or not in MSH-18): many send
// Windows-1252/Latin-1 with MSH-18 empty or "ASCII", and many that declare 8859/1 really send
// Windows-1252 (the 0x80-0x9F range holds curly quotes and dashes there, C1 controls in
// Latin-1). So:
//   - empty / ASCII, bytes valid UTF-8          → UTF-8 (ASCII is a subset)
//   - empty / ASCII, bytes not valid UTF-8      → read as Windows-1252, counted as a fallback
//   - 8859/1 (and common aliases)               → read as Windows-1252 (WHATWG "latin1" label)
//   - 8859/1 but non-ASCII bytes all valid UTF-8 → read as UTF-8, counted as a fallback
//   - UNICODE UTF-8 / UNICODE, bytes not UTF-8  → refused: the sender said UTF-8, guessing what
//                                                 it meant would corrupt names (AE naming the
//                                                 field)
//   - anything else, or alternate sets (MSH-18 repeated, ISO 2022 switching) → refused (AR)
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace sdoh::hl7v2 {

enum class Charset {
  kUtf8,
  kWindows1252,  ///< also used for ISO 8859-1, of which it is a superset in printable text
};
std::string_view to_string(Charset c);

/// How a message's bytes are read, decided from MSH-18 and the bytes themselves.
struct CharsetReading {
  Charset charset = Charset::kUtf8;
  std::string declared;   ///< MSH-18 (first repetition) as sent; empty when not valued
  bool supported = true;  ///< false: a character set this gateway does not read (answer AR)
  /// The bytes were not what MSH-18 said (or implied); read as `charset` anyway.
  bool fallback = false;
  /// MSH-18 declared UTF-8 but the bytes are not: offset of the first invalid byte.
  std::optional<std::size_t> invalid_utf8_at;
};

/// `msh18` is MSH-18's first repetition, `repetitions` how many MSH-18 has; `text` the message.
CharsetReading read_charset(std::string_view msh18, int repetitions, std::string_view text);

/// Offset of the first byte that is not part of a well-formed UTF-8 sequence (overlongs,
/// surrogates and code points above U+10FFFF are ill-formed); nullopt when all is well-formed.
std::optional<std::size_t> first_invalid_utf8(std::string_view text);

/// Windows-1252 (WHATWG table: the five unassigned bytes map to the C1 controls) to UTF-8.
std::string windows1252_to_utf8(std::string_view text);

/// Decoded field text in `charset` → UTF-8.
inline std::string to_utf8(std::string text, Charset charset) {
  if (charset == Charset::kUtf8) return text;
  return windows1252_to_utf8(text);
}

}  // namespace sdoh::hl7v2
