#include "gateway/identity/networks.hpp"

#include <algorithm>
#include <string>

#include <boost/asio/ip/address.hpp>

namespace sdoh::identity {

bool in_networks(const std::vector<config::IpNetwork>& networks, bool v6,
                 const std::array<std::uint8_t, 16>& bytes) {
  for (const auto& network : networks) {
    if (network.v6 != v6) continue;
    // The first `prefix` bits decide: whole bytes, then the leading bits of the next one.
    const unsigned whole = network.prefix / 8, bits = network.prefix % 8;
    if (!std::equal(bytes.begin(), bytes.begin() + whole, network.bytes.begin())) continue;
    const auto mask = static_cast<std::uint8_t>(0xFF00 >> bits);
    if (bits != 0 && (bytes[whole] & mask) != (network.bytes[whole] & mask)) continue;
    return true;
  }
  return false;
}

bool in_networks(const std::vector<config::IpNetwork>& networks, std::string_view address) {
  std::string host(address);
  if (!host.empty() && host.front() == '[') {
    host = host.substr(1, host.find(']') - 1);
  } else if (std::count(host.begin(), host.end(), ':') == 1) {
    host = host.substr(0, host.find(':'));  // "ip:port"
  }
  boost::system::error_code ec;
  auto ip = boost::asio::ip::make_address(host, ec);
  if (ec) return false;
  if (ip.is_v6() && ip.to_v6().is_v4_mapped())
    ip = boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, ip.to_v6());
  std::array<std::uint8_t, 16> bytes{};
  if (ip.is_v4()) {
    const auto b = ip.to_v4().to_bytes();
    std::copy(b.begin(), b.end(), bytes.begin());
  } else {
    const auto b = ip.to_v6().to_bytes();
    std::copy(b.begin(), b.end(), bytes.begin());
  }
  return in_networks(networks, ip.is_v6(), bytes);
}

}  // namespace sdoh::identity
