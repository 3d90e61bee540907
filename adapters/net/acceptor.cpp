#include "adapters/net/acceptor.hpp"

#include <boost/asio/ip/tcp.hpp>

namespace sdoh::net {

namespace asio = boost::asio;
using asio::ip::tcp;

Result<tcp::endpoint> open_acceptor(tcp::acceptor& acceptor, const config::ListenAddress& addr,
                                    const std::string& key_path) {
  boost::system::error_code ec;
  tcp::endpoint endpoint;
  auto ip = asio::ip::make_address(addr.host, ec);
  if (!ec) {
    endpoint = tcp::endpoint(ip, addr.port);
  } else {
    tcp::resolver resolver(acceptor.get_executor());
    auto results = resolver.resolve(addr.host, std::to_string(addr.port),
                                    tcp::resolver::passive | tcp::resolver::numeric_service, ec);
    if (ec || results.empty()) {
      return fail(Error::config(key_path, "cannot resolve host \"" + addr.host +
                                              "\": " + (ec ? ec.message() : "no addresses")));
    }
    endpoint = results.begin()->endpoint();
  }
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    boost::system::error_code ignored;
    acceptor.close(ignored);
    return fail(
        Error::config(key_path, "cannot listen on " + addr.to_string() + ": " + ec.message()));
  }
  return acceptor.local_endpoint();
}

std::string endpoint_string(const tcp::endpoint& ep) {
  const auto address = ep.address();
  if (address.is_v6()) return "[" + address.to_string() + "]:" + std::to_string(ep.port());
  return address.to_string() + ":" + std::to_string(ep.port());
}

}  // namespace sdoh::net
