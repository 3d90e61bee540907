#pragma once
// Small JSON text helpers for hand-built lines (log records, ops answers). Documents with
// structure are built with RapidJSON inside the component that needs them.
#include <string>
#include <string_view>

namespace sdoh {

/// Appends `s` to `out` as a JSON string literal, quotes included. Control characters and
/// invalid UTF-8 bytes are escaped, so any input yields valid JSON.
void append_json_string(std::string& out, std::string_view s);

/// Returns `s` as a JSON string literal.
std::string json_string(std::string_view s);

}  // namespace sdoh
