#include "adapters/hl7v2/message.hpp"

#include <cctype>
#include <charconv>
#include <map>

namespace sdoh::hl7v2 {
namespace {

// The n-th (1-based) piece of `s` split by `sep`; empty when there are fewer pieces.
std::string_view piece(std::string_view s, char sep, int n) {
  if (n < 1) return {};
  std::size_t start = 0;
  for (int i = 1; i < n; ++i) {
    const auto next = s.find(sep, start);
    if (next == std::string_view::npos) return {};
    start = next + 1;
  }
  const auto end = s.find(sep, start);
  return s.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string hex_byte(char c) {
  constexpr char kHex[] = "0123456789ABCDEF";
  const auto u = static_cast<unsigned char>(c);
  return {kHex[u >> 4], kHex[u & 0xF]};
}

Error parse_error(std::string segment, int sequence, int field, std::string message) {
  Location where;
  where.segment = std::move(segment);
  where.sequence = sequence;
  where.field = field;
  return Error::invalid(std::move(where), std::move(message));
}

}  // namespace

int Segment::field_count() const {
  if (is_msh_) return static_cast<int>(fields_.size());  // fields_[k] is MSH-(k+1)
  return static_cast<int>(fields_.size()) - 1;
}

std::string_view Segment::raw(int field) const {
  if (field < 1) return {};
  if (is_msh_) {
    if (field == 1) return std::string_view(&delims_->field, 1);
    const auto index = static_cast<std::size_t>(field - 1);
    return index < fields_.size() ? fields_[index] : std::string_view();
  }
  const auto index = static_cast<std::size_t>(field);
  return index < fields_.size() ? fields_[index] : std::string_view();
}

std::string_view Segment::raw(int field, int repetition, int component, int subcomponent) const {
  auto f = raw(field);
  // MSH-1 and MSH-2 hold the delimiters themselves and are never split.
  if (is_msh_ && field <= 2) return f;
  auto rep = piece(f, delims_->repetition, repetition);
  if (component == 0) return rep;
  auto comp = piece(rep, delims_->component, component);
  if (subcomponent == 0) return comp;
  return piece(comp, delims_->subcomponent, subcomponent);
}

std::string Segment::value(int field, int repetition, int component, int subcomponent) const {
  if (is_msh_ && field <= 2) return std::string(raw(field));
  // \Xhh\ escapes give bytes in the message's character set too, so convert after unescaping.
  return to_utf8(unescape(raw(field, repetition, component, subcomponent), *delims_), charset_);
}

int Segment::repetitions(int field) const {
  auto f = raw(field);
  if (f.empty()) return 0;
  if (is_msh_ && field <= 2) return 1;
  int n = 1;
  for (char c : f)
    n += c == delims_->repetition ? 1 : 0;
  return n;
}

Result<Message> Message::parse(std::string text) {
  Message m;
  m.text_ = std::make_unique<std::string>(std::move(text));
  m.delims_ptr_ = std::make_unique<Delimiters>();
  const std::string_view all(*m.text_);
  if (all.size() < 8 || all.substr(0, 3) != "MSH") {
    return fail(parse_error("MSH", 1, 0, "the message does not start with an MSH segment"));
  }
  auto& d = *m.delims_ptr_;
  d.field = all[3];
  // MSH-2: component, repetition, escape, subcomponent (and, from v2.7, truncation).
  const auto enc_end = all.find(d.field, 4);
  const auto enc =
      all.substr(4, enc_end == std::string_view::npos ? std::string_view::npos : enc_end - 4);
  // A delimiter must be a printable ASCII character that is not a letter or digit (it would
  // split values), and none of them may repeat. CR, LF, NUL and MLLP's 0x0B/0x1C never qualify:
  // used as delimiters they would end segments early or put framing bytes into the ACK.
  auto usable = [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u < 0x7F && std::isalnum(u) == 0;
  };
  if (!usable(d.field)) {
    return fail(parse_error("MSH", 1, 1,
                            "MSH-1 field separator must be a printable character that is not a "
                            "letter or digit (byte 0x" +
                                hex_byte(d.field) + " is not)"));
  }
  if (enc.empty()) {
    return fail(parse_error("MSH", 1, 2, "MSH-2 encoding characters are missing"));
  }
  const auto delimiters =
      enc.substr(0, 5);  // component, repetition, escape, subcomponent, truncation
  for (std::size_t i = 0; i < delimiters.size(); ++i) {
    const char c = delimiters[i];
    if (!usable(c)) {
      return fail(parse_error("MSH", 1, 2,
                              "MSH-2 encoding characters must be printable characters that are "
                              "not letters or digits (byte 0x" +
                                  hex_byte(c) + " is not)"));
    }
    if (c == d.field || delimiters.find(c) != i) {
      return fail(parse_error("MSH", 1, 2,
                              "MSH-1 and MSH-2 must name distinct delimiters ('" +
                                  std::string(1, c) + "' is used twice)"));
    }
  }
  if (enc.size() < 4) ++m.deviations_;  // short MSH-2: defaults for what is missing
  if (enc.size() >= 1) d.component = enc[0];
  if (enc.size() >= 2) d.repetition = enc[1];
  if (enc.size() >= 3) d.escape = enc[2];
  if (enc.size() >= 4) d.subcomponent = enc[3];

  {
    // MSH-18 decides how every field's bytes are read, so it is read before the segments.
    const auto first = all.substr(0, all.find_first_of("\r\n"));
    const auto msh18 = piece(first, d.field, 18);
    int repetitions = msh18.empty() ? 0 : 1;
    for (char c : msh18)
      repetitions += c == d.repetition ? 1 : 0;
    m.charset_ = read_charset(piece(msh18, d.repetition, 1), repetitions, all);
  }

  std::size_t pos = 0;
  std::map<std::string_view, int> seen;
  while (pos < all.size()) {
    const auto end = all.find_first_of("\r\n", pos);
    const auto line =
        all.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
    pos = end == std::string_view::npos ? all.size() : end + 1;
    if (line.empty()) continue;  // the LF of a CRLF, or blank lines
    Segment seg;
    seg.text_ = line;
    seg.delims_ = m.delims_ptr_.get();
    seg.charset_ = m.charset_.charset;
    seg.id_ = line.substr(0, line.find(d.field));
    const int sequence = ++seen[seg.id_];
    if (seg.id_.size() != 3 || !std::isupper(static_cast<unsigned char>(seg.id_[0]))) {
      return fail(parse_error(std::string(seg.id_.substr(0, 3)), sequence, 0,
                              "segment " + std::to_string(m.segments_.size() + 1) +
                                  " does not start with a 3-character segment id"));
    }
    seg.is_msh_ = m.segments_.empty();
    if (!seg.is_msh_ && seg.id_ == "MSH") {
      return fail(
          parse_error("MSH", sequence, 0, "a second MSH segment: send batches with BHS/BTS"));
    }
    std::size_t start = 0;
    for (;;) {
      const auto next = line.find(d.field, start);
      seg.fields_.push_back(line.substr(
          start, next == std::string_view::npos ? std::string_view::npos : next - start));
      if (next == std::string_view::npos) break;
      start = next + 1;
    }
    // "MSH|^~\&|A" splits as ["MSH", "^~\&", "A"]: index k is MSH-(k+1) from MSH-2 on.
    m.segments_.push_back(std::move(seg));
  }
  if (m.msh().raw(9).empty()) return fail(parse_error("MSH", 1, 9, "MSH-9 message type is empty"));
  if (m.msh().raw(10).empty())
    return fail(parse_error("MSH", 1, 10, "MSH-10 message control id is empty"));
  return m;
}

const Segment* Message::segment(std::string_view id, int occurrence) const {
  int n = 0;
  for (const auto& s : segments_) {
    if (s.id() == id && ++n == occurrence) return &s;
  }
  return nullptr;
}

std::string Message::get(std::string_view path) const {
  // SEG[occ]-field(rep).component.subcomponent
  auto num = [](std::string_view s, int& out) {
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && p == s.data() + s.size();
  };
  if (path.size() < 5) return {};
  const auto id = path.substr(0, 3);
  std::size_t i = 3;
  int occurrence = 1;
  if (path[i] == '[') {
    const auto close = path.find(']', i);
    if (close == std::string_view::npos || !num(path.substr(i + 1, close - i - 1), occurrence))
      return {};
    i = close + 1;
  }
  if (i >= path.size() || path[i] != '-') return {};
  ++i;
  const auto rest = path.substr(i);
  const auto dot = rest.find('.');
  auto field_part = rest.substr(0, dot);
  int repetition = 1, field = 0, component = 0, subcomponent = 0;
  if (const auto paren = field_part.find('('); paren != std::string_view::npos) {
    const auto close = field_part.find(')', paren);
    if (close == std::string_view::npos ||
        !num(field_part.substr(paren + 1, close - paren - 1), repetition))
      return {};
    field_part = field_part.substr(0, paren);
  }
  if (!num(field_part, field)) return {};
  if (dot != std::string_view::npos) {
    const auto comps = rest.substr(dot + 1);
    const auto dot2 = comps.find('.');
    if (!num(comps.substr(0, dot2), component)) return {};
    if (dot2 != std::string_view::npos && !num(comps.substr(dot2 + 1), subcomponent)) return {};
  }
  const auto* seg = segment(id, occurrence);
  if (seg == nullptr) return {};
  if (component == 0)
    return to_utf8(unescape(seg->raw(field, repetition, 0), *delims_ptr_), charset_.charset);
  return seg->value(field, repetition, component, subcomponent);
}

Location Message::location_of(std::size_t offset) const {
  Location where;
  const char* at = text_->data() + offset;
  std::map<std::string_view, int> seen;
  for (const auto& s : segments_) {
    const int sequence = ++seen[s.id()];
    const char* begin = s.text().data();
    if (at < begin || at >= begin + s.text().size()) continue;
    where.segment = std::string(s.id());
    where.sequence = sequence;
    for (int f = 1; f <= s.field_count(); ++f) {
      const auto v = s.raw(f);
      if (s.is_msh_ && f == 1) continue;
      if (at >= v.data() && at < v.data() + v.size()) {
        where.field = f;
        int component = 1;
        for (const char* c = v.data(); c < at; ++c) {
          if (*c == delims_ptr_->repetition) component = 1;
          if (*c == delims_ptr_->component) ++component;
        }
        where.component = component;
        break;
      }
    }
    break;
  }
  return where;
}

std::string unescape(std::string_view raw, const Delimiters& d, int* deviations) {
  if (raw.find(d.escape) == std::string_view::npos) return std::string(raw);
  std::string out;
  out.reserve(raw.size());
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != d.escape) {
      out += raw[i];
      continue;
    }
    const auto close = raw.find(d.escape, i + 1);
    if (close == std::string_view::npos || close == i + 1) {
      // A lone escape character (e.g. a trailing backslash): kept as sent.
      out += raw[i];
      if (deviations != nullptr) ++*deviations;
      continue;
    }
    const auto seq = raw.substr(i + 1, close - i - 1);
    if (seq == "F") {
      out += d.field;
    } else if (seq == "S") {
      out += d.component;
    } else if (seq == "T") {
      out += d.subcomponent;
    } else if (seq == "R") {
      out += d.repetition;
    } else if (seq == "E") {
      out += d.escape;
    } else if (seq.size() >= 3 && seq[0] == 'X' && seq.size() % 2 == 1) {
      std::string bytes;
      bool ok = true;
      for (std::size_t k = 1; k + 1 < seq.size(); k += 2) {
        const int hi = hex_digit(seq[k]), lo = hex_digit(seq[k + 1]);
        if (hi < 0 || lo < 0) ok = false;
        bytes += static_cast<char>(hi * 16 + lo);
      }
      if (ok) {
        out += bytes;
      } else {
        out.append(raw.substr(i, close - i + 1));
      }
    } else {
      // Formatting (\.br\, \H\, \N\, ...) and unknown escapes are kept as sent.
      out.append(raw.substr(i, close - i + 1));
    }
    i = close;
  }
  return out;
}

