"""SMART Backend Services against the real binary, with every client assertion, key and external
token minted by an independent implementation: panva/jose (npm, pinned in tests/smart/package.json,
installed by tools/setup with `npm ci`), through tests/smart/jose_tool.mjs. The refusals mirror the
Inferno SMART App Launch test kit's backend-services tests (invalid grant_type, invalid
client_assertion_type, invalid JWT: bad signature, wrong aud, exp too far out, reused jti; the
success test's response body) and go further (alg none, HS256 keyed with the public key, unknown
kid with a rate-limited JWKS refetch, nbf, scopes per interaction, external issuers)."""
import base64
import http.server
import json
import os
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request
import uuid

from harness import SOURCE_DIR, Gateway, run, wait_for
from test_fhir import FhirClient, sample_path

SMART_DIR = os.path.join(SOURCE_DIR, "tests", "smart")
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CLINIC_SCOPES = "system/Patient.c system/QuestionnaireResponse.c system/Observation.c " \
                "system/ServiceRequest.cr system/Consent.c system/Task.crs"
EXTERNAL_ISSUER = "https://login.wic-east.example.org"
EXTERNAL_AUDIENCE = "urn:sdoh-gateway:test"


def jose(request):
    """One request to the independent JOSE implementation."""
    if not os.path.isdir(os.path.join(SMART_DIR, "node_modules", "jose")):
        raise AssertionError("npm jose is not installed: run tools/setup (npm ci in tests/smart)")
    out = run(["node", os.path.join(SMART_DIR, "jose_tool.mjs")], input=json.dumps(request))
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def keygen(alg, kid):
    return jose({"op": "keygen", "alg": alg, "kid": kid})


def sign(private_jwk, header, claims):
    return jose({"op": "sign", "jwk": private_jwk, "header": header, "claims": claims})["jwt"]


class KeyServer:
    """JWKS documents over HTTP, as a client's or an issuer's server publishes them; counts GETs."""

    def __init__(self):
        self.documents = {}
        self.fetches = {}
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                owner.fetches[self.path] = owner.fetches.get(self.path, 0) + 1
                body = json.dumps(owner.documents.get(self.path, {"keys": []})).encode()
                self.send_response(200 if self.path in owner.documents else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.server.server_address[1], path)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Answer:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "%s %s" % (self.status, self.body[:400])


def post_form(url, fields, content_type="application/x-www-form-urlencoded"):
    data = urllib.parse.urlencode(fields).encode()
    req = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            return Answer(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read().decode())
    except urllib.error.HTTPError as e:
        return Answer(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read().decode())


