#include "adapters/net/tls.hpp"

#include <boost/asio/ssl/context.hpp>
#include <openssl/ssl.h>

namespace sdoh::net {

namespace ssl = boost::asio::ssl;

Result<std::shared_ptr<ssl::context>> make_server_tls_context(const config::TlsConfig& tls,
                                                              const std::string& key_path) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                   ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                   ssl::context::single_dh_use);
  const int min_version = tls.min_version == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION;
  if (SSL_CTX_set_min_proto_version(ctx->native_handle(), min_version) != 1) {
    return fail(Error::config(key_path + ".min_version", "OpenSSL refused the minimum version"));
  }
  if (tls.key_password.configured()) {
    auto password = tls.key_password.resolve();
    if (!password) return fail(Error::config(key_path + ".key_password", password.error().message));
    ctx->set_password_callback(
        [pw = *password](std::size_t, ssl::context::password_purpose) { return pw; });
  }
  boost::system::error_code ec;
  ctx->use_certificate_chain_file(tls.cert_file, ec);
  if (ec) {
    return fail(Error::config(key_path + ".cert_file", "cannot load certificate chain " +
                                                           tls.cert_file + ": " + ec.message()));
  }
  ctx->use_private_key_file(tls.key_file, ssl::context::pem, ec);
  if (ec) {
    return fail(Error::config(key_path + ".key_file",
                              "cannot load private key " + tls.key_file + ": " + ec.message()));
  }
  if (SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
    return fail(
        Error::config(key_path + ".key_file", "the private key does not match the certificate"));
  }
  if (!tls.client_ca_file.empty()) {
    ctx->load_verify_file(tls.client_ca_file, ec);
    if (ec) {
      return fail(Error::config(key_path + ".client_ca_file",
                                "cannot load " + tls.client_ca_file + ": " + ec.message()));
    }
    auto mode = ssl::verify_peer;
    if (tls.require_client_cert) mode |= ssl::verify_fail_if_no_peer_cert;
    ctx->set_verify_mode(mode);
  }
  return ctx;
}

}  // namespace sdoh::net
