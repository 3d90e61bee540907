// gateway/identity/parties.cpp and networks.cpp: who an MLLP connection is.
#include "gateway/identity/parties.hpp"

#include <gtest/gtest.h>

#include "gateway/config/config.hpp"
#include "gateway/identity/networks.hpp"

namespace sdoh::identity {
namespace {

config::IpNetwork network(bool v6, std::array<std::uint8_t, 16> bytes, unsigned prefix) {
  config::IpNetwork n;
  n.v6 = v6;
  n.bytes = bytes;
  n.prefix = prefix;
  return n;
}

std::vector<config::PartyConfig> shipped() {
  config::PartyConfig ehv;
  ehv.id = "ehv-durham";
  ehv.kind = "agency";
  ehv.mllp_senders = {"EHV^EHV_DURHAM"};
  ehv.certificate_subject = "ehv-durham";
  config::PartyConfig wic;
  wic.id = "wic-durham";
  wic.mllp_senders = {"WIC_DURHAM"};  // MSH-4 alone
  wic.source_addresses = {network(false, {10, 2, 0, 0}, 24)};
  config::PartyConfig clinic;
  clinic.id = "peds_clinic_a";
  clinic.kind = "clinic";
  clinic.mllp_senders = {"EHR^PEDS_CLINIC_A"};
  return {ehv, wic, clinic};
}

TEST(Parties, InDevModeTheHeaderNamesTheAgency) {
  Parties p(shipped(), true);
  auto who = p.mllp_agency({"127.0.0.1:5000", ""}, "EHV", "EHV_DURHAM");
  ASSERT_TRUE(who) << who.error().message;
  EXPECT_EQ(*who, "ehv-durham");
  who = p.mllp_agency({"127.0.0.1:5000", ""}, "ANY_APP", "WIC_DURHAM");
  ASSERT_TRUE(who);
  EXPECT_EQ(*who, "wic-durham");
}

TEST(Parties, WithNoPartiesAtAllDevModeLetsTheMessageSpeak) {
  Parties p({}, true);
  auto who = p.mllp_agency({"127.0.0.1:5000", ""}, "EHV", "EHV_DURHAM");
  ASSERT_TRUE(who);
  EXPECT_EQ(*who, "");
  Parties production({}, false);
  EXPECT_FALSE(production.mllp_agency({"127.0.0.1:5000", ""}, "EHV", "EHV_DURHAM"));
}

TEST(Parties, AnUnknownSenderOrAClinicIsRefusedNamingMsh4) {
  Parties p(shipped(), true);
  auto unknown = p.mllp_agency({"127.0.0.1:5000", ""}, "X", "NOBODY");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().kind, ErrorKind::kUnsupported);
  EXPECT_EQ(unknown.error().where.segment, "MSH");
  EXPECT_EQ(unknown.error().where.field, 4);
  EXPECT_NE(unknown.error().message.find("X^NOBODY is not the MLLP sender of any agency"),
            std::string::npos);
  auto clinic = p.mllp_agency({"127.0.0.1:5000", ""}, "EHR", "PEDS_CLINIC_A");
  ASSERT_FALSE(clinic);
  EXPECT_NE(clinic.error().message.find("is clinic peds_clinic_a"), std::string::npos);
}

TEST(Parties, InProductionTheConnectionMustProveItIsTheAgency) {
  Parties p(shipped(), false);
  // The header alone proves nothing.
  auto bare = p.mllp_agency({"127.0.0.1:5000", ""}, "EHV", "EHV_DURHAM");
  ASSERT_FALSE(bare);
  EXPECT_NE(bare.error().message.find("this connection is not agency ehv-durham's"),
            std::string::npos);
  // Its certificate (the CN the party names) proves it; another agency's does not.
  EXPECT_TRUE(
      p.mllp_agency({"127.0.0.1:5000", "/C=US/O=Early Start/CN=ehv-durham"}, "EHV", "EHV_DURHAM"));
  EXPECT_FALSE(p.mllp_agency({"127.0.0.1:5000", "/C=US/O=WIC/CN=wic-durham"}, "EHV", "EHV_DURHAM"));
  // A source address inside the party's networks proves it; outside it does not.
  EXPECT_TRUE(p.mllp_agency({"10.2.0.77:4000", ""}, "ANY", "WIC_DURHAM"));
  EXPECT_FALSE(p.mllp_agency({"10.2.1.77:4000", ""}, "ANY", "WIC_DURHAM"));
}

TEST(Parties, AClinicsMessagesCountAsTheClinicItsConnectionProves) {
  auto parties = shipped();
  parties[2].certificate_subject = "peds-clinic-a-ehr";
  Parties production(parties, false);
  // Its certificate proves the clinic its header names.
  auto who = production.mllp_clinic({"127.0.0.1:5000", "/O=Peds/CN=peds-clinic-a-ehr"}, "EHR",
                                    "PEDS_CLINIC_A");
  ASSERT_TRUE(who) << who.error().message;
  EXPECT_EQ(*who, "peds_clinic_a");
  // The header alone proves nothing.
  auto bare = production.mllp_clinic({"127.0.0.1:5000", ""}, "EHR", "PEDS_CLINIC_A");
  ASSERT_FALSE(bare);
  EXPECT_EQ(bare.error().where.field, 4);
  EXPECT_NE(bare.error().message.find("not clinic peds_clinic_a's"), std::string::npos);
  // A proven clinic cannot send as a sender it does not list...
  auto spoof = production.mllp_clinic({"127.0.0.1:5000", "/O=Peds/CN=peds-clinic-a-ehr"}, "EHR",
                                      "OTHER_CLINIC");
  ASSERT_FALSE(spoof);
  EXPECT_NE(spoof.error().message.find("this connection is peds_clinic_a's, but MSH-3^MSH-4 "
                                       "EHR^OTHER_CLINIC is not among parties.peds_clinic_a"),
            std::string::npos);
  // ...an unknown sender is refused in production...
  auto unknown = production.mllp_clinic({"127.0.0.1:5000", ""}, "EHR", "NOBODY");
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message.find("is not the MLLP sender of any clinic"),
            std::string::npos);
  // ...and an agency's sender never sends screenings, even with its own certificate.
  auto agency = production.mllp_clinic({"127.0.0.1:5000", "/CN=ehv-durham"}, "EHV", "EHV_DURHAM");
  ASSERT_FALSE(agency);
  EXPECT_NE(agency.error().message.find("is agency ehv-durham"), std::string::npos);
}

