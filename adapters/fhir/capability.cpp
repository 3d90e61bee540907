#include "adapters/fhir/capability.hpp"

#include "gateway/core/json_text.hpp"
#include "gateway/events/event.hpp"

namespace sdoh::fhir {

const std::vector<CreatableType>& creatable_types() {
  static const std::vector<CreatableType> types = {
      {"QuestionnaireResponse",
       {"http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/"
        "SDOHCC-QuestionnaireResponse"}},
      {"Observation",
       {"http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/"
        "SDOHCC-ObservationScreeningResponse"}},
      {"ServiceRequest",
       {"http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-ServiceRequest"}},
      {"Task",
       {"http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/"
        "SDOHCC-TaskForReferralManagement"}},
      {"Consent", {"http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-Consent"}},
      {"Patient", {"http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"}},
  };
  return types;
}

std::string capability_statement(const ApiOptions& options) {
  std::string out = R"({"resourceType":"CapabilityStatement","status":"active","date":)";
  append_json_string(out, events::now_rfc3339().substr(0, 10));
  out +=
      R"(,"publisher":"sdoh-gateway","kind":"instance","software":{"name":"sdoh-gateway","version":)";
  append_json_string(out, options.software_version.empty() ? "unknown" : options.software_version);
  out +=
      R"(},"implementation":{"description":"SDOH gateway: screenings, referrals and consent in; closed-loop referral Tasks out")";
  if (!options.base_url.empty()) {
    out += ",\"url\":";
    append_json_string(out, options.base_url);
  }
  out +=
      R"(},"fhirVersion":"4.0.1","format":["json","application/fhir+json","application/json"],)"
      R"("patchFormat":["application/json-patch+json"],)"
      R"("implementationGuide":["http://hl7.org/fhir/us/sdoh-clinicalcare/ImplementationGuide/hl7.fhir.us.sdoh-clinicalcare"],)"
      R"("rest":[{"mode":"server","documentation":"Every create is committed durably before it is answered; a resend (same identifier, If-None-Exist or body) gets the original answer.",)";
  if (options.token_endpoint) {
    // SMART App Launch 2.x, "Conformance": the oauth-uris extension and the SMART-on-FHIR
    // service; the full document is at [base]/.well-known/smart-configuration.
    out +=
        R"("security":{"extension":[{"url":"http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris","extension":[{"url":"token","valueUri":")";
    out += kCapabilityTokenUrl;
    out +=
        R"("}]}],"service":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/restful-security-service","code":"SMART-on-FHIR"}],"text":"SMART Backend Services: client_credentials with a private_key_jwt assertion (RS384, ES384); SMART v2 system scopes"}],"cors":false,"description":"Authorization: Bearer <access token> from the token endpoint (or a party's own authorization server), or a TLS client certificate of a configured client; see [base]/.well-known/smart-configuration."},)";
  } else if (!options.token_clients.empty() || !options.certificate_clients.empty()) {
    out +=
        R"("security":{"cors":false,"description":"Authorization: Bearer <token>, or a TLS client certificate, per configured client (fhir.clients)."},)";
  }
  out += R"("resource":[)";
  bool first = true;
  for (const auto& t : creatable_types()) {
    if (!first) out += ',';
    first = false;
    const std::string type = t.type;
    out += "{\"type\":";
    append_json_string(out, type);
    out += ",\"supportedProfile\":[";
    for (std::size_t i = 0; i < t.profiles.size(); ++i) {
      if (i > 0) out += ',';
      append_json_string(out, t.profiles[i]);
    }
    out += "],\"interaction\":[{\"code\":\"create\"}";
    if (type == "Task" || type == "ServiceRequest") out += R"(,{"code":"read"})";
    if (type == "Task") {
      out +=
          R"(,{"code":"vread"},{"code":"update"},{"code":"patch"},{"code":"history-instance"},{"code":"search-type"})";
    }
    out += "]";
    if (type == "Task") {
      out +=
          R"(,"versioning":"versioned-update","readHistory":true,"updateCreate":false,"conditionalUpdate":false)";
    } else if (type == "ServiceRequest") {
      out += R"(,"versioning":"versioned","readHistory":false)";
    } else {
      out += R"(,"versioning":"versioned")";
    }
    out +=
        R"(,"conditionalCreate":true,"conditionalRead":"not-supported","conditionalDelete":"not-supported")";
    if (type == "Task") {
      out +=
          R"(,"searchParam":[)"
          R"({"name":"_id","type":"token"},)"
          R"({"name":"focus","definition":"http://hl7.org/fhir/SearchParameter/Task-focus","type":"reference"},)"
          R"({"name":"owner","definition":"http://hl7.org/fhir/SearchParameter/Task-owner","type":"reference"},)"
          R"({"name":"status","definition":"http://hl7.org/fhir/SearchParameter/Task-status","type":"token"},)"
          R"({"name":"patient","definition":"http://hl7.org/fhir/SearchParameter/Task-patient","type":"reference"},)"
          R"({"name":"requester","definition":"http://hl7.org/fhir/SearchParameter/Task-requester","type":"reference"},)"
          R"({"name":"identifier","definition":"http://hl7.org/fhir/SearchParameter/Task-identifier","type":"token"},)"
          R"({"name":"business-status","definition":"http://hl7.org/fhir/SearchParameter/Task-business-status","type":"token"}])";
    }
    out += "}";
  }
  // Agencies' rest-hook Subscriptions to the one topic (Subscriptions R5 Backport IG, R4): the
  // topic's canonical is advertised on the Subscription resource.
  if (options.subscriptions) {
    out +=
        R"(,{"type":"Subscription","supportedProfile":["http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription"],)"
        R"("extension":[{"url":"http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/capabilitystatement-subscriptiontopic-canonical","valueCanonical":)";
    append_json_string(
        out, (options.base_url.empty() ? std::string(kCapabilityBase) : options.base_url) +
                 "/SubscriptionTopic/agency-referrals");
    out +=
        R"(}],"interaction":[{"code":"create"},{"code":"read"},{"code":"update"},{"code":"delete"},{"code":"search-type"}],"versioning":"versioned"})";
  }
  // The audit trail, for an admin (audit_api.hpp): the IHE Basic Audit Log Patterns' AuditEvent.
  if (options.audit_events) {
    out +=
        R"(,{"type":"AuditEvent","documentation":"The hash-chained audit trail; an admin only. Newest first.","interaction":[{"code":"read"},{"code":"search-type"}],)"
        R"("searchParam":[{"name":"entity","definition":"http://hl7.org/fhir/SearchParameter/AuditEvent-entity","type":"reference"},)"
        R"({"name":"agent","definition":"http://hl7.org/fhir/SearchParameter/AuditEvent-agent","type":"reference"},)"
        R"({"name":"date","definition":"http://hl7.org/fhir/SearchParameter/AuditEvent-date","type":"date"}]})";
  }
  out += R"(],"interaction":[{"code":"transaction"},{"code":"batch"}]}]})";
  return out;
}

