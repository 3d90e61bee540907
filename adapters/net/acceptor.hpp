#pragma once
// Opening a listening TCP socket from a configured address. Included only by the .cpp files
// of servers (it pulls in Asio's socket headers).
#include <string>

#include <boost/asio/ip/tcp.hpp>

#include "gateway/config/config.hpp"
#include "gateway/core/result.hpp"

namespace sdoh::net {

/// Resolves `addr` (numeric or a host name such as "localhost"), then opens, binds and listens.
/// `key_path` names the config key in errors ("http.listen").
Result<boost::asio::ip::tcp::endpoint> open_acceptor(boost::asio::ip::tcp::acceptor& acceptor,
                                                     const config::ListenAddress& addr,
                                                     const std::string& key_path);

/// "127.0.0.1:8080" or "[::1]:8080".
std::string endpoint_string(const boost::asio::ip::tcp::endpoint& ep);

}  // namespace sdoh::net
