#pragma once
// The PROXY protocol, version 2 (HAProxy, "The PROXY protocol", 2.2): the binary header a load
// balancer sends first on a connection it forwards, naming the client it accepted. Pure: bytes
// in, a header or the reason it is not one out; no sockets. Only connections from trusted
// proxies are read with it (adapters/net/admission.hpp); from anyone else these bytes are not
// interpreted.
//
// Layout: a 12-byte signature, a version/command byte (0x21 PROXY, 0x20 LOCAL), a family/
// transport byte, a 2-byte big-endian length of the rest, then the addresses (IPv4: 12 bytes,
// IPv6: 36 bytes, UNIX: 216 bytes) and optional TLVs, which are skipped.
#include <cstddef>
#include <optional>
#include <string_view>

#include <boost/asio/ip/tcp.hpp>

#include "gateway/core/result.hpp"

namespace sdoh::net {

/// Signature, version/command, family/transport and length: what a reader takes first to learn
/// how many bytes follow.
inline constexpr std::size_t kProxyV2FixedBytes = 16;

struct ProxyHeader {
  enum class Command {
    kLocal,  ///< the proxy's own connection (a health check): its address stands
    kProxy,  ///< relayed on behalf of the client named in `source`
  };
  Command command = Command::kLocal;
  /// The client the proxy accepted, for PROXY over TCP/IPv4 or TCP/IPv6. Empty for LOCAL and
  /// for address families that name no IP client (UNSPEC, UNIX): the spec says to keep the
  /// connection's own addresses then.
  std::optional<boost::asio::ip::tcp::endpoint> source;
  std::optional<boost::asio::ip::tcp::endpoint> destination;
  std::size_t size = 0;  ///< bytes the header took, TLVs included
};

/// The whole header's length in bytes (kProxyV2FixedBytes plus its length field), from its first
/// kProxyV2FixedBytes bytes; an error when they are not the start of a version 2 header.
Result<std::size_t> proxy_v2_length(std::string_view fixed);

/// Parses the header at the start of `bytes`; bytes after it are not looked at. An error when
/// the signature, version, command, family or transport is wrong, or `bytes` ends before the
/// header does.
Result<ProxyHeader> parse_proxy_v2(std::string_view bytes);

}  // namespace sdoh::net