Result<ApiOptions> api_options(const config::GatewayConfig& cfg) {
  ApiOptions o;
  o.gateway_id = cfg.gateway_id;
  o.topics = cfg.kafka.topics;
  o.base_url = cfg.fhir.base_url;
  o.max_body_bytes = cfg.http.max_body_bytes;
  o.unknown_patient = cfg.fhir.unknown_patient == "reject" ? UnknownPatientPolicy::kReject
                                                           : UnknownPatientPolicy::kLinkByReference;
  o.refer_from_screening = cfg.referrals.from_screening;
  for (const auto& p : cfg.parties) {
    if (p.kind == "clinic" || p.kind == "agency")
      o.party_clients.push_back({p.id, p.kind, p.organization, p.name, std::nullopt});
  }
  for (const auto& c : cfg.fhir.clients) {
    // Who the client is comes from its party (config.cpp checked that it names one).
    const auto* party = cfg.party(c.party);
    if (party == nullptr)
      return fail(Error::config("fhir.clients." + c.id + ".party", "names no party"));
    Client client{c.id, party->kind, party->organization, party->name, std::nullopt};
    if (c.token.configured()) {
      auto token = c.token.resolve();
      if (!token)
        return fail(Error::config("fhir.clients." + c.id + ".token", token.error().message));
      if (token->size() < 16) {
        return fail(Error::config("fhir.clients." + c.id + ".token",
                                  "the token must be at least 16 bytes"));
      }
      for (const auto& [other, known] : o.token_clients) {
        if (other == *token) {
          return fail(Error::config("fhir.clients." + c.id + ".token",
                                    "the same token as fhir.clients." + known.id));
        }
      }
      o.token_clients.emplace_back(std::move(*token), client);
    }
    if (!c.certificate_cn.empty()) o.certificate_clients.emplace_back(c.certificate_cn, client);
  }
  return o;
}

}  // namespace sdoh::fhir
