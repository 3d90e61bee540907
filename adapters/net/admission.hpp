#pragma once
// Admission: who a freshly accepted connection is from, and whether that peer may open one more.
// Both listeners call it before any TLS handshake or protocol byte. A connection from a trusted
// proxy (a load balancer, http.trusted_proxies / mllp.trusted_proxies) must start with a PROXY v2
// header naming the real client, who then counts against the per-peer cap, appears in logs and
// is handed to the handlers. Included only by server .cpp files.
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include "adapters/net/peer_limits.hpp"
#include "gateway/config/config.hpp"
#include "gateway/metrics/registry.hpp"

namespace sdoh::net {

/// The load balancers whose connections start with a PROXY v2 header (http.trusted_proxies,
/// mllp.trusted_proxies).
class TrustedProxies {
 public:
  TrustedProxies() = default;
  explicit TrustedProxies(std::vector<config::IpNetwork> networks)
      : networks_(std::move(networks)) {}
  /// Whether `address` is inside one of the networks (an IPv4-mapped IPv6 address as its IPv4).
  bool contains(const boost::asio::ip::address& address) const;
  bool empty() const { return networks_.empty(); }

 private:
  std::vector<config::IpNetwork> networks_;
};

/// A flood of refused connections must not become a flood of log lines: at most one line a
/// second for one kind of refusal (the counters count every refusal). Any thread.
class LogThrottle {
 public:
  /// Whether a line may be written now; if so, `suppressed` is how many were not since the last.
  bool allow(std::uint64_t& suppressed);

 private:
  std::atomic<std::int64_t> next_ns_{0};
  std::atomic<std::uint64_t> suppressed_{0};
};

/// One listener's admission rules and what they count. Owned by the listener's state, which
/// outlives every connection; the counters are the listener's.
struct AdmissionPolicy {
  AdmissionPolicy() = default;
  /// A listener's policy: refusals are counted in `rejected` under reason "peer_cap" or
  /// "proxy_header"; log events are named "<log_prefix>.peer_connection_limit" and
  /// "<log_prefix>.proxy_header_invalid".
  AdmissionPolicy(std::vector<config::IpNetwork> trusted, std::size_t max_connections_per_peer,
                  metrics::Family<metrics::Counter>& rejected, std::string prefix);

  TrustedProxies trusted_proxies;
  std::optional<PeerLimits> peers;  // set once at construction (PeerLimits is not movable)
  /// How long a trusted proxy has to send its whole header.
  std::chrono::milliseconds proxy_header_timeout{5'000};
  metrics::Counter* rejected_peer_cap = nullptr;
  metrics::Counter* rejected_proxy_header = nullptr;
  std::string log_prefix;  ///< "http" or "mllp", for log events

  LogThrottle peer_cap_log;
  LogThrottle proxy_header_log;
};

/// An admitted connection.
struct Admitted {
  boost::asio::ip::tcp::endpoint client;  ///< the real client (PROXY header) or the socket's peer
  PeerLimits::Slot slot;  ///< its place in its peer's share, for as long as it lives
};

/// Admits the connection on `stream`: reads the PROXY v2 header when the peer is a trusted
/// proxy (exact-length reads within proxy_header_timeout), then takes a slot of the client's
/// share. Nothing when the header is missing or invalid, or the share is full: the caller closes
/// the connection at once (this counted and logged it). Waits at most proxy_header_timeout;
/// for any other peer it does not wait at all.
boost::asio::awaitable<std::optional<Admitted>> admit(boost::beast::tcp_stream& stream,
                                                      AdmissionPolicy& policy);

/// After a TLS handshake with a verified client certificate (`subject`): the connection moves
/// from its address's share to the certificate's ("cert:<subject>"). False, counted and logged,
/// when the certificate's share is full; the caller closes the connection.
bool admit_certificate(Admitted& admitted, std::string_view subject, AdmissionPolicy& policy);

}  // namespace sdoh::net