TEST(Parties, InDevModeAClinicsHeaderIsEnoughAndUnknownSendersPass) {
  Parties dev(shipped(), true);
  auto who = dev.mllp_clinic({"127.0.0.1:5000", ""}, "EHR", "PEDS_CLINIC_A");
  ASSERT_TRUE(who);
  EXPECT_EQ(*who, "peds_clinic_a");
  who = dev.mllp_clinic({"127.0.0.1:5000", ""}, "EHR", "NOBODY");
  ASSERT_TRUE(who);
  EXPECT_EQ(*who, "");
  EXPECT_FALSE(dev.mllp_clinic({"127.0.0.1:5000", ""}, "EHV", "EHV_DURHAM"));  // an agency's
  EXPECT_EQ(dev.connection_party({"10.2.0.9:1", ""}), "wic-durham");
  EXPECT_EQ(dev.connection_party({"10.9.0.9:1", ""}), "");
}

TEST(CertificateMatches, WholeSubjectOrJustItsCn) {
  EXPECT_TRUE(certificate_matches("/O=A/CN=ehv", "/O=A/CN=ehv"));
  EXPECT_TRUE(certificate_matches("/O=A/CN=ehv", "ehv"));
  EXPECT_FALSE(certificate_matches("/O=A/CN=ehv-x", "ehv"));
  EXPECT_FALSE(certificate_matches("/O=A/CN=ehv", "/O=B/CN=ehv"));
  EXPECT_FALSE(certificate_matches("", "ehv"));
}

TEST(InNetworks, MatchesByPrefixForV4V6AndMappedAddresses) {
  const std::vector<config::IpNetwork> nets = {
      network(false, {10, 2, 0, 0}, 23),
      network(true, {0x20, 0x01, 0x0d, 0xb8}, 32),
  };
  EXPECT_TRUE(in_networks(nets, "10.2.1.5:443"));
  EXPECT_TRUE(in_networks(nets, "10.2.0.1"));
  EXPECT_FALSE(in_networks(nets, "10.2.2.1:443"));
  EXPECT_TRUE(in_networks(nets, "[2001:db8::7]:5000"));
  EXPECT_FALSE(in_networks(nets, "[2001:db9::7]:5000"));
  EXPECT_TRUE(in_networks(nets, "[::ffff:10.2.1.9]:80"));
  EXPECT_FALSE(in_networks(nets, "not-an-address"));
}

}  // namespace
}  // namespace sdoh::identity
