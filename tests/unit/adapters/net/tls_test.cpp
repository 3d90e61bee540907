#include "adapters/net/tls.hpp"

#include <filesystem>
#include <unistd.h>

#include <boost/asio/ssl/context.hpp>
#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include "tests/unit/adapters/net/test_certificate.hpp"

namespace sdoh::net {
namespace {

namespace fs = std::filesystem;

class ClientTlsTest : public ::testing::Test {
 protected:
  ClientTlsTest() {
    dir_ = fs::temp_directory_path() /
           ("sdoh-tls-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  ~ClientTlsTest() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(ClientTlsTest, VerifiesTheServerAgainstTheCaFile) {
  const auto cert = test_support::make_test_certificate(dir_, "clinic", "DNS:localhost");
  ClientTlsOptions options;
  options.ca_file = cert.cert_file;
  auto ctx = make_client_tls_context(options, "mllp.hl7.senders.x.return_tls");
  ASSERT_TRUE(ctx) << ctx.error().message;
  EXPECT_EQ(SSL_CTX_get_verify_mode((*ctx)->native_handle()) & SSL_VERIFY_PEER, SSL_VERIFY_PEER);
  EXPECT_EQ(SSL_CTX_get_min_proto_version((*ctx)->native_handle()), TLS1_2_VERSION);
}

TEST_F(ClientTlsTest, MissingCaFileNamesTheKey) {
  ClientTlsOptions options;
  options.ca_file = (dir_ / "absent.pem").string();
  auto ctx = make_client_tls_context(options, "clinic.tls");
  ASSERT_FALSE(ctx);
  EXPECT_EQ(ctx.error().where.expression, "clinic.tls.ca_file");
}

TEST_F(ClientTlsTest, ClientCertificateNeedsItsKey) {
  const auto cert = test_support::make_test_certificate(dir_, "gateway", "DNS:gateway");
  ClientTlsOptions options;
  options.ca_file = cert.cert_file;
  options.cert_file = cert.cert_file;
  auto without_key = make_client_tls_context(options, "clinic.tls");
  ASSERT_FALSE(without_key);
  EXPECT_EQ(without_key.error().where.expression, "clinic.tls.key_file");
  options.key_file = cert.key_file;
  EXPECT_TRUE(make_client_tls_context(options, "clinic.tls"));
}

TEST_F(ClientTlsTest, TlsOneThreeMinimumIsApplied) {
  const auto cert = test_support::make_test_certificate(dir_, "clinic", "DNS:localhost");
  ClientTlsOptions options;
  options.ca_file = cert.cert_file;
  options.min_version = "1.3";
  auto ctx = make_client_tls_context(options, "clinic.tls");
  ASSERT_TRUE(ctx);
  EXPECT_EQ(SSL_CTX_get_min_proto_version((*ctx)->native_handle()), TLS1_3_VERSION);
}

TEST_F(ClientTlsTest, PeerNameSetsSniForHostNamesOnly) {
  const auto cert = test_support::make_test_certificate(dir_, "clinic", "DNS:localhost");
  ClientTlsOptions options;
  options.ca_file = cert.cert_file;
  auto ctx = make_client_tls_context(options, "clinic.tls");
  ASSERT_TRUE(ctx);
  SSL* by_name = SSL_new((*ctx)->native_handle());
  ASSERT_TRUE(set_client_peer_name(by_name, "clinic.example"));
  EXPECT_STREQ(SSL_get_servername(by_name, TLSEXT_NAMETYPE_host_name), "clinic.example");
  EXPECT_STREQ(SSL_get0_peername(by_name), nullptr);  // set after a verified handshake only
  SSL_free(by_name);
  SSL* by_address = SSL_new((*ctx)->native_handle());
  ASSERT_TRUE(set_client_peer_name(by_address, "127.0.0.1"));
  EXPECT_EQ(SSL_get_servername(by_address, TLSEXT_NAMETYPE_host_name), nullptr);
  SSL_free(by_address);
}

}  // namespace
}  // namespace sdoh::net
