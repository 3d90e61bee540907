#include "adapters/http/request_framing.hpp"

#include <string>

#include "gateway/core/text.hpp"

namespace sdoh::http {

namespace {

// RFC 9110 5.6.2: token = 1*tchar.
bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (const char c : s) {
    const bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (!alnum && std::string_view("!#$%&'*+-.^_`|~").find(c) == std::string_view::npos)
      return false;
  }
  return true;
}

// A coding named in an answer: the sender's own token, cut short so the answer stays small.
std::string shown(const std::string& coding) {
  return coding.size() <= 40 ? coding : coding.substr(0, 40) + "...";
}

}  // namespace

Result<void> check_request_framing(const std::vector<std::string_view>& transfer_encodings,
                                   bool has_content_length, unsigned version) {
  if (transfer_encodings.empty()) return {};
  // RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 means the framing is faulty.
  if (version < 11) {
    return fail(Error::invalid("Transfer-Encoding is not allowed in an HTTP/1.0 request"));
  }
  // RFC 9112 6.1 and 6.3 (3): with both, the two could be read as different lengths by two
  // parties (request smuggling); refused rather than guessed.
  if (has_content_length) {
    return fail(
        Error::invalid("Transfer-Encoding and Content-Length together: the body's length is "
                       "ambiguous"));
  }
  std::vector<std::string> codings;
  for (const auto value : transfer_encodings) {
    std::size_t start = 0;
    for (;;) {
      const auto comma = value.find(',', start);
      const auto element =
          trim_blanks(value.substr(start, comma == std::string_view::npos ? comma : comma - start));
      if (!is_token(element)) {
        return fail(
            Error::invalid("Transfer-Encoding is not a comma-separated list of transfer codings"));
      }
      codings.push_back(ascii_lower(element));
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
  }
  std::size_t chunked = 0;
  for (const auto& coding : codings)
    chunked += coding == "chunked" ? 1 : 0;
  // RFC 9112 6.1: chunked at most once; 6.3 (4): if chunked is not the final coding, the length
  // cannot be determined, so 400 and close.
  if (chunked > 1) return fail(Error::invalid("chunked is applied more than once"));
  if (codings.back() != "chunked") {
    return fail(Error::invalid("the final transfer coding is \"" + shown(codings.back()) +
                               "\", not chunked: the body's length cannot be determined"));
  }
  // RFC 9112 6.1: a transfer coding the server does not understand is answered 501.
  if (codings.size() > 1) {
    return fail(Error::unsupported("transfer coding \"" + shown(codings.front()) +
                                   "\" is not supported; send the body with chunked alone"));
  }
  return {};
}

std::uint64_t request_byte_budget(std::size_t max_header_bytes, std::size_t max_body_bytes) {
  return 2 * static_cast<std::uint64_t>(max_header_bytes) +
         2 * static_cast<std::uint64_t>(max_body_bytes) + kChunkFramingAllowance;
}

}  // namespace sdoh::http
