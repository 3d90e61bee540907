#pragma once
// TLS contexts (OpenSSL through asio::ssl): server side for the HTTP and MLLP listeners, client
// side for outbound connections to endpoints that are not ours (a clinic's MLLP listener).
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "gateway/config/config.hpp"
#include "gateway/core/result.hpp"

namespace boost::asio::ssl {
class context;
}
struct ssl_st;  // OpenSSL's SSL

namespace sdoh::net {

/// A TLS 1.2+ (or 1.3+) server context from `tls`; `key_path` ("mllp.tls") prefixes errors.
/// With client_ca_file set, client certificates are verified, and required when
/// require_client_cert is true (mTLS).
Result<std::shared_ptr<boost::asio::ssl::context>> make_server_tls_context(
    const config::TlsConfig& tls, const std::string& key_path);

/// A listener's server TLS context, replaced whole when its certificate and key are reloaded
/// (SIGHUP). A connection takes the current context when it is accepted and keeps it for its
/// life, so a reload drops no open connection and only new connections see the new
/// certificate. Thread-safe.
class ServerTls {
 public:
  ServerTls(config::TlsConfig cfg, std::string key_path);
  bool enabled() const { return cfg_.enabled(); }
  /// Loads (or reloads) the files the configuration names. On failure the context in use stays.
  Result<void> load();
  /// The context new connections use; null when the listener is plain TCP.
  std::shared_ptr<boost::asio::ssl::context> current() const;

 private:
  config::TlsConfig cfg_;
  std::string key_path_;
  mutable std::mutex mutex_;
  std::shared_ptr<boost::asio::ssl::context> context_;
};

/// The TLS 1.2 cipher list every context uses (Mozilla's intermediate profile: AEAD only).
std::string_view tls_profile_ciphers();

/// A client's TLS settings.
struct ClientTlsOptions {
  /// PEM CAs the server's certificate must chain to; empty: the system's default trust store.
  std::string ca_file;
  /// PEM client certificate chain and key, for servers that require mTLS; empty: none.
  std::string cert_file;
  std::string key_file;
  std::string min_version = "1.2";  ///< "1.2" or "1.3"
};

/// A TLS 1.2+ (or 1.3+) client context that verifies the server's certificate chain; the name
/// check is per connection (set_client_peer_name). `key_path` prefixes errors.
Result<std::shared_ptr<boost::asio::ssl::context>> make_client_tls_context(
    const ClientTlsOptions& tls, const std::string& key_path);

/// Before a client handshake: the certificate must name `host` (a DNS name, matched against its
/// subjectAltName DNS entries; or an IP address, matched against its IP entries), and a DNS name
/// is sent as SNI. Call with the stream's native handle.
Result<void> set_client_peer_name(ssl_st* ssl, const std::string& host);

/// After a server handshake: the subject of the client's certificate ("/C=US/O=Clinic/CN=ehr")
/// when it sent one and it was verified against client_ca_file; empty otherwise.
std::string verified_client_subject(ssl_st* ssl);

}  // namespace sdoh::net
