#pragma once
// Whether an address is inside configured networks (http/mllp.trusted_proxies,
// parties.<id>.source_addresses): one rule for every list of networks.
#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include "gateway/config/config.hpp"

namespace sdoh::identity {

/// `bytes` holds an IPv4 address in its first 4 bytes (v6 false) or an IPv6 address.
bool in_networks(const std::vector<config::IpNetwork>& networks, bool v6,
                 const std::array<std::uint8_t, 16>& bytes);

/// `address` as a peer is written: "10.1.2.3", "10.1.2.3:5123", "[2001:db8::1]:5123" or
/// "2001:db8::1"; an IPv4-mapped IPv6 address counts as its IPv4 address. False when it is not
/// an address.
bool in_networks(const std::vector<config::IpNetwork>& networks, std::string_view address);

}  // namespace sdoh::identity
