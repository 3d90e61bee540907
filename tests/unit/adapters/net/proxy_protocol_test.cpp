#include "adapters/net/proxy_protocol.hpp"

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace sdoh::net {
namespace {

using ::testing::HasSubstr;

// Headers written out byte by byte from the spec (HAProxy, "The PROXY protocol", 2.2), not
// built by code under test.
const std::string kSignature("\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A", 12);

// PROXY, TCP over IPv4, 12 address bytes: 203.0.113.7:51234 -> 10.0.0.5:443.
const std::string kTcp4 = kSignature + std::string("\x21\x11\x00\x0C", 4) +
                          std::string("\xCB\x00\x71\x07", 4) + std::string("\x0A\x00\x00\x05", 4) +
                          std::string("\xC8\x22", 2) + std::string("\x01\xBB", 2);

// PROXY, TCP over IPv6, 36 address bytes: [2001:db8::7]:4660 -> [2001:db8::1]:8080.
const std::string kTcp6 =
    kSignature + std::string("\x21\x21\x00\x24", 4) +
    std::string("\x20\x01\x0D\xB8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x07", 16) +
    std::string("\x20\x01\x0D\xB8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01", 16) +
    std::string("\x12\x34", 2) + std::string("\x1F\x90", 2);

TEST(ProxyProtocol, Tcp4NamesTheClientAndTheAddressItReached) {
  auto header = parse_proxy_v2(kTcp4);
  ASSERT_TRUE(header) << header.error().message;
  EXPECT_EQ(header->command, ProxyHeader::Command::kProxy);
  ASSERT_TRUE(header->source);
  EXPECT_EQ(header->source->address().to_string(), "203.0.113.7");
  EXPECT_EQ(header->source->port(), 51234);
  ASSERT_TRUE(header->destination);
  EXPECT_EQ(header->destination->address().to_string(), "10.0.0.5");
  EXPECT_EQ(header->destination->port(), 443);
  EXPECT_EQ(header->size, 28u);
}

TEST(ProxyProtocol, Tcp6NamesTheClient) {
  auto header = parse_proxy_v2(kTcp6);
  ASSERT_TRUE(header) << header.error().message;
  ASSERT_TRUE(header->source);
  EXPECT_EQ(header->source->address().to_string(), "2001:db8::7");
  EXPECT_EQ(header->source->port(), 4660);
  EXPECT_EQ(header->destination->address().to_string(), "2001:db8::1");
  EXPECT_EQ(header->destination->port(), 8080);
  EXPECT_EQ(header->size, 52u);
}

TEST(ProxyProtocol, LocalCommandNamesNoClient) {
  // A balancer's own health check: LOCAL, family UNSPEC, no address block.
  const std::string local = kSignature + std::string("\x20\x00\x00\x00", 4);
  auto header = parse_proxy_v2(local);
  ASSERT_TRUE(header) << header.error().message;
  EXPECT_EQ(header->command, ProxyHeader::Command::kLocal);
  EXPECT_FALSE(header->source);
  EXPECT_EQ(header->size, 16u);
}

TEST(ProxyProtocol, LocalCommandIgnoresAnAddressBlock) {
  std::string local = kTcp4;
  local[12] = '\x20';
  auto header = parse_proxy_v2(local);
  ASSERT_TRUE(header) << header.error().message;
  EXPECT_EQ(header->command, ProxyHeader::Command::kLocal);
  EXPECT_FALSE(header->source);
  EXPECT_EQ(header->size, 28u);
}

TEST(ProxyProtocol, TlvsAfterTheAddressesAreSkipped) {
  // Length 12 + 7 + 4: PP2_TYPE_AUTHORITY (0x02) "gw.test", then PP2_TYPE_NOOP (0x04) with 1 byte.
  const std::string with_tlvs = kSignature + std::string("\x21\x11\x00\x17", 4) +
                                kTcp4.substr(16, 12) + std::string("\x02\x00\x07", 3) + "gw.test" +
                                std::string("\x04\x00\x01\x00", 4);
  auto header = parse_proxy_v2(with_tlvs + "GET / HTTP/1.1\r\n");
  ASSERT_TRUE(header) << header.error().message;
  EXPECT_EQ(header->source->address().to_string(), "203.0.113.7");
  EXPECT_EQ(header->size, 16u + 23u);  // what follows the header is not part of it
}

TEST(ProxyProtocol, LengthComesFromTheFixedPart) {
  auto length = proxy_v2_length(kTcp4.substr(0, 16));
  ASSERT_TRUE(length) << length.error().message;
  EXPECT_EQ(*length, 28u);
  auto big = proxy_v2_length(kSignature + std::string("\x21\x11\xFF\xFF", 4));
  ASSERT_TRUE(big);
  EXPECT_EQ(*big, 16u + 65535u);
}

TEST(ProxyProtocol, BadSignatureIsRefused) {
  auto header = parse_proxy_v2("GET / HTTP/1.1\r\nHost: gateway\r\n\r\n");
  ASSERT_FALSE(header);
  EXPECT_THAT(header.error().message, HasSubstr("signature"));
}

TEST(ProxyProtocol, VersionOneTextHeaderIsRefused) {
  auto header = parse_proxy_v2("PROXY TCP4 203.0.113.7 10.0.0.5 51234 443\r\n");
  ASSERT_FALSE(header);
  EXPECT_THAT(header.error().message, HasSubstr("signature"));
}

TEST(ProxyProtocol, BadVersionIsRefused) {
  std::string v1 = kTcp4;
  v1[12] = '\x11';  // version 1 in the binary layout
  auto header = parse_proxy_v2(v1);
  ASSERT_FALSE(header);
  EXPECT_THAT(header.error().message, HasSubstr("version 1"));
}

TEST(ProxyProtocol, UnknownCommandIsRefused) {
  std::string command = kTcp4;
  command[12] = '\x22';
  auto header = parse_proxy_v2(command);
  ASSERT_FALSE(header);
  EXPECT_THAT(header.error().message, HasSubstr("command 2"));
}

TEST(ProxyProtocol, TruncatedFixedPartIsRefused) {
  auto header = parse_proxy_v2(kTcp4.substr(0, 15));
  ASSERT_FALSE(header);
  EXPECT_THAT(header.error().message, HasSubstr("truncated"));
}

TEST(ProxyProtocol, TruncatedAddressesAreRefused) {
  auto header = parse_proxy_v2(kTcp4.substr(0, 27));
  ASSERT_FALSE(header);
  EXPECT_THAT(header.error().message, HasSubstr("27 of 28"));
}

TEST(ProxyProtocol, LengthShorterThanTheFamilysAddressBlockIsRefused) {
  // TCP over IPv6 that claims only 12 address bytes.
  const std::string short_block =
      kSignature + std::string("\x21\x21\x00\x0C", 4) + kTcp4.substr(16, 12);
  auto header = parse_proxy_v2(short_block);
  ASSERT_FALSE(header);
  EXPECT_THAT(header.error().message, HasSubstr("shorter than the family's 36"));
}

TEST(ProxyProtocol, DatagramTransportIsRefused) {
  std::string udp = kTcp4;
  udp[13] = '\x12';
  auto header = parse_proxy_v2(udp);
  ASSERT_FALSE(header);
  EXPECT_THAT(header.error().message, HasSubstr("transport 2"));
}

TEST(ProxyProtocol, UnknownFamilyIsRefused) {
  std::string family = kTcp4;
  family[13] = '\x41';
  auto header = parse_proxy_v2(family);
  ASSERT_FALSE(header);
  EXPECT_THAT(header.error().message, HasSubstr("family 4"));
}

TEST(ProxyProtocol, UnixFamilyNamesNoIpClient) {
  std::string unix_header =
      kSignature + std::string("\x21\x31\x00\xD8", 4) + std::string(216, '\0');
  auto header = parse_proxy_v2(unix_header);
  ASSERT_TRUE(header) << header.error().message;
  EXPECT_EQ(header->command, ProxyHeader::Command::kProxy);
  EXPECT_FALSE(header->source);
  EXPECT_EQ(header->size, 232u);
}

}  // namespace
}  // namespace sdoh::net
