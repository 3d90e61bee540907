#include "adapters/net/admission.hpp"

#include <algorithm>
#include <array>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "adapters/net/acceptor.hpp"
#include "adapters/net/proxy_protocol.hpp"
#include "gateway/identity/networks.hpp"
#include "gateway/log/log.hpp"
namespace sdoh::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
using asio::ip::tcp;

namespace {

constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);

asio::ip::address unmapped(const asio::ip::address& address) {
  if (address.is_v6() && address.to_v6().is_v4_mapped())
    return asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6());
  return address;
}

// Reads exactly one PROXY v2 header: its fixed part, then as many bytes as its length says, so
// not one byte of the protocol after it (a TLS ClientHello, a request) is taken from the stream.
asio::awaitable<Result<ProxyHeader>> read_proxy_header(beast::tcp_stream& stream,
                                                       std::chrono::milliseconds timeout) {
  std::string bytes(kProxyV2FixedBytes, '\0');
  stream.expires_after(timeout);  // one deadline for the whole header
  auto [ec, n] = co_await asio::async_read(stream, asio::buffer(bytes), kUseTuple);
  if (!ec) {
    auto total = proxy_v2_length(bytes);
    if (!total) co_return fail(total.error());
    bytes.resize(*total);
    auto [rest_ec, rest] = co_await asio::async_read(
        stream, asio::buffer(bytes.data() + kProxyV2FixedBytes, *total - kProxyV2FixedBytes),
        kUseTuple);
    ec = rest_ec;
  }
  if (ec == beast::error::timeout) {
    co_return fail(
        Error::invalid("no PROXY v2 header within " + std::to_string(timeout.count()) + "ms"));
  }
  if (ec) co_return fail(Error::invalid("connection ended before its PROXY v2 header"));
  co_return parse_proxy_v2(bytes);
}

}  // namespace

bool TrustedProxies::contains(const asio::ip::address& address) const {
  const auto a = unmapped(address);
  std::array<std::uint8_t, 16> bytes{};
  if (a.is_v4()) {
    const auto b = a.to_v4().to_bytes();
    std::copy(b.begin(), b.end(), bytes.begin());
  } else {
    const auto b = a.to_v6().to_bytes();
    std::copy(b.begin(), b.end(), bytes.begin());
  }
  return identity::in_networks(networks_, a.is_v6(), bytes);
}

AdmissionPolicy::AdmissionPolicy(std::vector<config::IpNetwork> trusted,
                                 std::size_t max_connections_per_peer,
                                 metrics::Family<metrics::Counter>& rejected, std::string prefix)
    : trusted_proxies(std::move(trusted)),
      rejected_peer_cap(&rejected.with({"peer_cap"})),
      rejected_proxy_header(&rejected.with({"proxy_header"})),
      log_prefix(std::move(prefix)) {
  peers.emplace(max_connections_per_peer);
}

bool LogThrottle::allow(std::uint64_t& suppressed) {
  const auto now = std::chrono::steady_clock::now().time_since_epoch();
  const auto now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now).count();
  auto next = next_ns_.load(std::memory_order_relaxed);
  if (now_ns < next ||
      !next_ns_.compare_exchange_strong(next, now_ns + 1'000'000'000, std::memory_order_relaxed)) {
    suppressed_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  suppressed = suppressed_.exchange(0, std::memory_order_relaxed);
  return true;
}

asio::awaitable<std::optional<Admitted>> admit(beast::tcp_stream& stream, AdmissionPolicy& policy) {
  boost::system::error_code ec;
  const auto remote = stream.socket().remote_endpoint(ec);
  if (ec) co_return std::nullopt;  // gone already
  tcp::endpoint client = remote;
  if (policy.trusted_proxies.contains(remote.address())) {
    auto header = co_await read_proxy_header(stream, policy.proxy_header_timeout);
    if (!header) {
      policy.rejected_proxy_header->inc();
      if (std::uint64_t suppressed = 0; policy.proxy_header_log.allow(suppressed)) {
        log::warn(policy.log_prefix + ".proxy_header_invalid", {{"proxy", endpoint_string(remote)},
                                                                {"reason", header.error().message},
                                                                {"suppressed", suppressed}});
      }
      co_return std::nullopt;
    }
    // LOCAL (the balancer's own health check) and address families without an IP client keep
    // the proxy's address.
    if (header->source) client = *header->source;
  }
  client.address(unmapped(client.address()));
  auto slot = policy.peers->try_acquire(peer_key(client.address()));
  if (!slot) {
    policy.rejected_peer_cap->inc();
    if (std::uint64_t suppressed = 0; policy.peer_cap_log.allow(suppressed)) {
      log::warn(policy.log_prefix + ".peer_connection_limit", {{"peer", peer_key(client.address())},
                                                               {"limit", policy.peers->per_peer()},
                                                               {"suppressed", suppressed}});
    }
    co_return std::nullopt;
  }
  co_return Admitted{client, std::move(*slot)};
}

bool admit_certificate(Admitted& admitted, std::string_view subject, AdmissionPolicy& policy) {
  if (subject.empty()) return true;  // no certificate: the address's share stands
  if (policy.peers->move(admitted.slot, certificate_peer_key(subject))) return true;
  policy.rejected_peer_cap->inc();
  if (std::uint64_t suppressed = 0; policy.peer_cap_log.allow(suppressed)) {
    log::warn(policy.log_prefix + ".peer_connection_limit",
              {{"peer", certificate_peer_key(subject)},
               {"limit", policy.peers->per_peer()},
               {"suppressed", suppressed}});
  }
  return false;
}

}  // namespace sdoh::net
