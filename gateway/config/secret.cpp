#include "gateway/config/secret.hpp"

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace sdoh::config {

std::string SecretRef::describe() const {
  switch (source) {
    case Source::kEnv:
      return "env:" + name;
    case Source::kFile:
      return "file:" + name;
    case Source::kNone:
      break;
  }
  return "none";
}

Result<std::string> SecretRef::resolve() const {
  switch (source) {
    case Source::kNone:
      return fail(Error::config("", "no secret configured"));
    case Source::kEnv: {
      const char* value =
          std::getenv(name.c_str());  // NOLINT(concurrency-mt-unsafe): start-up only
      if (value == nullptr || *value == '\0') {
        return fail(Error::config("", "environment variable " + name + " is not set or empty"));
      }
      return std::string(value);
    }
    case Source::kFile: {
      std::ifstream in(name, std::ios::binary);
      if (!in) return fail(Error::config("", "cannot read secret file " + name));
      std::ostringstream buf;
      buf << in.rdbuf();
      std::string value = buf.str();
      while (!value.empty() && (value.back() == '\n' || value.back() == '\r'))
        value.pop_back();
      if (value.empty()) return fail(Error::config("", "secret file " + name + " is empty"));
      return value;
    }
  }
  return fail(Error::internal("unknown secret source"));
}

}  // namespace sdoh::config