class SmartSetup:
    """Keys and a gateway with three parties: a clinic whose EHR is a SMART client with an inline
    ES384 JWKS, an agency whose system is an RS384 client with a JWKS URL, and an agency that runs
    its own authorization server (external issuer)."""

    @classmethod
    def start(cls, extra_config=""):
        cls.keys = KeyServer()
        cls.clinic_key = keygen("ES384", "clinic-ec-1")
        cls.agency_key = keygen("RS384", "ehv-rsa-1")
        cls.issuer_key = keygen("RS256", "wic-issuer-1")
        cls.keys.documents["/ehv/jwks.json"] = {"keys": [cls.agency_key["public"]]}
        cls.keys.documents["/wic/jwks.json"] = {"keys": [cls.issuer_key["public"]]}
        config = (
            "smart: { clock_skew: 60s, jwks_refetch_interval: 3s }\n"
            "parties:\n"
            "  peds-clinic-a:\n"
            "    kind: clinic\n"
            "    organization: PEDS_CLINIC_A\n"
            "    name: \"Peds Clinic A\"\n"
            "    smart_clients:\n"
            "      peds-ehr:\n"
            "        jwks: %s\n"
            "        scopes: \"%s\"\n"
            "  ehv-durham:\n"
            "    kind: agency\n"
            "    smart_clients:\n"
            "      ehv-system:\n"
            "        jwks_url: \"%s\"\n"
            "        scopes: \"system/Task.rus system/ServiceRequest.r system/Subscription.cruds\"\n"
            "  wic-east:\n"
            "    kind: agency\n"
            "    external_issuer:\n"
            "      issuer: \"%s\"\n"
            "      jwks_url: \"%s\"\n"
            "      audience: \"%s\"\n"
            "      scopes: \"system/Task.rs\"\n" % (
                json.dumps({"keys": [cls.clinic_key["public"]]}), CLINIC_SCOPES,
                cls.keys.url("/ehv/jwks.json"), EXTERNAL_ISSUER, cls.keys.url("/wic/jwks.json"),
                EXTERNAL_AUDIENCE)) + extra_config
        cls.gw = Gateway(config=config).start()
        cls.token_url = cls.gw.http_url + "/auth/token"  # what assertions' aud names
        cls.post_url = cls.token_url  # where they are posted

    @classmethod
    def stop(cls):
        cls.gw.__exit__(None, None, None)
        cls.keys.close()

    def assertion(self, client_id="peds-ehr", key=None, header=None, **claims):
        key = key or self.clinic_key
        now = int(time.time())
        body = {"iss": client_id, "sub": client_id, "aud": self.token_url, "exp": now + 240, "iat": now,
                "jti": str(uuid.uuid4())}
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        head = {"alg": key["private"]["alg"], "kid": key["private"]["kid"], "typ": "JWT"}
        head.update(header or {})
        return sign(key["private"], head, body)

    def request_token(self, assertion, scope=CLINIC_SCOPES, **fields):
        form = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": assertion, "scope": scope}
        form.update(fields)
        return post_form(self.post_url, {k: v for k, v in form.items() if v is not None})

    def access_token(self, **kwargs):
        scope = kwargs.pop("scope", CLINIC_SCOPES)
        r = self.request_token(self.assertion(**kwargs), scope=scope)
        self.assertEqual(r.status, 200, r)
        return r.json()["access_token"]

    def assertRefused(self, answer, status, error, words):
        self.assertEqual(answer.status, status, answer)
        body = answer.json()
        self.assertEqual(body["error"], error, body)
        self.assertIn(words, body["error_description"])


