#include "adapters/net/admission.hpp"

#include <chrono>
#include <deque>
#include <optional>
#include <string>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <gtest/gtest.h>

namespace sdoh::net {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

std::vector<config::IpNetwork> networks(const std::string& list) {
  auto cfg = config::parse_config("http: { trusted_proxies: " + list + " }");
  EXPECT_TRUE(cfg) << cfg.error().to_string();
  return cfg ? cfg->http.trusted_proxies : std::vector<config::IpNetwork>{};
}

TEST(TrustedProxies, MatchesAddressesInsideTheNetworks) {
  const TrustedProxies trusted(networks(R"(["10.0.0.0/8", "192.168.1.7", "2001:db8::/32"])"));
  EXPECT_TRUE(trusted.contains(asio::ip::make_address("10.200.3.4")));
  EXPECT_TRUE(trusted.contains(asio::ip::make_address("192.168.1.7")));
  EXPECT_TRUE(trusted.contains(asio::ip::make_address("2001:db8:ffff::1")));
  EXPECT_FALSE(trusted.contains(asio::ip::make_address("11.0.0.1")));
  EXPECT_FALSE(trusted.contains(asio::ip::make_address("192.168.1.8")));
  EXPECT_FALSE(trusted.contains(asio::ip::make_address("2001:db9::1")));
}

TEST(TrustedProxies, PrefixesThatSplitAByteCompareOnlyTheirBits) {
  const TrustedProxies trusted(networks(R"(["172.16.0.0/12"])"));
  EXPECT_TRUE(trusted.contains(asio::ip::make_address("172.31.255.255")));
  EXPECT_FALSE(trusted.contains(asio::ip::make_address("172.32.0.0")));
  EXPECT_FALSE(trusted.contains(asio::ip::make_address("172.15.255.255")));
}

TEST(TrustedProxies, AnIpv4MappedAddressMatchesItsIpv4Network) {
  const TrustedProxies trusted(networks(R"(["127.0.0.3"])"));
  EXPECT_TRUE(trusted.contains(asio::ip::make_address("::ffff:127.0.0.3")));
}

TEST(TrustedProxies, NoneByDefault) {
  const TrustedProxies trusted;
  EXPECT_TRUE(trusted.empty());
  EXPECT_FALSE(trusted.contains(asio::ip::make_address("127.0.0.1")));
}

TEST(LogThrottle, OneLineAtOnceForABurstOfRefusals) {
  LogThrottle throttle;
  std::uint64_t suppressed = 99;
  EXPECT_TRUE(throttle.allow(suppressed));
  EXPECT_EQ(suppressed, 0u);
  for (int i = 0; i < 1000; ++i)
    EXPECT_FALSE(throttle.allow(suppressed));  // a second has not passed
}

// A listener on 127.0.0.1 and one admission per test, run on a real loopback connection.
class AdmissionTest : public ::testing::Test {
 protected:
  AdmissionTest() : acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    policy_.peers.emplace(1);
    policy_.rejected_peer_cap = &peer_cap_;
    policy_.rejected_proxy_header = &proxy_header_;
    policy_.proxy_header_timeout = std::chrono::milliseconds(300);
    policy_.log_prefix = "test";
  }

  // Connects, writes `bytes` from the client, admits the server side. The admission is kept for
  // the test's length, so that its slot stays taken; null when refused.
  Admitted* admit_with(const std::string& bytes) {
    tcp::socket client(io_);
    client.connect(acceptor_.local_endpoint());
    if (!bytes.empty()) asio::write(client, asio::buffer(bytes));
    server_.emplace(acceptor_.accept());
    std::optional<Admitted> out;
    bool done = false;
    asio::co_spawn(
        io_,
        [&]() -> asio::awaitable<void> {
          out = co_await admit(*server_, policy_);
          done = true;
        },
        asio::detached);
    io_.restart();
    io_.run_for(std::chrono::seconds(5));
    EXPECT_TRUE(done);
    clients_.push_back(std::move(client));
    if (!out) return nullptr;
    admitted_.push_back(std::move(*out));
    return &admitted_.back();
  }

  // What the server side reads next: bytes after the PROXY header must still be there.
  std::string next_bytes(std::size_t n) {
    std::string out(n, '\0');
    asio::read(server_->socket(), asio::buffer(out));
    return out;
  }

  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::optional<boost::beast::tcp_stream> server_;
  std::vector<tcp::socket> clients_;
  metrics::Counter peer_cap_, proxy_header_;
  AdmissionPolicy policy_;
  std::deque<Admitted> admitted_;  // after policy_: its slots go back to policy_.peers
};

const std::string kProxyFrom203 =
    std::string("\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A\x21\x11\x00\x0C", 16) +
    std::string("\xCB\x00\x71\x07\x7F\x00\x00\x01\xC8\x22\x01\xBB", 12);

TEST_F(AdmissionTest, ADirectClientIsItsOwnPeer) {
  auto admitted = admit_with("GET / HTTP/1.1\r\n");
  ASSERT_TRUE(admitted);
  EXPECT_EQ(admitted->client.address().to_string(), "127.0.0.1");
  EXPECT_EQ(admitted->slot.key(), "127.0.0.1");
  EXPECT_EQ(next_bytes(16), "GET / HTTP/1.1\r\n");  // a direct client's bytes are not read
}

