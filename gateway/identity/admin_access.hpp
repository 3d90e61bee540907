#pragma once
// Who is an admin: the one check for every admin-only route (/admin/*, GET /fhir/AuditEvent).
// Today an admin presents `Authorization: Bearer <admin.token>`; when admins become parties
// (SMART tokens, mTLS), this is the one place that changes.
#include <string>

#include "gateway/http/message.hpp"

namespace sdoh::identity {

class AdminAccess {
 public:
  /// `token` empty: nobody is an admin (the admin routes answer 401).
  explicit AdminAccess(std::string token) : token_(std::move(token)) {}
  /// Whether the request is an admin's (constant-time comparison of the token).
  bool allows(const http::Request& req) const;
  /// The admin's id in audit records.
  static constexpr const char* kAgent = "admin";

 private:
  std::string token_;
};

}  // namespace sdoh::identity
