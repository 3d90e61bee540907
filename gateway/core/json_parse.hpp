#pragma once
// The one JSON parse for every input the gateway reads: HTTP bodies, Kafka records, stored
// resources and the data files beside the config. Hostile input must not crash, exhaust or
// poison the process, so every caller gets the same rules:
// - iterative parsing (no recursion over the input's nesting) and an explicit depth limit
//   (json.max_depth, default 64: FHIR resources need fewer than 64 levels);
// - strict UTF-8 (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF), in raw bytes
//   and in \u escapes (RapidJSON 1.1.0 accepts an escaped lone surrogate such as "\udc00" even
//   with kParseValidateEncodingFlag);
// - nothing but white space after the value (`{...}\0garbage` is refused, not truncated);
// - no duplicate member names in an object (RFC 8259 leaves them undefined; FHIR JSON forbids
//   them), unless a caller says otherwise.
// Errors name the byte offset, never the content. Includes RapidJSON: for .cpp files of
// components that already use it, never for widely included headers.
#include <cstddef>
#include <string>
#include <string_view>

#include <rapidjson/document.h>

#include "gateway/core/result.hpp"

namespace sdoh::json {

inline constexpr std::size_t kDefaultMaxDepth = 64;

struct ParseOptions {
  /// 0: the process default (json.max_depth, set once at start by set_default_max_depth).
  std::size_t max_depth = 0;
  bool allow_duplicate_keys = false;
};

/// Sets the depth limit every parse without its own uses (the config's json.max_depth). Called
/// once at start-up, before any parse runs; reads are lock-free.
void set_default_max_depth(std::size_t depth);
std::size_t default_max_depth();

/// Parses `text` into `doc`. On failure `doc` is left null and the error (kInvalid) says what
/// and at which byte offset, e.g. "nested deeper than 64 levels at byte offset 65".
Result<void> parse(rapidjson::Document& doc, std::string_view text,
                   const ParseOptions& options = {});

/// Whether `s` is well-formed UTF-8 per RFC 3629; `bad_at` gets the first bad byte's offset.
bool valid_utf8(std::string_view s, std::size_t* bad_at = nullptr);

/// `s` with every byte that is not part of well-formed UTF-8 replaced by U+FFFD, for text the
/// gateway writes back that may quote what a client sent (an OperationOutcome's diagnostics).
std::string with_replacement_characters(std::string_view s);

}  // namespace sdoh::json
