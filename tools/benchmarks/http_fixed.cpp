// A minimal HTTP server, as the reference for tools/bench fhir: Boost.Beast on the same runtime
// as the gateway (coroutines, one io_context, two threads), reading each request whole and
// answering 201 Created with a fixed FHIR body at once. No parsing of the body, no storage:
// what the machine and HTTP/1.1 allow, to compare the gateway's FHIR API with.
//   build/bench/http-fixed [--threads 2]     prints "listening <port>" and serves until killed
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

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

asio::awaitable<void> accept(tcp::acceptor& acceptor) {
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(kUseTuple);
    if (ec) continue;
    socket.set_option(tcp::no_delay(true));
    asio::co_spawn(acceptor.get_executor(), serve(std::move(socket)), asio::detached);
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Minimal HTTP server: answers every request 201 Created with a fixed body"};
  int threads = 2;
  std::string host = "127.0.0.1";
  app.add_option("--threads", threads, "I/O threads (as the gateway's runtime.io_threads)");
  app.add_option("--host", host, "address to listen on (port: any free one)");
  CLI11_PARSE(app, argc, argv);

  asio::io_context ioc;
  tcp::acceptor acceptor(ioc, {asio::ip::make_address(host), 0});
  std::printf("listening %u\n", static_cast<unsigned>(acceptor.local_endpoint().port()));
  std::fflush(stdout);
  asio::co_spawn(ioc, accept(acceptor), asio::detached);
  std::vector<std::thread> pool;
  for (int i = 1; i < threads; ++i)
    pool.emplace_back([&ioc] { ioc.run(); });
  ioc.run();
  for (auto& t : pool)
    t.join();
  return 0;
}
