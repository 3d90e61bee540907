#pragma once
// HL7 v2 ER7 ("pipe and hat") messages: parsing into views over the received text, typed access
// by path ("PID-3(2).1"), escape decoding, and byte-for-byte serialisation. Pure: no I/O.
//
// HL7 v2.5.1 ch. 2: encoding characters come from MSH-1 (field separator) and MSH-2
// (component, repetition, escape, subcomponent[, truncation]); they are never assumed.
// MSH-1 is the field separator itself, so MSH-n is the (n-1)th '|' -separated piece.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "adapters/hl7v2/charset.hpp"
#include "gateway/core/result.hpp"

namespace sdoh::hl7v2 {

struct Delimiters {
  char field = '|';
  char component = '^';
  char repetition = '~';
  char escape = '\\';
  char subcomponent = '&';
};

/// One segment: its id and its fields as views into the message text.
class Segment {
 public:
  std::string_view id() const { return id_; }
  /// The highest field number present (trailing empty fields included).
  int field_count() const;
  /// Field `n` as sent (escapes not decoded); empty when absent. MSH-1 is the separator.
  std::string_view raw(int field) const;
  /// A part of field `n`: repetition (1-based), component (0 = all), subcomponent (0 = all).
  std::string_view raw(int field, int repetition, int component, int subcomponent = 0) const;
  /// The same part with escapes decoded (\F\ \S\ \T\ \R\ \E\ \Xhh\), as UTF-8 (converted from
  /// the message's character set, see charset.hpp); formatting escapes such as \.br\ are kept.
  std::string value(int field, int repetition = 1, int component = 1, int subcomponent = 0) const;
  /// How many repetitions field `n` has (0 when empty).
  int repetitions(int field) const;
  /// The segment's text, without its terminator.
  std::string_view text() const { return text_; }

 private:
  friend class Message;
  std::string_view text_;
  std::string_view id_;
  std::vector<std::string_view> fields_;  // fields_[0] = id; MSH: fields_[1] = MSH-2
  const Delimiters* delims_ = nullptr;
  Charset charset_ = Charset::kUtf8;
  bool is_msh_ = false;
};

class Message {
 public:
  /// Parses one message (not a batch). Segment terminators CR, LF or CRLF. Fails with a
  /// Location naming the segment and field when the text is not HL7 v2.
  static Result<Message> parse(std::string text);

  // Moves keep the text's buffer (held by pointer), so segment views stay valid.
  Message(Message&&) noexcept = default;
  Message& operator=(Message&&) noexcept = default;
  Message(const Message&) = delete;
  Message& operator=(const Message&) = delete;

  const std::string& text() const { return *text_; }
  const Delimiters& delimiters() const { return *delims_ptr_; }
  const std::vector<Segment>& segments() const { return segments_; }
  /// The `occurrence`-th (1-based) segment with this id, or null.
  const Segment* segment(std::string_view id, int occurrence = 1) const;
  const Segment& msh() const { return segments_.front(); }

  /// Decoded value (UTF-8) by path: "MSH-10", "PID-3(2).4", "OBX[2]-5.1", "PID-3.4.1".
  /// Empty when absent or when the path is malformed.
  std::string get(std::string_view path) const;

  /// The exact bytes parsed (the original segment terminators included).
  const std::string& serialize() const { return *text_; }

  /// Tolerated deviations seen while parsing (e.g. a lone escape character, short MSH-2).
  int deviations() const { return deviations_; }

  /// How the bytes are read (MSH-18 and what the bytes are); values come out as UTF-8.
  const CharsetReading& charset() const { return charset_; }

  /// Where byte `offset` of text() lies: segment id and occurrence, field (and component).
  Location location_of(std::size_t offset) const;

 private:
  Message() = default;
  std::unique_ptr<std::string> text_;
  std::unique_ptr<Delimiters> delims_ptr_;  // segments point at it
  std::vector<Segment> segments_;
  int deviations_ = 0;
  CharsetReading charset_;
};

/// Decodes HL7 escape sequences in `raw` using `d` (formatting escapes kept as sent).
/// `deviations` is incremented for a lone or unterminated escape character (kept literally).
std::string unescape(std::string_view raw, const Delimiters& d, int* deviations = nullptr);
/// Escapes the delimiters in `value` for writing into a field.
std::string escape(std::string_view value, const Delimiters& d);

/// Splits a batch (FHS/BHS ... BTS/FTS) into its messages; a plain message comes back alone.
/// Message texts are views into `text`.
Result<std::vector<std::string_view>> split_batch(std::string_view text);

/// An invalid-input error located at one field of one segment occurrence (HL7 ERR-2).
Error field_error(const char* segment, int sequence, int field, std::string message);

}  // namespace sdoh::hl7v2
