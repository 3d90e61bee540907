#include "gateway/core/json_parse.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

namespace sdoh::json {
namespace {

std::atomic<std::size_t> g_max_depth{kDefaultMaxDepth};

constexpr unsigned kFlags = rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag |
                            rapidjson::kParseStopWhenDoneFlag;

// A member name fit to repeat in an error (FHIR element names are); anything else might be
// content, so it is not repeated.
std::string name_for_error(std::string_view name) {
  const bool plain =
      !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '-' || c == '$' || c == '.';
      });
  return plain ? "\"" + std::string(name) + "\"" : std::string("a member name");
}

// Forwards RapidJSON's SAX events to the Document while enforcing the limits the Reader does
// not know: nesting depth, duplicate member names and escaped lone surrogates.
class GuardedHandler {
 public:
  GuardedHandler(rapidjson::Document& doc, std::size_t max_depth, bool check_duplicates)
      : doc_(doc), max_depth_(max_depth), check_duplicates_(check_duplicates) {}

  bool Null() { return doc_.Null(); }
  bool Bool(bool b) { return doc_.Bool(b); }
  bool Int(int i) { return doc_.Int(i); }
  bool Uint(unsigned u) { return doc_.Uint(u); }
  bool Int64(std::int64_t i) { return doc_.Int64(i); }
  bool Uint64(std::uint64_t u) { return doc_.Uint64(u); }
  bool Double(double d) { return doc_.Double(d); }
  bool RawNumber(const char* s, rapidjson::SizeType n, bool copy) {
    return doc_.RawNumber(s, n, copy);
  }
  bool String(const char* s, rapidjson::SizeType n, bool copy) {
    return text_ok(s, n) && doc_.String(s, n, copy);
  }
  bool Key(const char* s, rapidjson::SizeType n, bool copy) {
    if (!text_ok(s, n)) return false;
    if (check_duplicates_) {
      key_bytes_.append(s, n);
      keys_.push_back({key_bytes_.size() - n, n});
    }
    return doc_.Key(s, n, copy);
  }
  bool StartObject() {
    if (!deeper()) return false;
    object_starts_.push_back(keys_.size());
    return doc_.StartObject();
  }
  bool EndObject(rapidjson::SizeType members) {
    --depth_;
    if (check_duplicates_ && !unique_keys()) return false;
    return doc_.EndObject(members);
  }
  bool StartArray() { return deeper() && doc_.StartArray(); }
  bool EndArray(rapidjson::SizeType elements) {
    --depth_;
    return doc_.EndArray(elements);
  }

  const std::string& problem() const { return problem_; }

 private:
  bool deeper() {
    if (++depth_ <= max_depth_) return true;
    problem_ = "nested deeper than " + std::to_string(max_depth_) + " levels (json.max_depth)";
    return false;
  }

  // Raw bytes were validated by the Reader; a \u escape can still decode to a surrogate.
  bool text_ok(const char* s, rapidjson::SizeType n) {
    std::size_t bad = 0;
    if (valid_utf8({s, n}, &bad)) return true;
    problem_ = "a string is not valid UTF-8 (an escaped lone surrogate?)";
    return false;
  }

  // The member names of the object that just ended, sorted and compared; then dropped.
  bool unique_keys() {
    const auto start = object_starts_.back();
    object_starts_.pop_back();
    bool unique = true;
    if (keys_.size() - start > 1) {
      names_.clear();
      for (auto i = start; i < keys_.size(); ++i)
        names_.emplace_back(key_bytes_.data() + keys_[i].first, keys_[i].second);
      std::sort(names_.begin(), names_.end());
      const auto dup = std::adjacent_find(names_.begin(), names_.end());
      if (dup != names_.end()) {
        problem_ = "duplicate member name " + name_for_error(*dup) + " in one object";
        unique = false;
      }
    }
    if (start < keys_.size()) key_bytes_.resize(keys_[start].first);
    keys_.resize(start);
    return unique;
  }

