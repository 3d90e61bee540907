#include "adapters/net/tls.hpp"

#include <array>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/context.hpp>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

namespace sdoh::net {

namespace ssl = boost::asio::ssl;

namespace {

// A certificate chain and its private key (PEM), checked to belong together; errors name
// `key_path`.cert_file / .key_file.
Result<void> load_key_pair(ssl::context& ctx, const std::string& cert_file,
                           const std::string& key_file, const std::string& key_path) {
  boost::system::error_code ec;
  ctx.use_certificate_chain_file(cert_file, ec);
  if (ec) {
    return fail(Error::config(key_path + ".cert_file",
                              "cannot load certificate chain " + cert_file + ": " + ec.message()));
  }
  ctx.use_private_key_file(key_file, ssl::context::pem, ec);
  if (ec) {
    return fail(Error::config(key_path + ".key_file",
                              "cannot load private key " + key_file + ": " + ec.message()));
  }
  if (SSL_CTX_check_private_key(ctx.native_handle()) != 1) {
    return fail(
        Error::config(key_path + ".key_file", "the private key does not match the certificate"));
  }
  return {};
}

// Mozilla's "intermediate" profile (ssl-config.mozilla.org, version 5.7): TLS 1.2 and 1.3, and
// for TLS 1.2 only ECDHE/DHE key exchange with AEAD ciphers (GCM, ChaCha20-Poly1305); TLS 1.3's
// suites are all AEAD. The same for listeners and for the connections the gateway makes.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305";
constexpr const char* kTls13Suites =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
constexpr const char* kGroups = "X25519:P-256:P-384";

// The protocol floor and the profile's ciphers and groups; errors name `key_path`.
Result<void> apply_profile(ssl::context& ctx, const std::string& min_version,
                           const std::string& key_path) {
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                  ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                  ssl::context::single_dh_use);
  const int version = min_version == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION;
  if (SSL_CTX_set_min_proto_version(ctx.native_handle(), version) != 1)
    return fail(Error::config(key_path + ".min_version", "OpenSSL refused the minimum version"));
  if (SSL_CTX_set_cipher_list(ctx.native_handle(), kTls12Ciphers) != 1 ||
      SSL_CTX_set_ciphersuites(ctx.native_handle(), kTls13Suites) != 1 ||
      SSL_CTX_set1_groups_list(ctx.native_handle(), kGroups) != 1)
    return fail(Error::internal("OpenSSL refused the TLS cipher profile"));
  // The profile leaves the choice of cipher to the client (all of them are strong), and
  // session tickets off so that forward secrecy does not rest on a long-lived ticket key.
  SSL_CTX_clear_options(ctx.native_handle(), SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_options(ctx.native_handle(), SSL_OP_NO_TICKET);
  // A connection waiting for its next message gives OpenSSL's record buffers back instead of
  // holding them (as nginx does); Asio's TLS stream still keeps its own two 17 KB buffers.
  SSL_CTX_set_mode(ctx.native_handle(), SSL_MODE_RELEASE_BUFFERS);
  return {};
}

}  // namespace

std::string_view tls_profile_ciphers() {
  return kTls12Ciphers;
}

Result<std::shared_ptr<ssl::context>> make_server_tls_context(const config::TlsConfig& tls,
                                                              const std::string& key_path) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  if (auto r = apply_profile(*ctx, tls.min_version, key_path); !r) return fail(r.error());
  if (tls.key_password.configured()) {
    auto password = tls.key_password.resolve();
    if (!password) return fail(Error::config(key_path + ".key_password", password.error().message));
    ctx->set_password_callback(
        [pw = *password](std::size_t, ssl::context::password_purpose) { return pw; });
  }
  if (auto r = load_key_pair(*ctx, tls.cert_file, tls.key_file, key_path); !r)
    return fail(r.error());
  boost::system::error_code ec;
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

ServerTls::ServerTls(config::TlsConfig cfg, std::string key_path)
    : cfg_(std::move(cfg)), key_path_(std::move(key_path)) {}

Result<void> ServerTls::load() {
  if (!cfg_.enabled()) return {};
  auto ctx = make_server_tls_context(cfg_, key_path_);
  if (!ctx) return fail(ctx.error());
  std::lock_guard lock(mutex_);
  context_ = std::move(*ctx);
  return {};
}

std::shared_ptr<ssl::context> ServerTls::current() const {
  std::lock_guard lock(mutex_);
  return context_;
}

Result<std::shared_ptr<ssl::context>> make_client_tls_context(const ClientTlsOptions& tls,
                                                              const std::string& key_path) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  if (auto r = apply_profile(*ctx, tls.min_version, key_path); !r) return fail(r.error());
  boost::system::error_code ec;
  if (tls.ca_file.empty()) {
    ctx->set_default_verify_paths(ec);
    if (ec) {
      return fail(Error::config(
          key_path + ".ca_file",
          "the system's trust store cannot be loaded: " + ec.message() + "; name a PEM CA file"));
    }
  } else {
    ctx->load_verify_file(tls.ca_file, ec);
    if (ec) {
      return fail(
          Error::config(key_path + ".ca_file", "cannot load " + tls.ca_file + ": " + ec.message()));
    }
  }
  ctx->set_verify_mode(ssl::verify_peer);
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    return fail(Error::config(key_path + (tls.cert_file.empty() ? ".cert_file" : ".key_file"),
                              "a client certificate needs both cert_file and key_file"));
  }
  if (!tls.cert_file.empty()) {
    if (auto r = load_key_pair(*ctx, tls.cert_file, tls.key_file, key_path); !r)
      return fail(r.error());
  }
  return ctx;
}

Result<void> set_client_peer_name(ssl_st* ssl, const std::string& host) {
  boost::system::error_code ec;
  const auto address = boost::asio::ip::make_address(host, ec);
  if (!ec) {
    // RFC 6066 3: SNI carries host names only, never address literals.
    if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), address.to_string().c_str()) != 1)
      return fail(Error::internal("OpenSSL refused the IP address " + host + " to verify"));
    return {};
  }
  if (SSL_set_tlsext_host_name(ssl, host.c_str()) != 1)
    return fail(Error::internal("OpenSSL refused the server name " + host));
  if (SSL_set1_host(ssl, host.c_str()) != 1)
    return fail(Error::internal("OpenSSL refused the host name " + host + " to verify"));
  // Wildcards only as a whole left-most label (RFC 6125 6.4.3).
  SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  return {};
}

std::string verified_client_subject(ssl_st* ssl) {
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (cert == nullptr) return {};
  std::array<char, 512> buf{};
  if (SSL_get_verify_result(ssl) == X509_V_OK) {
    X509_NAME_oneline(X509_get_subject_name(cert), buf.data(), static_cast<int>(buf.size()));
  }
  X509_free(cert);
  return buf.data();
}

}  // namespace sdoh::net