std::string escape(std::string_view value, const Delimiters& d) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == d.escape) {
      out += d.escape;
      out += 'E';
      out += d.escape;
    } else if (c == d.field) {
      out += d.escape;
      out += 'F';
      out += d.escape;
    } else if (c == d.component) {
      out += d.escape;
      out += 'S';
      out += d.escape;
    } else if (c == d.subcomponent) {
      out += d.escape;
      out += 'T';
      out += d.escape;
    } else if (c == d.repetition) {
      out += d.escape;
      out += 'R';
      out += d.escape;
    } else if (c == '\r' || c == '\n') {
      out += d.escape;
      out += ".br";
      out += d.escape;
    } else {
      out += c;
    }
  }
  return out;
}

Result<std::vector<std::string_view>> split_batch(std::string_view text) {
  std::vector<std::string_view> messages;
  if (text.substr(0, 3) != "FHS" && text.substr(0, 3) != "BHS") {
    messages.push_back(text);
    return messages;
  }
  // Segment starts: a message runs from its MSH to the next MSH or batch trailer/header.
  std::size_t pos = 0, msg_start = std::string_view::npos;
  int line_no = 0;
  auto close_message = [&](std::size_t end) {
    if (msg_start != std::string_view::npos) {
      messages.push_back(text.substr(msg_start, end - msg_start));
      msg_start = std::string_view::npos;
    }
  };
  while (pos < text.size()) {
    const auto end = text.find_first_of("\r\n", pos);
    const auto stop = end == std::string_view::npos ? text.size() : end;
    const auto id = text.substr(pos, std::min<std::size_t>(3, stop - pos));
    ++line_no;
    if (id == "MSH") {
      close_message(pos);
      msg_start = pos;
    } else if (id == "FHS" || id == "BHS" || id == "BTS" || id == "FTS") {
      close_message(pos);
    }
    pos = stop;
    while (pos < text.size() && (text[pos] == '\r' || text[pos] == '\n'))
      ++pos;
  }
  close_message(text.size());
  if (messages.empty()) {
    return fail(parse_error("BHS", 1, 0, "the batch holds no MSH message"));
  }
  return messages;
}

Error field_error(const char* segment, int sequence, int field, std::string message) {
  Location where;
  where.segment = segment;
  where.sequence = sequence;
  where.field = field;
  return Error::invalid(std::move(where), std::move(message));
}

}  // namespace sdoh::hl7v2