TEST_F(AdmissionTest, ADirectClientOverItsShareIsRefusedAndCounted) {
  ASSERT_TRUE(admit_with(""));
  EXPECT_FALSE(admit_with(""));
  EXPECT_EQ(peer_cap_.value(), 1u);
  EXPECT_EQ(proxy_header_.value(), 0u);
}

TEST_F(AdmissionTest, ATrustedProxyNamesTheClientAndLeavesTheRequestUnread) {
  policy_.trusted_proxies = TrustedProxies(networks(R"(["127.0.0.1/32"])"));
  auto admitted = admit_with(kProxyFrom203 + "GET / HTTP/1.1\r\n");
  ASSERT_TRUE(admitted);
  EXPECT_EQ(admitted->client.address().to_string(), "203.0.113.7");
  EXPECT_EQ(admitted->client.port(), 51234);
  EXPECT_EQ(admitted->slot.key(), "203.0.113.7");
  EXPECT_EQ(next_bytes(16), "GET / HTTP/1.1\r\n");
}

TEST_F(AdmissionTest, ClientsBehindOneProxyHaveSharesOfTheirOwn) {
  policy_.trusted_proxies = TrustedProxies(networks(R"(["127.0.0.1/32"])"));
  std::string from_204 = kProxyFrom203;
  from_204[16] = '\xCC';  // 204.0.113.7
  ASSERT_TRUE(admit_with(kProxyFrom203));
  ASSERT_TRUE(admit_with(from_204));
  EXPECT_FALSE(admit_with(kProxyFrom203));
  EXPECT_EQ(peer_cap_.value(), 1u);
}

TEST_F(AdmissionTest, ALocalHeaderKeepsTheProxysAddress) {
  policy_.trusted_proxies = TrustedProxies(networks(R"(["127.0.0.1/32"])"));
  const std::string local("\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A\x20\x00\x00\x00", 16);
  auto admitted = admit_with(local);
  ASSERT_TRUE(admitted);
  EXPECT_EQ(admitted->client.address().to_string(), "127.0.0.1");
}

TEST_F(AdmissionTest, ATrustedProxyWithoutAHeaderIsRefused) {
  policy_.trusted_proxies = TrustedProxies(networks(R"(["127.0.0.1/32"])"));
  EXPECT_FALSE(admit_with("GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n"));
  EXPECT_EQ(proxy_header_.value(), 1u);
  EXPECT_EQ(policy_.peers->peers(), 0u);  // no slot taken
}

TEST_F(AdmissionTest, ASilentTrustedProxyIsRefusedAtItsDeadline) {
  policy_.trusted_proxies = TrustedProxies(networks(R"(["127.0.0.1/32"])"));
  const auto started = std::chrono::steady_clock::now();
  EXPECT_FALSE(admit_with(kProxyFrom203.substr(0, 20)));  // a header that stops short
  const auto waited = std::chrono::steady_clock::now() - started;
  EXPECT_GE(waited, std::chrono::milliseconds(300));
  EXPECT_LT(waited, std::chrono::seconds(3));
  EXPECT_EQ(proxy_header_.value(), 1u);
}

TEST_F(AdmissionTest, AHeaderFromAnUntrustedPeerIsNotInterpreted) {
  auto admitted = admit_with(kProxyFrom203);
  ASSERT_TRUE(admitted);
  EXPECT_EQ(admitted->client.address().to_string(), "127.0.0.1");
  EXPECT_EQ(next_bytes(28), kProxyFrom203);  // left for the protocol, which refuses it
}

TEST_F(AdmissionTest, AVerifiedCertificateTakesTheConnectionOffItsAddressShare) {
  auto admitted = admit_with("");
  ASSERT_TRUE(admitted);
  ASSERT_TRUE(admit_certificate(*admitted, "/O=Peds Clinic A/CN=ehr", policy_));
  EXPECT_EQ(admitted->slot.key(), "cert:/O=Peds Clinic A/CN=ehr");
  EXPECT_TRUE(admit_with(""));  // the address has room again
}

TEST_F(AdmissionTest, ACertificateOverItsShareIsRefusedAndCounted) {
  auto first = admit_with("");
  ASSERT_TRUE(first);
  ASSERT_TRUE(admit_certificate(*first, "/CN=ehr", policy_));
  auto second = admit_with("");
  ASSERT_TRUE(second);
  EXPECT_FALSE(admit_certificate(*second, "/CN=ehr", policy_));
  EXPECT_EQ(peer_cap_.value(), 1u);
}

TEST_F(AdmissionTest, NoCertificateKeepsTheAddressShare) {
  auto admitted = admit_with("");
  ASSERT_TRUE(admitted);
  EXPECT_TRUE(admit_certificate(*admitted, "", policy_));
  EXPECT_EQ(admitted->slot.key(), "127.0.0.1");
}

}  // namespace
}  // namespace sdoh::net