class SmartBackendServices(SmartSetup, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.start()

    @classmethod
    def tearDownClass(cls):
        cls.stop()

    # --- discovery ---------------------------------------------------------------------------

    def test_smart_configuration_names_the_token_endpoint_and_what_it_takes(self):
        for path in ("/.well-known/smart-configuration", "/fhir/.well-known/smart-configuration"):
            status, body = self.gw.get(path)
            self.assertEqual(status, 200, body)
            doc = json.loads(body)
            self.assertEqual(doc["token_endpoint"], self.token_url)
            self.assertEqual(doc["grant_types_supported"], ["client_credentials"])
            self.assertEqual(doc["token_endpoint_auth_methods_supported"], ["private_key_jwt"])
            self.assertEqual(doc["token_endpoint_auth_signing_alg_values_supported"], ["RS384", "ES384"])
            self.assertIn("system/Task.cruds", doc["scopes_supported"])
            for capability in ("client-confidential-asymmetric", "permission-v2"):
                self.assertIn(capability, doc["capabilities"])

    def test_capability_statement_names_the_token_endpoint(self):
        status, body = self.gw.get("/fhir/metadata")
        self.assertEqual(status, 200)
        security = json.loads(body)["rest"][0]["security"]
        oauth = security["extension"][0]
        self.assertEqual(oauth["url"], "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris")
        self.assertEqual(oauth["extension"], [{"url": "token", "valueUri": self.token_url}])
        self.assertEqual(security["service"][0]["coding"][0]["code"], "SMART-on-FHIR")

    # --- a token granted and used ------------------------------------------------------------

    def test_a_token_is_granted_and_used_for_a_fhir_interaction(self):
        r = self.request_token(self.assertion(), scope="system/QuestionnaireResponse.c system/Task.rs "
                                                        "system/Patient.rs")
        self.assertEqual(r.status, 200, r)
        body = r.json()
        # Inferno's response body test: access_token, token_type bearer, expires_in, scope.
        self.assertEqual(body["token_type"], "bearer")
        self.assertEqual(body["expires_in"], 300)
        # Patient.rs was asked for but the clinic may only create Patients: not granted.
        self.assertEqual(body["scope"], "system/QuestionnaireResponse.c system/Task.rs")
        self.assertEqual(r.headers["cache-control"], "no-store")
        self.assertEqual(body["access_token"].count("."), 2)
        clinic = FhirClient(self.gw, body["access_token"])
        created = clinic.call("POST", "/fhir/QuestionnaireResponse",
                              body_file=sample_path("questionnaireresponse-hunger-vital-sign.json"))
        self.assertEqual(created.status, 201, created)
        self.assertEqual(clinic.call("GET", "/fhir/Task?_count=1").status, 200)

    def test_an_rs384_client_with_a_jwks_url_gets_a_token(self):
        token = self.access_token(client_id="ehv-system", key=self.agency_key, scope="system/Task.rus")
        agency = FhirClient(self.gw, token)
        self.assertEqual(agency.call("GET", "/fhir/Task").status, 200)

    # --- refusals at the token endpoint ------------------------------------------------------

    def test_a_grant_type_other_than_client_credentials_is_refused(self):
        self.assertRefused(self.request_token(self.assertion(), grant_type="authorization_code"), 400,
                           "unsupported_grant_type", "client_credentials")

    def test_a_client_assertion_type_other_than_jwt_bearer_is_refused(self):
        self.assertRefused(self.request_token(self.assertion(), client_assertion_type="not_an_assertion_type"),
                           400, "invalid_request", "client_assertion_type")

    def test_a_request_that_is_not_a_form_is_refused(self):
        r = post_form(self.token_url, {"grant_type": "client_credentials"}, content_type="application/json")
        self.assertRefused(r, 400, "invalid_request", "form")

    def test_an_expired_assertion_is_refused(self):
        now = int(time.time())
        self.assertRefused(self.request_token(self.assertion(exp=now - 120, iat=now - 300)), 401,
                           "invalid_client", "expired")

    def test_an_assertion_not_yet_valid_is_refused(self):
        self.assertRefused(self.request_token(self.assertion(nbf=int(time.time()) + 200)), 401,
                           "invalid_client", "not valid yet")

    def test_an_assertion_whose_exp_is_more_than_five_minutes_out_is_refused(self):
        self.assertRefused(self.request_token(self.assertion(exp=int(time.time()) + 600)), 401,
                           "invalid_client", "more than 300 s in the future")

    def test_a_wrong_aud_is_refused(self):
        self.assertRefused(self.request_token(self.assertion(aud=self.gw.http_url + "/fhir")), 401,
                           "invalid_client", "aud must be the token endpoint " + self.token_url)

    def test_iss_and_sub_must_both_be_a_registered_client(self):
        self.assertRefused(self.request_token(self.assertion(sub="someone-else")), 401, "invalid_client",
                           "iss and sub")
        self.assertRefused(self.request_token(self.assertion(client_id="nobody")), 401, "invalid_client",
                           "not registered")

    def test_an_unknown_kid_is_refused(self):
        other = keygen("ES384", "not-registered")
        self.assertRefused(self.request_token(self.assertion(key=other)), 401, "invalid_client",
                           "no key \"not-registered\"")

    def test_a_signature_by_another_key_under_the_registered_kid_is_refused(self):
        impostor = keygen("ES384", "clinic-ec-1")
        self.assertRefused(self.request_token(self.assertion(key=impostor)), 401, "invalid_client",
                           "does not verify")

    def test_alg_none_is_refused(self):
        now = int(time.time())
        unsigned = jose({"op": "none", "claims": {"iss": "peds-ehr", "sub": "peds-ehr", "aud": self.token_url,
                                                  "exp": now + 240, "jti": str(uuid.uuid4())}})["jwt"]
        self.assertRefused(self.request_token(unsigned), 401, "invalid_client", "alg \"none\"")

    def test_hs256_signed_with_the_public_key_is_refused(self):
        now = int(time.time())
        forged = jose({"op": "hs256", "secret": json.dumps(self.agency_key["public"]),
                       "header": {"kid": "ehv-rsa-1", "typ": "JWT"},
                       "claims": {"iss": "ehv-system", "sub": "ehv-system", "aud": self.token_url,
                                  "exp": now + 240, "jti": str(uuid.uuid4())}})["jwt"]
        self.assertRefused(self.request_token(forged, scope="system/Task.rus"), 401, "invalid_client",
                           "alg \"HS256\"")

    def test_an_rs256_assertion_is_refused_even_with_a_good_key(self):
        rs256 = keygen("RS256", "rs256")
        self.assertRefused(self.request_token(self.assertion(key=rs256)), 401, "invalid_client",
                           "RS384 or ES384")

    def test_a_replayed_jti_is_refused(self):
        assertion = self.assertion()
        self.assertEqual(self.request_token(assertion).status, 200)
        self.assertRefused(self.request_token(assertion), 401, "invalid_client", "jti was used before")

    def test_scopes_the_client_may_not_have_are_refused(self):
        self.assertRefused(self.request_token(self.assertion(), scope="system/Subscription.c patient/Task.r"),
                           400, "invalid_scope", "none of the requested scopes")

    # --- scopes per interaction --------------------------------------------------------------

    def test_a_scope_that_does_not_cover_the_interaction_is_refused_by_name(self):
        token = self.access_token(scope="system/Task.rs")
        clinic = FhirClient(self.gw, token)
        r = clinic.call("POST", "/fhir/QuestionnaireResponse",
                        body_file=sample_path("questionnaireresponse-hunger-vital-sign.json"))
        self.assertEqual(r.status, 403, r)
        issue = r.json()["issue"][0]
        self.assertEqual(issue["code"], "forbidden")
        self.assertIn("does not grant system/QuestionnaireResponse.c", issue["diagnostics"])
        # A transaction needs each entry's scope: here Consent.c is missing.
        token = self.access_token(scope="system/Patient.c system/QuestionnaireResponse.c "
                                        "system/ServiceRequest.c system/Task.c")
        r = FhirClient(self.gw, token).call(
            "POST", "/fhir", body_file=sample_path("bundle-transaction-screening-consent-referral.json"))
        self.assertEqual(r.status, 403, r)
        self.assertIn("system/Consent.c", r.json()["issue"][0]["diagnostics"])
        # An agency that may read and search but not update Tasks.
        token = self.access_token(client_id="ehv-system", key=self.agency_key, scope="system/Task.rs")
        r = FhirClient(self.gw, token).call("PATCH", "/fhir/Task/any", body="[]",
                                            content_type="application/json-patch+json")
        self.assertEqual(r.status, 403, r)
        self.assertIn("system/Task.u", r.json()["issue"][0]["diagnostics"])

    def test_an_access_token_that_was_changed_is_refused(self):
        token = self.access_token(scope="system/Task.rs")
        head, payload, sig = token.split(".")
        claims = claims_of(token)
        claims["scope"] = "system/*.cruds"
        forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
        r = FhirClient(self.gw, ".".join([head, forged, sig])).call("GET", "/fhir/Task")
        self.assertEqual(r.status, 401, r)
        self.assertEqual(FhirClient(self.gw, "not-a-token").call("GET", "/fhir/Task").status, 401)

    # --- keys fetched from a URL -------------------------------------------------------------

    def test_an_unknown_kid_fetches_the_jwks_again_rate_limited(self):
        token = self.access_token(client_id="ehv-system", key=self.agency_key, scope="system/Task.rs")
        self.assertTrue(token)
        before = self.keys.fetches["/ehv/jwks.json"]
        rotated = keygen("RS384", "ehv-rsa-2")
        # Not published yet: the gateway fetches again (once), still does not know it.
        wait_for(lambda: self.request_token(self.assertion(client_id="ehv-system", key=rotated),
                                            scope="system/Task.rs").status == 401 and
                 self.keys.fetches["/ehv/jwks.json"] == before + 1, 10, "a refetch for the unknown kid")
        refused = self.request_token(self.assertion(client_id="ehv-system", key=rotated), scope="system/Task.rs")
        self.assertRefused(refused, 401, "invalid_client", "the last fetch is too recent")
        self.assertEqual(self.keys.fetches["/ehv/jwks.json"], before + 1)
        # Published: taken once the refetch interval (3 s) has passed.
        self.keys.documents["/ehv/jwks.json"] = {"keys": [self.agency_key["public"], rotated["public"]]}
        granted = wait_for(lambda: self.request_token(self.assertion(client_id="ehv-system", key=rotated),
                                                      scope="system/Task.rs").status == 200, 10,
                           "the rotated key to be fetched")
        self.assertTrue(granted)
        self.assertEqual(self.keys.fetches["/ehv/jwks.json"], before + 2)

    # --- an external issuer ------------------------------------------------------------------

    def external_token(self, issuer=EXTERNAL_ISSUER, aud=EXTERNAL_AUDIENCE, key=None, **claims):
        now = int(time.time())
        body = {"iss": issuer, "sub": "wic-case-system", "client_id": "wic-case-system", "aud": aud,
                "exp": now + 300, "iat": now, "scope": "system/Task.rs system/Task.u"}
        body.update(claims)
        key = key or self.issuer_key
        return sign(key["private"], {"alg": key["private"]["alg"], "kid": key["private"]["kid"], "typ": "at+jwt"},
                    body)

    def test_an_external_issuers_token_is_accepted_within_the_partys_scopes(self):
        wic = FhirClient(self.gw, self.external_token())
        self.assertEqual(wic.call("GET", "/fhir/Task").status, 200)
        # The issuer granted Task.u, but the party may be granted Task.rs only.
        r = wic.call("PATCH", "/fhir/Task/any", body="[]", content_type="application/json-patch+json")
        self.assertEqual(r.status, 403, r)
        self.assertIn("system/Task.u", r.json()["issue"][0]["diagnostics"])

    def test_a_token_from_another_issuer_is_refused(self):
        stranger = keygen("RS256", "wic-issuer-1")
        for token in (self.external_token(issuer="https://login.stranger.example.org"),
                      self.external_token(key=stranger),
                      self.external_token(aud="https://another-gateway.example.org/fhir"),
                      self.external_token(exp=int(time.time()) - 300)):
            r = FhirClient(self.gw, token).call("GET", "/fhir/Task")
            self.assertEqual(r.status, 401, r)


class SmartAcrossRestarts(SmartSetup, unittest.TestCase):
    """The jtis seen and the signing key live in the store: a restarted gateway (as another on the
    same database) refuses a replayed assertion and accepts the access tokens issued before."""

    @classmethod
    def setUpClass(cls):
        # A fixed base URL: the token endpoint's URL (aud) does not move with the listener's port.
        cls.start("fhir: { base_url: \"http://gw.test/fhir\" }\n")
        cls.token_url = "http://gw.test/auth/token"

    @classmethod
    def tearDownClass(cls):
        cls.stop()

    def test_a_replay_is_refused_and_a_token_still_accepted_after_a_restart(self):
        assertion = self.assertion()
        granted = self.request_token(assertion, scope="system/Task.rs")
        self.assertEqual(granted.status, 200, granted)
        token = granted.json()["access_token"]
        self.assertEqual(claims_of(token)["aud"], "http://gw.test/fhir")
        self.assertEqual(self.gw.stop(), 0)
        self.gw.start()
        type(self).post_url = self.gw.http_url + "/auth/token"
        self.assertRefused(self.request_token(assertion, scope="system/Task.rs"), 401, "invalid_client",
                           "jti was used before")
        self.assertEqual(FhirClient(self.gw, token).call("GET", "/fhir/Task").status, 200)


def claims_of(jwt):
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


if __name__ == "__main__":
    unittest.main()
