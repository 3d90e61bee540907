#pragma once
// A self-signed certificate made at test time (OpenSSL 3), written as PEM files: for TLS tests
// that need a server certificate and a CA file to trust it, without key material in the repo.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

namespace sdoh::test_support {

struct TestCertificate {
  std::string cert_file;  ///< PEM certificate, also usable as the CA file that trusts it
  std::string key_file;   ///< PEM private key (unencrypted)
};

/// A P-256 certificate for `subject_alt_names` (OpenSSL syntax: "DNS:localhost,IP:127.0.0.1"),
/// valid from an hour ago for a day, written to `dir`/`name`.{crt,key}. Throws on failure.
inline TestCertificate make_test_certificate(const std::filesystem::path& dir,
                                             const std::string& name,
                                             const std::string& subject_alt_names) {
  auto check = [](bool ok, const char* what) {
    if (!ok) throw std::runtime_error(std::string("test certificate: ") + what);
  };
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"), &EVP_PKEY_free);
  check(key != nullptr, "key generation");
  std::unique_ptr<X509, decltype(&X509_free)> cert(X509_new(), &X509_free);
  check(cert != nullptr, "X509_new");
  check(X509_set_version(cert.get(), 2) == 1, "version");
  check(ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1) == 1, "serial");
  check(X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) != nullptr, "notBefore");
  check(X509_gmtime_adj(X509_getm_notAfter(cert.get()), 86400) != nullptr, "notAfter");
  check(X509_set_pubkey(cert.get(), key.get()) == 1, "public key");
  X509_NAME* subject = X509_get_subject_name(cert.get());
  check(X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>(name.c_str()), -1, -1,
                                   0) == 1,
        "subject");
  check(X509_set_issuer_name(cert.get(), subject) == 1, "issuer");
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
  for (const auto& [nid, value] :
       {std::pair<int, std::string>{NID_subject_alt_name, subject_alt_names},
        {NID_basic_constraints, "critical,CA:TRUE"},
        {NID_key_usage, "critical,digitalSignature,keyCertSign"}}) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
    check(ext != nullptr, "extension");
    check(X509_add_ext(cert.get(), ext, -1) == 1, "add extension");
    X509_EXTENSION_free(ext);
  }
  check(X509_sign(cert.get(), key.get(), EVP_sha256()) > 0, "sign");
  TestCertificate out{(dir / (name + ".crt")).string(), (dir / (name + ".key")).string()};
  std::unique_ptr<FILE, decltype(&std::fclose)> cf(std::fopen(out.cert_file.c_str(), "w"),
                                                   &std::fclose);
  check(cf != nullptr && PEM_write_X509(cf.get(), cert.get()) == 1, "write certificate");
  std::unique_ptr<FILE, decltype(&std::fclose)> kf(std::fopen(out.key_file.c_str(), "w"),
                                                   &std::fclose);
  check(kf != nullptr &&
            PEM_write_PrivateKey(kf.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1,
        "write key");
  return out;
}

}  // namespace sdoh::test_support
