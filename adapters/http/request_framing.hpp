#pragma once
// How far a request may go before the server refuses it: the rules that delimit its body
// (RFC 9112 6: Transfer-Encoding and Content-Length), checked as soon as its header is parsed
// and before any body byte is, and the number of bytes one request may take on the wire. Pure:
// the listener (server.cpp) hands in header values and limits and maps the errors to answers.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "gateway/core/result.hpp"

namespace sdoh::http {

/// The body's framing is one the server reads safely, or why not. `transfer_encodings` holds
/// every Transfer-Encoding field value in order; `has_content_length` whether a Content-Length
/// field came too; `version` is 10 or 11. Errors: kInvalid (answer 400 and close: a message whose
/// length two parties could read differently, the root of request smuggling) or kUnsupported
/// (501: a transfer coding this server does not implement). Accepted: no Transfer-Encoding, or
/// exactly one "chunked" (any case) in HTTP/1.1 without Content-Length.
Result<void> check_request_framing(const std::vector<std::string_view>& transfer_encodings,
                                   bool has_content_length, unsigned version);

/// Chunk framing allowed on top of a body: its size lines and CRLFs, for chunks of a few
/// bytes (a body of size B may bring B + kChunkFramingAllowance bytes of framing).
inline constexpr std::uint64_t kChunkFramingAllowance = 64 * 1024;

/// The most bytes one request may take on the wire before it is refused (413):
/// 2 × max_header_bytes (the header section, and the trailer section of a chunked body)
/// + 2 × max_body_bytes (the body and its chunk framing) + kChunkFramingAllowance.
/// With the defaults (16 KiB, 4 MiB): 8,486,912 bytes.
std::uint64_t request_byte_budget(std::size_t max_header_bytes, std::size_t max_body_bytes);

}  // namespace sdoh::http
