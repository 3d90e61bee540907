#include "adapters/net/proxy_protocol.hpp"

#include <array>
#include <cstdint>
#include <cstring>

namespace sdoh::net {

namespace {

namespace ip = boost::asio::ip;

constexpr std::string_view kSignature("\r\n\r\n\0\r\nQUIT\n", 12);

// PROXY protocol 2.2: the address block's size for each address family.
constexpr std::size_t kInetBlock = 12;   // 2 × 4-byte address, 2 × 2-byte port
constexpr std::size_t kInet6Block = 36;  // 2 × 16-byte address, 2 × 2-byte port
constexpr std::size_t kUnixBlock = 216;  // 2 × 108-byte path

std::uint8_t byte_at(std::string_view bytes, std::size_t i) {
  return static_cast<std::uint8_t>(bytes[i]);
}

std::uint16_t be16(std::string_view bytes, std::size_t at) {
  return static_cast<std::uint16_t>((byte_at(bytes, at) << 8) | byte_at(bytes, at + 1));
}

template <std::size_t N>
std::array<unsigned char, N> address_bytes(std::string_view bytes, std::size_t at) {
  std::array<unsigned char, N> out{};
  std::memcpy(out.data(), bytes.data() + at, N);
  return out;
}

}  // namespace

Result<std::size_t> proxy_v2_length(std::string_view fixed) {
  if (fixed.size() < kProxyV2FixedBytes) {
    return fail(Error::invalid("PROXY v2 header truncated: " + std::to_string(fixed.size()) +
                               " of " + std::to_string(kProxyV2FixedBytes) + " fixed bytes"));
  }
  if (fixed.substr(0, kSignature.size()) != kSignature) {
    return fail(Error::invalid("not a PROXY v2 header: the signature does not match"));
  }
  const auto version_command = byte_at(fixed, 12);
  if ((version_command >> 4) != 2) {
    return fail(Error::invalid("PROXY protocol version " + std::to_string(version_command >> 4) +
                               " is not 2"));
  }
  if ((version_command & 0x0F) > 1) {
    return fail(Error::invalid("PROXY v2 command " + std::to_string(version_command & 0x0F) +
                               " is neither LOCAL (0) nor PROXY (1)"));
  }
  return kProxyV2FixedBytes + be16(fixed, 14);
}

Result<ProxyHeader> parse_proxy_v2(std::string_view bytes) {
  auto total = proxy_v2_length(bytes);
  if (!total) return fail(total.error());
  if (bytes.size() < *total) {
    return fail(Error::invalid("PROXY v2 header truncated: " + std::to_string(bytes.size()) +
                               " of " + std::to_string(*total) + " bytes"));
  }
  ProxyHeader header;
  header.size = *total;
  header.command = (byte_at(bytes, 12) & 0x0F) == 1 ? ProxyHeader::Command::kProxy
                                                    : ProxyHeader::Command::kLocal;
  const auto family = byte_at(bytes, 13) >> 4;
  const auto transport = byte_at(bytes, 13) & 0x0F;
  const auto length = *total - kProxyV2FixedBytes;
  if (family > 3) {
    return fail(
        Error::invalid("PROXY v2 address family " + std::to_string(family) + " is unknown"));
  }
  // 0 UNSPEC, 1 STREAM, 2 DGRAM: only stream connections are forwarded to these listeners.
  if (transport > 1) {
    return fail(Error::invalid("PROXY v2 transport " + std::to_string(transport) +
                               " is not a stream (1) or unspecified (0)"));
  }
  const std::size_t block = family == 1   ? kInetBlock
                            : family == 2 ? kInet6Block
                            : family == 3 ? kUnixBlock
                                          : 0;
  if (length < block) {
    return fail(Error::invalid("PROXY v2 address block of " + std::to_string(length) +
                               " bytes is shorter than the family's " + std::to_string(block)));
  }
  // LOCAL: the receiver must ignore any addresses (2.2); TLVs after the block are skipped.
  if (header.command == ProxyHeader::Command::kLocal || transport != 1) return header;
  constexpr std::size_t at = kProxyV2FixedBytes;
  if (family == 1) {
    const ip::address_v4 src(address_bytes<4>(bytes, at));
    const ip::address_v4 dst(address_bytes<4>(bytes, at + 4));
    header.source = ip::tcp::endpoint(src, be16(bytes, at + 8));
    header.destination = ip::tcp::endpoint(dst, be16(bytes, at + 10));
  } else if (family == 2) {
    const ip::address_v6 src(address_bytes<16>(bytes, at));
    const ip::address_v6 dst(address_bytes<16>(bytes, at + 16));
    header.source = ip::tcp::endpoint(src, be16(bytes, at + 32));
    header.destination = ip::tcp::endpoint(dst, be16(bytes, at + 34));
  }
  return header;
}

}  // namespace sdoh::net
