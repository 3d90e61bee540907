// A minimal HTTP server, as the reference for tools/bench fhir: Boost.Beast on the same runtime
// as the gateway (coroutines, one io_context, two threads), reading each request whole and
// answering 201 Created with a fixed FHIR body at once. No parsing of the body, no storage:
// what the machine and HTTP/1.1 allow, to compare the gateway's FHIR API with.
//   build/bench/http-fixed [--threads 2]     prints "listening <port>" and serves until killed
#include <string>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include "reference_server.hpp"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;
constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);

constexpr const char* kBody =
    R"({"resourceType":"OperationOutcome","issue":[{"severity":"information","code":"informational","diagnostics":"created"}]})";

asio::awaitable<void> serve(tcp::socket socket) {
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  for (;;) {
    http::request<http::string_body> req;
    auto [ec, n] = co_await http::async_read(stream, buffer, req, kUseTuple);
    (void)n;
    if (ec) co_return;
    http::response<http::string_body> res{http::status::created, req.version()};
    res.set(http::field::content_type, "application/fhir+json; charset=utf-8");
    res.set(http::field::location, "Bundle/fixed/_history/1");
    res.keep_alive(req.keep_alive());
    res.body() = kBody;
    res.prepare_payload();
    auto [wec, written] = co_await http::async_write(stream, res, kUseTuple);
    (void)written;
    if (wec || !res.keep_alive()) co_return;
  }
}

}  // namespace

int main(int argc, char** argv) {
  return sdoh::bench::run_reference_server(
      argc, argv, "Minimal HTTP server: answers every request 201 Created with a fixed body",
      serve);
}
