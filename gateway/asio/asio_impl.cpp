// Boost.Asio, Asio.SSL and Boost.Beast compiled once for the whole project (their
// separate-compilation mode); every other file includes only their declarations.
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
#include <boost/beast/src.hpp>
