#include "adapters/auth/jose.hpp"

#include <array>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "gateway/core/json_parse.hpp"
#include "gateway/core/json_text.hpp"

namespace sdoh::auth {

namespace {

constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr std::size_t kMaxTokenBytes = 16 * 1024;
constexpr int kMinRsaBits = 2048;

template <class T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using PkeyCtx = std::unique_ptr<EVP_PKEY_CTX, Deleter<EVP_PKEY_CTX, EVP_PKEY_CTX_free>>;
using MdCtx = std::unique_ptr<EVP_MD_CTX, Deleter<EVP_MD_CTX, EVP_MD_CTX_free>>;
using Bignum = std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>>;
using ParamBld = std::unique_ptr<OSSL_PARAM_BLD, Deleter<OSSL_PARAM_BLD, OSSL_PARAM_BLD_free>>;
using Params = std::unique_ptr<OSSL_PARAM, Deleter<OSSL_PARAM, OSSL_PARAM_free>>;
using EcdsaSig = std::unique_ptr<ECDSA_SIG, Deleter<ECDSA_SIG, ECDSA_SIG_free>>;
using Bio = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;

std::shared_ptr<EVP_PKEY> own(EVP_PKEY* k) {
  return std::shared_ptr<EVP_PKEY>(k, EVP_PKEY_free);
}

Error invalid(std::string message) {
  return Error::invalid(std::move(message));
}

struct AlgInfo {
  Alg alg;
  std::string_view name;
  const EVP_MD* (*digest)();
  bool ec;
  std::size_t coordinate;  ///< EC: bytes of r and of s; RSA: 0
};

constexpr std::array<AlgInfo, 5> kAlgs = {{
    {Alg::kRS256, "RS256", EVP_sha256, false, 0},
    {Alg::kRS384, "RS384", EVP_sha384, false, 0},
    {Alg::kRS512, "RS512", EVP_sha512, false, 0},
    {Alg::kES256, "ES256", EVP_sha256, true, 32},
    {Alg::kES384, "ES384", EVP_sha384, true, 48},
}};

const AlgInfo& info(Alg alg) {
  for (const auto& a : kAlgs) {
    if (a.alg == alg) return a;
  }
  return kAlgs.front();
}

std::optional<std::string> member(const rapidjson::Value& obj, const char* name) {
  auto it = obj.FindMember(name);
  if (it == obj.MemberEnd() || !it->value.IsString()) return std::nullopt;
  return std::string(it->value.GetString(), it->value.GetStringLength());
}

Bignum bignum(std::string_view bytes) {
  return Bignum(BN_bin2bn(reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<int>(bytes.size()), nullptr));
}

Result<std::shared_ptr<EVP_PKEY>> from_params(const char* type, OSSL_PARAM_BLD* bld) {
  Params params(OSSL_PARAM_BLD_to_param(bld));
  PkeyCtx ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* key = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) <= 0 ||
      EVP_PKEY_fromdata(ctx.get(), &key, EVP_PKEY_PUBLIC_KEY, params.get()) <= 0) {
    return fail(invalid(std::string("the ") + type + " key cannot be built from its JWK"));
  }
  return own(key);
}

// Raw R||S (JWS, RFC 7518 3.4) to the DER ECDSA-Sig-Value OpenSSL verifies.
std::optional<std::string> ecdsa_der(std::string_view raw, std::size_t coordinate) {
  if (raw.size() != 2 * coordinate) return std::nullopt;
  EcdsaSig sig(ECDSA_SIG_new());
  auto r = bignum(raw.substr(0, coordinate));
  auto s = bignum(raw.substr(coordinate));
  if (!sig || !r || !s || ECDSA_SIG_set0(sig.get(), r.get(), s.get()) != 1) return std::nullopt;
  (void)r.release();  // owned by sig now
  (void)s.release();
  unsigned char* der = nullptr;
  const int n = i2d_ECDSA_SIG(sig.get(), &der);
  if (n <= 0) return std::nullopt;
  std::string out(reinterpret_cast<char*>(der), static_cast<std::size_t>(n));
  OPENSSL_free(der);
  return out;
}

std::optional<std::string> ecdsa_raw(std::string_view der, std::size_t coordinate) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  EcdsaSig sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())));
  if (!sig) return std::nullopt;
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  std::string out(2 * coordinate, '\0');
  auto* buf = reinterpret_cast<unsigned char*>(out.data());
  if (BN_bn2binpad(r, buf, static_cast<int>(coordinate)) < 0 ||
      BN_bn2binpad(s, buf + coordinate, static_cast<int>(coordinate)) < 0)
    return std::nullopt;
  return out;
}

