#include "adapters/net/peer_limits.hpp"

#include <vector>

#include <gtest/gtest.h>

namespace sdoh::net {
namespace {

namespace ip = boost::asio::ip;

TEST(PeerLimits, APeerGetsItsShareAndNoMore) {
  PeerLimits limits(2);
  auto first = limits.try_acquire("10.0.0.7");
  auto second = limits.try_acquire("10.0.0.7");
  ASSERT_TRUE(first);
  ASSERT_TRUE(second);
  EXPECT_FALSE(limits.try_acquire("10.0.0.7"));
  EXPECT_EQ(limits.count("10.0.0.7"), 2u);
}

TEST(PeerLimits, AFullPeerDoesNotStopAnother) {
  PeerLimits limits(1);
  auto greedy = limits.try_acquire("10.0.0.7");
  ASSERT_TRUE(greedy);
  EXPECT_FALSE(limits.try_acquire("10.0.0.7"));
  auto other = limits.try_acquire("10.0.0.8");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->key(), "10.0.0.8");
}

TEST(PeerLimits, AClosedConnectionGivesItsSlotBack) {
  PeerLimits limits(1);
  {
    auto slot = limits.try_acquire("10.0.0.7");
    ASSERT_TRUE(slot);
    EXPECT_FALSE(limits.try_acquire("10.0.0.7"));
  }
  EXPECT_EQ(limits.count("10.0.0.7"), 0u);
  EXPECT_TRUE(limits.try_acquire("10.0.0.7"));
}

TEST(PeerLimits, PeersWithoutConnectionsAreForgotten) {
  PeerLimits limits(4);
  {
    std::vector<PeerLimits::Slot> slots;
    for (int i = 0; i < 100; ++i)
      slots.push_back(*limits.try_acquire("10.0.1." + std::to_string(i)));
    EXPECT_EQ(limits.peers(), 100u);
  }
  EXPECT_EQ(limits.peers(), 0u);
}

TEST(PeerLimits, AMovedSlotIsReleasedOnce) {
  PeerLimits limits(2);
  auto slot = limits.try_acquire("10.0.0.7");
  ASSERT_TRUE(slot);
  {
    PeerLimits::Slot moved(std::move(*slot));
    EXPECT_EQ(limits.count("10.0.0.7"), 1u);
  }
  EXPECT_EQ(limits.count("10.0.0.7"), 0u);
  slot.reset();  // the moved-from slot holds nothing
  EXPECT_EQ(limits.count("10.0.0.7"), 0u);
}

TEST(PeerLimits, ACertificateMovesTheConnectionToItsOwnShare) {
  PeerLimits limits(1);
  auto slot = limits.try_acquire("10.0.0.7");
  ASSERT_TRUE(slot);
  ASSERT_TRUE(limits.move(*slot, "cert:/CN=clinic-a"));
  EXPECT_EQ(slot->key(), "cert:/CN=clinic-a");
  EXPECT_EQ(limits.count("10.0.0.7"), 0u);  // the address is free for another clinic behind it
  EXPECT_EQ(limits.count("cert:/CN=clinic-a"), 1u);
  EXPECT_TRUE(limits.try_acquire("10.0.0.7"));
}

TEST(PeerLimits, AMoveToAFullShareFailsAndKeepsTheSlot) {
  PeerLimits limits(1);
  auto holder = limits.try_acquire("cert:/CN=clinic-a");
  auto slot = limits.try_acquire("10.0.0.7");
  ASSERT_TRUE(holder);
  ASSERT_TRUE(slot);
  EXPECT_FALSE(limits.move(*slot, "cert:/CN=clinic-a"));
  EXPECT_EQ(slot->key(), "10.0.0.7");
  EXPECT_EQ(limits.count("10.0.0.7"), 1u);
  EXPECT_EQ(limits.count("cert:/CN=clinic-a"), 1u);
}

TEST(PeerLimits, AMoveToItsOwnKeySucceedsWithoutASecondSlot) {
  PeerLimits limits(1);
  auto slot = limits.try_acquire("10.0.0.7");
  ASSERT_TRUE(slot);
  EXPECT_TRUE(limits.move(*slot, "10.0.0.7"));
  EXPECT_EQ(limits.count("10.0.0.7"), 1u);
}

TEST(PeerKey, IsTheAddressWithoutAPort) {
  EXPECT_EQ(peer_key(ip::make_address("203.0.113.7")), "203.0.113.7");
  EXPECT_EQ(peer_key(ip::make_address("2001:db8::7")), "2001:db8::7");
}

TEST(PeerKey, AnIpv4ClientSeenThroughAnIpv6ListenerIsTheSamePeer) {
  EXPECT_EQ(peer_key(ip::make_address("::ffff:203.0.113.7")), "203.0.113.7");
}

TEST(PeerKey, ACertificateKeyNamesItsSubject) {
  EXPECT_EQ(certificate_peer_key("/O=Peds Clinic A/CN=ehr"), "cert:/O=Peds Clinic A/CN=ehr");
}

}  // namespace
}  // namespace sdoh::net
