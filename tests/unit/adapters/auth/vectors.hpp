#pragma once
// The JOSE test vectors both auth test files read: keys, JWSs and client assertions made by an
// independent implementation (panva/jose), in tests/data/jose/vectors.json.
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "gateway/core/json_parse.hpp"

namespace sdoh::auth::test {

inline const rapidjson::Document& vectors() {
  static const rapidjson::Document doc = [] {
    std::ifstream in(SDOH_SOURCE_DIR "/tests/data/jose/vectors.json");
    std::stringstream buf;
    buf << in.rdbuf();
    rapidjson::Document d;
    EXPECT_TRUE(json::parse(d, buf.str()));
    return d;
  }();
  return doc;
}

/// A string value as it is; any other value as its JSON text (a JWK object).
inline std::string text(const rapidjson::Value& v) {
  if (v.IsString()) return v.GetString();
  rapidjson::StringBuffer b;
  rapidjson::Writer<rapidjson::StringBuffer> w(b);
  v.Accept(w);
  return b.GetString();
}

}  // namespace sdoh::auth::test
