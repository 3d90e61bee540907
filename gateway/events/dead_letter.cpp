#include "gateway/events/dead_letter.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace sdoh::events {

std::string dead_letter_data(const DeadLetter& d) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  auto str = [&w](const char* key, const std::string& v) {
    w.Key(key);
    w.String(v.c_str(), static_cast<rapidjson::SizeType>(v.size()));
  };
  auto opt = [&w, &str](const char* key, const std::optional<std::string>& v) {
    if (v) {
      str(key, *v);
    } else {
      w.Key(key);
      w.Null();
    }
  };
  w.StartObject();
  str("deadLetterId", d.dead_letter_id);
  str("receivedAt", d.received_at);
  w.Key("source");
  w.StartObject();
  str("protocol", d.protocol);
  str("sender", d.sender);
  opt("messageId", d.message_id);
  opt("messageType", d.message_type);
  w.EndObject();
  str("stage", d.stage);
  w.Key("error");
  w.StartObject();
  str("code", d.code);
  str("text", d.text.size() > 1000 ? d.text.substr(0, 1000) : d.text);
  w.EndObject();
  w.Key("location");
  if (d.where.empty()) {
    w.Null();
  } else {
    w.StartObject();
    if (!d.where.segment.empty()) {
      str("segment", d.where.segment);
      w.Key("sequence");
      w.Int(d.where.sequence > 0 ? d.where.sequence : 1);
      if (d.where.field > 0) {
        w.Key("field");
        w.Int(d.where.field);
      }
      if (d.where.component > 0) {
        w.Key("component");
        w.Int(d.where.component);
      }
    }
    if (!d.where.expression.empty()) str("expression", d.where.expression);
    w.EndObject();
  }
  w.Key("replayable");
  w.Bool(d.replayable);
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

}  // namespace sdoh::events
