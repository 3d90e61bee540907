#include "gateway/events/kafka_binding.hpp"

#include <map>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "gateway/core/json_parse.hpp"

namespace sdoh::events {

namespace {

constexpr std::string_view kPrefix = "ce_";

}  // namespace

bool is_binary_mode(const KafkaHeaders& headers) {
  for (const auto& [name, value] : headers) {
    if (name == "ce_specversion") return true;
  }
  return false;
}

Result<std::string> structured_from_binary(const KafkaHeaders& headers, std::string_view value) {
  std::map<std::string, std::string> attributes;
  for (const auto& [name, text] : headers) {
    std::string attribute;
    if (name.starts_with(kPrefix)) {
      attribute = name.substr(kPrefix.size());
    } else if (name == "content-type") {
      attribute = "datacontenttype";
    } else {
      continue;  // not an attribute (a producer's own header)
    }
    if (attribute.empty() || attribute == "data") {
      auto e = Error::invalid("the header " + name + " names no CloudEvents attribute");
      e.where.expression = name;
      return fail(std::move(e));
    }
    attributes[attribute] = text;
  }
  rapidjson::Document data;
  if (auto parsed = sdoh::json::parse(data, value); !parsed) {
    auto e = Error::invalid("the record's value (the event's data, binary mode) is not JSON: " +
                            parsed.error().message);
    e.where.expression = "data";
    return fail(std::move(e));
  }
  rapidjson::StringBuffer buf;
  // Headers are bytes: the writer checks each value is UTF-8, as the binding requires.
  rapidjson::Writer<rapidjson::StringBuffer, rapidjson::UTF8<>, rapidjson::UTF8<>,
                    rapidjson::CrtAllocator, rapidjson::kWriteValidateEncodingFlag>
      w(buf);
  w.StartObject();
  for (const auto& [name, text] : attributes) {
    w.Key(name.c_str(), static_cast<rapidjson::SizeType>(name.size()));
    if (!w.String(text.c_str(), static_cast<rapidjson::SizeType>(text.size()))) {
      auto e = Error::invalid("the header for the attribute " + name + " is not UTF-8");
      e.where.expression = name;
      return fail(std::move(e));
    }
  }
  w.Key("data");
  data.Accept(w);
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

}  // namespace sdoh::events