std::string bn_bytes(const BIGNUM* bn, std::size_t size) {
  std::string out(size, '\0');
  BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(size));
  return out;
}

std::string sha256(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), md, &n, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<char*>(md), n);
}

}  // namespace

std::string base64url_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() * 4 + 2) / 3);
  std::uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : bytes) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kAlphabet[(acc >> bits) & 0x3f]);
    }
  }
  if (bits > 0) out.push_back(kAlphabet[(acc << (6 - bits)) & 0x3f]);
  return out;
}

std::optional<std::string> base64url_decode(std::string_view text) {
  if (text.size() % 4 == 1) return std::nullopt;  // no whole byte in a lone sixth of six bits
  std::string out;
  out.reserve(text.size() * 3 / 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    const auto v = kAlphabet.find(c);
    if (v == std::string_view::npos) return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  // The unused low bits of the last character must be zero (one encoding per byte string).
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
}

std::optional<Alg> alg_from_name(std::string_view name) {
  for (const auto& a : kAlgs) {
    if (a.name == name) return a.alg;
  }
  return std::nullopt;
}

std::string_view alg_name(Alg alg) {
  return info(alg).name;
}

Result<Jwk> Jwk::from_json(std::string_view json) {
  rapidjson::Document doc;
  if (auto r = json::parse(doc, json); !r) return fail(r.error());
  if (!doc.IsObject()) return fail(invalid("a JWK is a JSON object"));
  Jwk jwk;
  jwk.kty_ = member(doc, "kty").value_or("");
  jwk.kid_ = member(doc, "kid").value_or("");
  jwk.alg_ = member(doc, "alg").value_or("");
  jwk.use_ = member(doc, "use").value_or("");
  if (doc.HasMember("d"))
    return fail(invalid("the JWK holds a private key (d): publish public keys only"));
  auto field = [&doc](const char* name) -> Result<std::string> {
    auto text = member(doc, name);
    if (!text) return fail(invalid(std::string("the JWK has no ") + name));
    auto bytes = base64url_decode(*text);
    if (!bytes || bytes->empty())
      return fail(invalid(std::string("the JWK's ") + name + " is not base64url"));
    return *bytes;
  };
  if (jwk.kty_ == "RSA") {
    auto n = field("n");
    if (!n) return fail(n.error());
    auto e = field("e");
    if (!e) return fail(e.error());
    auto bn_n = bignum(*n);
    auto bn_e = bignum(*e);
    if (BN_num_bits(bn_n.get()) < kMinRsaBits) {
      return fail(invalid("the RSA key has " + std::to_string(BN_num_bits(bn_n.get())) +
                          " bits; at least 2048 are required"));
    }
    ParamBld bld(OSSL_PARAM_BLD_new());
    if (!bld || !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) ||
        !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()))
      return fail(invalid("the RSA key cannot be built from its JWK"));
    auto key = from_params("RSA", bld.get());
    if (!key) return fail(key.error());
    jwk.key_ = std::move(*key);
    return jwk;
  }
  if (jwk.kty_ == "EC") {
    jwk.crv_ = member(doc, "crv").value_or("");
    std::size_t size = 0;
    const char* group = nullptr;
    if (jwk.crv_ == "P-256") size = 32, group = "prime256v1";
    if (jwk.crv_ == "P-384") size = 48, group = "secp384r1";
    if (group == nullptr) return fail(invalid("the EC key's curve must be P-256 or P-384"));
    auto x = field("x");
    if (!x) return fail(x.error());
    auto y = field("y");
    if (!y) return fail(y.error());
    if (x->size() != size || y->size() != size)
      return fail(invalid("the EC key's x and y must be " + std::to_string(size) + " bytes each"));
    std::string point = "\x04" + *x + *y;
    ParamBld bld(OSSL_PARAM_BLD_new());
    if (!bld || !OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, 0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                          point.size()))
      return fail(invalid("the EC key cannot be built from its JWK"));
    auto key = from_params("EC", bld.get());
    if (!key) return fail(key.error());
    // The point must be on the curve (an invalid-curve point would leak nothing here, since only
    // signatures are verified, but a JWKS with one is broken).
    PkeyCtx check(EVP_PKEY_CTX_new_from_pkey(nullptr, key->get(), nullptr));
    if (!check || EVP_PKEY_public_check(check.get()) != 1)
      return fail(invalid("the EC key's point is not on its curve"));
    jwk.key_ = std::move(*key);
    return jwk;
  }
  return fail(invalid("unsupported kty \"" + jwk.kty_ + "\": RSA and EC keys only"));
}