  rapidjson::Document& doc_;
  std::size_t max_depth_;
  bool check_duplicates_;
  std::size_t depth_ = 0;
  std::string problem_;
  std::string key_bytes_;                                  // names of the open objects' members
  std::vector<std::pair<std::size_t, std::size_t>> keys_;  // (offset, length) in key_bytes_
  std::vector<std::size_t> object_starts_;                 // first key index of each open object
  std::vector<std::string_view> names_;                    // scratch for unique_keys()
};

bool is_json_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

}  // namespace

void set_default_max_depth(std::size_t depth) {
  g_max_depth.store(depth == 0 ? kDefaultMaxDepth : depth, std::memory_order_relaxed);
}

std::size_t default_max_depth() {
  return g_max_depth.load(std::memory_order_relaxed);
}

bool valid_utf8(std::string_view s, std::size_t* bad_at) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  std::size_t i = 0;
  auto bad = [&](std::size_t at) {
    if (bad_at != nullptr) *bad_at = at;
    return false;
  };
  while (i < n) {
    const unsigned b0 = p[i];
    if (b0 < 0x80) {
      ++i;
      continue;
    }
    // RFC 3629 section 4 (the UTF8-2/3/4 rules): the second byte's range depends on the first,
    // which excludes overlongs (C0, C1, E0 80-9F, F0 80-8F), surrogates (ED A0-BF) and code
    // points above U+10FFFF (F4 90-BF, F5-FF).
    std::size_t len = 0;
    unsigned lo = 0x80, hi = 0xBF;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
      len = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      len = 3;
      if (b0 == 0xE0) lo = 0xA0;
      if (b0 == 0xED) hi = 0x9F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      len = 4;
      if (b0 == 0xF0) lo = 0x90;
      if (b0 == 0xF4) hi = 0x8F;
    } else {
      return bad(i);
    }
    if (i + len > n) return bad(i);
    if (p[i + 1] < lo || p[i + 1] > hi) return bad(i);
    for (std::size_t k = 2; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return bad(i);
    }
    i += len;
  }
  return true;
}

std::string with_replacement_characters(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  while (!s.empty()) {
    std::size_t bad = s.size();
    if (valid_utf8(s, &bad)) bad = s.size();
    out.append(s.substr(0, bad));
    if (bad == s.size()) break;
    out += "\xEF\xBF\xBD";  // U+FFFD REPLACEMENT CHARACTER
    s.remove_prefix(bad + 1);
  }
  return out;
}

Result<void> parse(rapidjson::Document& doc, std::string_view text, const ParseOptions& options) {
  const std::size_t max_depth = options.max_depth != 0 ? options.max_depth : default_max_depth();
  rapidjson::MemoryStream stream(text.data(), text.size());
  GuardedHandler handler(doc, max_depth, !options.allow_duplicate_keys);
  rapidjson::Reader reader;
  rapidjson::ParseResult result;
  doc.SetNull();
  auto generate = [&](rapidjson::Document&) {
    result = reader.Parse<kFlags>(stream, handler);
    return !result.IsError();
  };
  doc.Populate(generate);
  if (result.IsError()) {
    doc.SetNull();
    const auto offset = std::to_string(result.Offset());
    if (result.Code() == rapidjson::kParseErrorTermination && !handler.problem().empty())
      return fail(Error::invalid(handler.problem() + " at byte offset " + offset));
    if (result.Code() == rapidjson::kParseErrorStringInvalidEncoding)
      return fail(Error::invalid("invalid UTF-8 at byte offset " + offset));
    return fail(Error::invalid(std::string(rapidjson::GetParseError_En(result.Code())) +
                               " at byte offset " + offset));
  }
  // kParseStopWhenDoneFlag leaves the stream right after the value: only white space may follow
  // (a NUL would otherwise end the input early and hide what comes after it).
  std::size_t rest = stream.Tell();
  while (rest < text.size() && is_json_space(text[rest]))
    ++rest;
  if (rest != text.size()) {
    doc.SetNull();
    return fail(Error::invalid("unexpected bytes after the JSON value at byte offset " +
                               std::to_string(rest)));
  }
  return {};
}

}  // namespace sdoh::json
