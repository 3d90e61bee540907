#pragma once
// /ui: the ops and equity dashboard, served from files compiled into the binary (web/ui/, turned
// into a generated source at build time by cmake/SdohEmbed.cmake): the machines that run the
// gateway may have no internet, so nothing comes from a CDN and no font is fetched. The files
// hold no data (the page reads /ops/api with the caller's token), so they are served to anyone.
//
// Every answer carries a strict Content-Security-Policy (scripts, styles and connections to this
// origin only; no inline script or style, no frames), an ETag (the file's SHA-256) with
// `Cache-Control: no-cache` so browsers revalidate and a new binary's files show at once, and
// If-None-Match is answered 304.
#include <span>
#include <string_view>

#include "gateway/http/message.hpp"

namespace sdoh::ops {

/// One file of the dashboard, as the build embedded it.
struct EmbeddedFile {
  std::string_view path;          ///< relative to web/ui, e.g. "index.html", "assets/app.js"
  std::string_view content_type;  ///< from its extension
  std::string_view etag;          ///< "\"<sha256 prefix>\""
  std::string_view bytes;
};

/// The Content-Security-Policy of every /ui answer.
inline constexpr std::string_view kUiContentSecurityPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The dashboard's pages: /ui (the overview) and /ui/<page> all serve index.html, which draws
/// the page its path names.
inline constexpr std::string_view kUiPages[] = {"overview", "referrals", "equity", "deliveries",
                                                "senders"};

/// Adds GET /ui, /ui/{page} and /ui/assets/{file}. `files` must outlive the router; it must
/// hold "index.html".
void add_ui_routes(http::Router& router, std::span<const EmbeddedFile> files);

}  // namespace sdoh::ops