bool Jwk::fits(Alg alg) const {
  const auto& a = info(alg);
  if (!alg_.empty() && alg_ != a.name) return false;
  if (!use_.empty() && use_ != "sig") return false;
  if (!a.ec) return kty_ == "RSA";
  if (kty_ != "EC") return false;
  return (alg == Alg::kES256 && crv_ == "P-256") || (alg == Alg::kES384 && crv_ == "P-384");
}

Result<Jwks> parse_jwks(std::string_view json) {
  rapidjson::Document doc;
  if (auto r = json::parse(doc, json); !r) return fail(r.error());
  if (!doc.IsObject() || !doc.HasMember("keys") || !doc["keys"].IsArray())
    return fail(invalid("a JWKS is a JSON object with a \"keys\" list"));
  Jwks out;
  for (const auto& k : doc["keys"].GetArray()) {
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    k.Accept(w);
    auto jwk = Jwk::from_json(std::string_view(buf.GetString(), buf.GetSize()));
    if (!jwk) {
      out.skipped.push_back(jwk.error().message);
      continue;
    }
    out.keys.push_back(std::move(*jwk));
  }
  return out;
}

Result<Jws> parse_compact(std::string_view token) {
  if (token.size() > kMaxTokenBytes) return fail(invalid("the JWT is longer than 16 KiB"));
  const auto first = token.find('.');
  const auto second = first == std::string_view::npos ? first : token.find('.', first + 1);
  if (second == std::string_view::npos || token.find('.', second + 1) != std::string_view::npos)
    return fail(invalid("a JWT is three base64url parts separated by dots"));
  Jws jws;
  auto header = base64url_decode(token.substr(0, first));
  auto payload = base64url_decode(token.substr(first + 1, second - first - 1));
  auto signature = base64url_decode(token.substr(second + 1));
  if (!header || !payload || !signature) return fail(invalid("a JWT part is not base64url"));
  jws.header_json = std::move(*header);
  jws.payload_json = std::move(*payload);
  jws.signature = std::move(*signature);
  jws.signing_input = std::string(token.substr(0, second));
  rapidjson::Document doc;
  if (auto r = json::parse(doc, jws.header_json); !r || !doc.IsObject())
    return fail(invalid("the JWT header is not a JSON object"));
  auto alg = member(doc, "alg");
  if (!alg) return fail(invalid("the JWT header has no alg"));
  // RFC 7515 4.1.11: a crit extension the recipient does not understand makes the JWS invalid.
  if (doc.HasMember("crit")) return fail(invalid("the JWT header has crit extensions"));
  jws.alg = *alg;
  jws.kid = member(doc, "kid").value_or("");
  jws.typ = member(doc, "typ").value_or("");
  return jws;
}

Result<void> verify(const Jws& jws, const Jwk& key, std::span<const Alg> allowed) {
  const auto alg = alg_from_name(jws.alg);
  bool ok = false;
  for (auto a : allowed)
    ok = ok || (alg && a == *alg);
  if (!ok) return fail(invalid("the JWT's alg \"" + jws.alg + "\" is not accepted here"));
  if (!key.fits(*alg))
    return fail(invalid("the key " + key.kid() + " does not sign with " + jws.alg));
  const auto& a = info(*alg);
  std::string der;
  std::string_view sig = jws.signature;
  if (a.ec) {
    auto converted = ecdsa_der(jws.signature, a.coordinate);
    if (!converted) return fail(invalid("the JWT's ECDSA signature has the wrong length"));
    der = std::move(*converted);
    sig = der;
  }
  MdCtx ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, a.digest(), nullptr, key.key()) != 1)
    return fail(Error::internal("cannot start verifying a JWT signature"));
  if (!a.ec) {
    // RS*: RSASSA-PKCS1-v1_5 (RFC 7518 3.3), which EVP uses for RSA keys by default; said anyway.
    EVP_PKEY_CTX* pctx = EVP_MD_CTX_get_pkey_ctx(ctx.get());
    if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1)
      return fail(Error::internal("cannot set RSA padding"));
  }
  const int rc = EVP_DigestVerify(
      ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
      reinterpret_cast<const unsigned char*>(jws.signing_input.data()), jws.signing_input.size());
  if (rc != 1) return fail(invalid("the JWT's signature does not verify with key " + key.kid()));
  return {};
}

