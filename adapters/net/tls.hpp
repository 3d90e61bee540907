#pragma once
// Server-side TLS contexts for the HTTP and MLLP listeners (OpenSSL through asio::ssl).
#include <memory>
#include <string>

#include "gateway/config/config.hpp"
#include "gateway/core/result.hpp"

namespace boost::asio::ssl {
class context;
}

namespace sdoh::net {

/// A TLS 1.2+ (or 1.3+) server context from `tls`; `key_path` ("mllp.tls") prefixes errors.
/// With client_ca_file set, client certificates are verified, and required when
/// require_client_cert is true (mTLS).
Result<std::shared_ptr<boost::asio::ssl::context>> make_server_tls_context(
    const config::TlsConfig& tls, const std::string& key_path);

}  // namespace sdoh::net