Result<Claims> parse_claims(std::string_view payload_json) {
  rapidjson::Document doc;
  if (auto r = json::parse(doc, payload_json); !r || !doc.IsObject())
    return fail(invalid("the JWT claims are not a JSON object"));
  Claims c;
  for (auto [name, out] : {std::pair{"iss", &c.iss},
                           {"sub", &c.sub},
                           {"jti", &c.jti},
                           {"scope", &c.scope},
                           {"client_id", &c.client_id}}) {
    auto it = doc.FindMember(name);
    if (it == doc.MemberEnd()) continue;
    if (!it->value.IsString())
      return fail(invalid(std::string("the claim ") + name + " is not a string"));
    *out = std::string(it->value.GetString(), it->value.GetStringLength());
  }
  if (auto it = doc.FindMember("aud"); it != doc.MemberEnd()) {
    if (it->value.IsString()) {
      c.aud.emplace_back(it->value.GetString(), it->value.GetStringLength());
    } else if (it->value.IsArray()) {
      for (const auto& a : it->value.GetArray()) {
        if (!a.IsString()) return fail(invalid("the claim aud holds something not a string"));
        c.aud.emplace_back(a.GetString(), a.GetStringLength());
      }
    } else {
      return fail(invalid("the claim aud is neither a string nor a list"));
    }
  }
  for (auto [name, out] : {std::pair{"exp", &c.exp}, {"nbf", &c.nbf}, {"iat", &c.iat}}) {
    auto it = doc.FindMember(name);
    if (it == doc.MemberEnd()) continue;
    // NumericDate (RFC 7519 2): seconds, possibly with a fraction.
    if (it->value.IsInt64()) {
      *out = it->value.GetInt64();
    } else if (it->value.IsDouble()) {
      *out = static_cast<std::int64_t>(it->value.GetDouble());
    } else {
      return fail(invalid(std::string("the claim ") + name + " is not a number"));
    }
  }
  return c;
}

Result<SigningKey> SigningKey::generate() {
  EVP_PKEY* raw = EVP_EC_gen("P-256");
  if (raw == nullptr) return fail(Error::internal("cannot generate an EC P-256 key"));
  SigningKey k;
  k.key_ = own(raw);
  if (auto r = k.describe(); !r) return fail(r.error());
  return k;
}

Result<SigningKey> SigningKey::from_pem(std::string_view pem) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  EVP_PKEY* raw = bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr;
  if (raw == nullptr) return fail(Error::internal("the stored token-signing key cannot be read"));
  SigningKey k;
  k.key_ = own(raw);
  if (!EVP_PKEY_is_a(raw, "EC")) return fail(Error::internal("the token-signing key is not EC"));
  if (auto r = k.describe(); !r) return fail(r.error());
  return k;
}

Result<void> SigningKey::describe() {
  BIGNUM* x = nullptr;
  BIGNUM* y = nullptr;
  if (EVP_PKEY_get_bn_param(key_.get(), OSSL_PKEY_PARAM_EC_PUB_X, &x) != 1 ||
      EVP_PKEY_get_bn_param(key_.get(), OSSL_PKEY_PARAM_EC_PUB_Y, &y) != 1) {
    BN_free(x);
    return fail(Error::internal("the token-signing key's public point cannot be read"));
  }
  const auto xs = base64url_encode(bn_bytes(x, 32));
  const auto ys = base64url_encode(bn_bytes(y, 32));
  BN_free(x);
  BN_free(y);
  // RFC 7638 3.2: the required members, in lexicographic order, no white space.
  const std::string thumbprint_input =
      R"({"crv":"P-256","kty":"EC","x":")" + xs + R"(","y":")" + ys + R"("})";
  kid_ = base64url_encode(sha256(thumbprint_input));
  public_jwk_ = R"({"kty":"EC","crv":"P-256","x":")" + xs + R"(","y":")" + ys + R"(","kid":")" +
                kid_ + R"(","alg":"ES256","use":"sig"})";
  return {};
}

std::string SigningKey::private_pem() const {
  Bio bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key_.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1)
    return {};
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

Result<std::string> SigningKey::sign(std::string_view payload_json, std::string_view typ) const {
  std::string header = R"({"alg":"ES256","typ":)";
  append_json_string(header, typ);
  header += R"(,"kid":)";
  append_json_string(header, kid_);
  header += "}";
  std::string token = base64url_encode(header) + "." + base64url_encode(payload_json);
  MdCtx ctx(EVP_MD_CTX_new());
  std::size_t n = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key_.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &n, reinterpret_cast<const unsigned char*>(token.data()),
                     token.size()) != 1)
    return fail(Error::internal("cannot sign an access token"));
  std::string der(n, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(der.data()), &n,
                     reinterpret_cast<const unsigned char*>(token.data()), token.size()) != 1)
    return fail(Error::internal("cannot sign an access token"));
  der.resize(n);
  auto raw = ecdsa_raw(der, 32);
  if (!raw) return fail(Error::internal("cannot encode an access token's signature"));
  token += "." + base64url_encode(*raw);
  return token;
}

}  // namespace sdoh::auth
