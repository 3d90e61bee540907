"""The FHIR R4 API of the real gateway, driven by curl (a real HTTP client) with the shared FHIR
samples; the events are read back from Kafka with kcat and validated against schemas/events."""
import json
import os
import re
import unittest

from harness import SAMPLES, Gateway, assert_valid_events, consume

CLINIC_TOKEN = "clinic-a-token-0123456789abcdef"
AGENCY_TOKEN = "ehv-durham-token-0123456789abcdef"
OTHER_AGENCY_TOKEN = "wic-east-token-0123456789abcdef"

CLIENTS = """
fhir:
  clients:
    clinic-a: { token: { env: CLINIC_A_TOKEN }, party: peds-clinic-a }
    ehv-durham: { token: { env: EHV_TOKEN }, party: ehv-durham }
    wic-east: { token: { env: WIC_TOKEN }, party: wic-east }
parties:
  peds-clinic-a: { kind: clinic, organization: PEDS_CLINIC_A, name: "Peds Clinic A" }
  ehv-durham: { kind: agency }
  wic-east: { kind: agency }
  ei-durham: { kind: agency }
"""
ENV = {"CLINIC_A_TOKEN": CLINIC_TOKEN, "EHV_TOKEN": AGENCY_TOKEN, "WIC_TOKEN": OTHER_AGENCY_TOKEN}


def sample_path(name):
    return os.path.join(SAMPLES, "fhir", name)


class Answer:
    """An HTTP answer as curl saw it: status, headers (lower-case names) and body."""

    def __init__(self, raw):
        raw = raw.replace("\r\n", "\n")  # text mode may already have done it
        head, _, body = raw.partition("\n\n")
        # curl -i prints interim answers (100 Continue) first.
        while head.startswith("HTTP/1.1 100"):
            head, _, body = body.partition("\n\n")
        lines = head.split("\n")
        self.status = int(lines[0].split()[1])
        self.headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "%s %s %s" % (self.status, self.headers, self.body[:500])


class FhirClient:
    def __init__(self, gateway, token):
        self.gateway = gateway
        self.token = token

    def call(self, method, path, body_file=None, body=None, content_type="application/fhir+json",
             headers=()):
        args = ["-i", "-X", method, self.gateway.http_url + path,
                "-H", "Accept: application/fhir+json"]
        if self.token:
            args += ["-H", "Authorization: Bearer " + self.token]
        for h in headers:
            args += ["-H", h]
        if body_file is not None or body is not None:
            args += ["-H", "Content-Type: " + content_type]
            args += ["--data-binary", "@" + body_file if body_file else body]
        out = self.gateway.curl(*args)
        assert out.returncode == 0, out.stderr
        return Answer(out.stdout)


class FhirApi(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.gw = Gateway(config=CLIENTS, env=ENV).start()
        cls.clinic = FhirClient(cls.gw, CLINIC_TOKEN)
        cls.agency = FhirClient(cls.gw, AGENCY_TOKEN)
        cls.other_agency = FhirClient(cls.gw, OTHER_AGENCY_TOKEN)

    @classmethod
    def tearDownClass(cls):
        cls.gw.__exit__(None, None, None)

    def post_referral(self):
        r = self.clinic.call("POST", "/fhir",
                             body_file=sample_path("bundle-transaction-screening-consent-referral.json"))
        self.assertEqual(r.status, 200, r)
        bundle = r.json()
        self.assertEqual(bundle["type"], "transaction-response")
        locations = [e["response"]["location"] for e in bundle["entry"]]
        self.assertTrue(all(e["response"]["status"].startswith("201") for e in bundle["entry"]), bundle)
        task = next(l for l in locations if l.startswith("Task/"))
        return task.split("/")[1]

    def test_capability_statement(self):
        r = FhirClient(self.gw, None).call("GET", "/fhir/metadata")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.headers["content-type"].startswith("application/fhir+json"))
        cs = r.json()
        self.assertEqual(cs["resourceType"], "CapabilityStatement")
        self.assertEqual(cs["fhirVersion"], "4.0.1")
        types = {res["type"]: {i["code"] for i in res["interaction"]} for res in cs["rest"][0]["resource"]}
        self.assertEqual(set(types), {"QuestionnaireResponse", "Observation", "ServiceRequest", "Task",
                                      "Consent", "Patient", "Subscription"})
        # Agencies without Kafka subscribe to the topic of their referrals (Subscriptions Backport).
        sub = next(res for res in cs["rest"][0]["resource"] if res["type"] == "Subscription")
        self.assertEqual(sub["extension"][0]["valueCanonical"],
                         self.gw.http_url + "/fhir/SubscriptionTopic/agency-referrals")
        self.assertIn("patch", types["Task"])
        self.assertIn("search-type", types["Task"])
        self.assertIn("security", cs["rest"][0])

    def test_questionnaire_response_is_committed_then_published(self):
        body = sample_path("questionnaireresponse-hunger-vital-sign.json")
        r = self.clinic.call("POST", "/fhir/QuestionnaireResponse", body_file=body)
        self.assertEqual(r.status, 201, r)
        qr = r.json()
        self.assertRegex(r.headers["location"],
                         r"^http://127\.0\.0\.1:\d+/fhir/QuestionnaireResponse/%s/_history/1$" % re.escape(qr["id"]))
        self.assertEqual(r.headers["etag"], 'W/"1"')
        self.assertTrue(r.headers["last-modified"].endswith("GMT"))
        self.assertEqual(qr["meta"]["versionId"], "1")
        # A resend: the same answer, no second event.
        again = self.clinic.call("POST", "/fhir/QuestionnaireResponse", body_file=body)
        self.assertEqual(again.status, 201)
        self.assertEqual(again.headers["location"], r.headers["location"])
        events = [json.loads(v) for _, v in consume(self.gw.bootstrap, "sdoh.screening.v1", 1)]
        mine = [e for e in events if e["data"]["source"]["protocol"] == "fhir"
                and e["data"]["source"]["messageId"].endswith("QR-A-0001")]
        self.assertEqual(len(mine), 1, events)
        assert_valid_events([json.dumps(e) for e in mine])
        data = mine[0]["data"]
        self.assertEqual(data["instrument"]["code"], "88121-9")
        food = [d for d in data["domains"] if d["category"] == "food-insecurity"]
        self.assertEqual(food[0]["status"], "positive", data)
        self.assertEqual(data["facility"]["id"], "PEDS_CLINIC_A")
        self.assertNotIn("Sofia", json.dumps(mine[0]))

    def test_screening_observation_sample(self):
        r = self.clinic.call("POST", "/fhir/Observation",
                             body_file=sample_path("observation-screening-response-food.json"),
                             headers=["Prefer: return=OperationOutcome"])
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json()["resourceType"], "OperationOutcome")
        self.assertIn("/fhir/Observation/", r.headers["location"])
        events = [json.loads(v) for _, v in consume(self.gw.bootstrap, "sdoh.screening.v1", 1)]
        mine = [e for e in events if e["data"]["source"].get("resourceType") == "Observation"]
        self.assertEqual(len(mine), 1, [e["data"]["source"] for e in events])
        assert_valid_events([json.dumps(e) for e in mine])

    def test_bad_resources_get_precise_operation_outcomes(self):
        r = self.clinic.call("POST", "/fhir/Observation", body_file=sample_path("observation-bad-missing-code.json"))
        self.assertEqual(r.status, 400, r)
        oo = r.json()
        self.assertEqual(oo["resourceType"], "OperationOutcome")
        self.assertEqual(oo["issue"][0]["severity"], "error")
        self.assertEqual(oo["issue"][0]["expression"], ["Observation.code"])
        dead = [json.loads(v) for _, v in consume(self.gw.bootstrap, "sdoh.deadletter.v1", 1)]
        mine = [d for d in dead if d["data"]["source"]["protocol"] == "fhir"
                and d["data"]["source"]["sender"] == "clinic-a"
                and d["data"]["source"]["messageType"] == "Observation"]
        self.assertEqual(len(mine), 1, dead)
        self.assertEqual(mine[0]["data"]["stage"], "validate")
        self.assertEqual(mine[0]["data"]["location"]["expression"], "Observation.code")
        assert_valid_events([json.dumps(d) for d in dead])

        xml = self.clinic.call("POST", "/fhir/Observation", body='<Observation xmlns="http://hl7.org/fhir"/>',
                               content_type="application/fhir+xml")
        self.assertEqual(xml.status, 415, xml)
        self.assertEqual(xml.json()["resourceType"], "OperationOutcome")
        fmt = self.clinic.call("GET", "/fhir/Task?_format=xml")
        self.assertEqual(fmt.status, 406, fmt)
        big_file = os.path.join(self.gw.dir, "big.json")
        with open(big_file, "w") as f:
            f.write("{" + " " * (4 * 1024 * 1024 + 10) + "}")
        big = self.clinic.call("POST", "/fhir/Observation", body_file=big_file)
        self.assertEqual(big.status, 413, big)
        self.assertEqual(big.json()["issue"][0]["code"], "too-long")
        nobody = FhirClient(self.gw, None).call("GET", "/fhir/Task")
        self.assertEqual(nobody.status, 401, nobody)
        self.assertEqual(nobody.json()["issue"][0]["code"], "login")
        unknown = self.clinic.call("GET", "/fhir/Encounter/1")
        self.assertEqual(unknown.status, 404)
        self.assertEqual(unknown.json()["resourceType"], "OperationOutcome")

    def test_referral_lifecycle_over_fhir(self):
        task_id = self.post_referral()
        # The agency finds it by owner and status, reads it, accepts it with the shared PATCH.
        found = self.agency.call("GET", "/fhir/Task?owner=Organization/ehv-durham&status=requested")
        self.assertEqual(found.status, 200, found)
        ids = [e["resource"]["id"] for e in found.json()["entry"] if e["search"]["mode"] == "match"]
        self.assertIn(task_id, ids)
        self.assertEqual(self.other_agency.call("GET", "/fhir/Task/" + task_id).status, 404)
        # Another agency can neither find it by searching nor move it.
        for query in ("_id=" + task_id, "owner=Organization/ehv-durham", "status=requested"):
            found = self.other_agency.call("GET", "/fhir/Task?" + query)
            self.assertEqual(found.status, 200, found)
            self.assertNotIn(task_id, [e["resource"]["id"] for e in found.json().get("entry", [])], query)
        moved = self.other_agency.call("PATCH", "/fhir/Task/" + task_id, body_file=sample_path("task-patch-accepted.json"),
                                       content_type="application/json-patch+json", headers=['If-Match: W/"1"'])
        self.assertEqual(moved.status, 404, moved)
        task = self.agency.call("GET", "/fhir/Task/" + task_id)
        self.assertEqual(task.status, 200, task)
        self.assertEqual(task.headers["etag"], 'W/"1"')
        sr = self.agency.call("GET", "/fhir/" + task.json()["focus"]["reference"])
        self.assertEqual(sr.status, 200, sr)

        patch = sample_path("task-patch-accepted.json")
        accepted = self.agency.call("PATCH", "/fhir/Task/" + task_id, body_file=patch,
                                    content_type="application/json-patch+json", headers=['If-Match: W/"1"'])
        self.assertEqual(accepted.status, 200, accepted)
        self.assertEqual(accepted.json()["status"], "accepted")
        self.assertEqual(accepted.headers["etag"], 'W/"2"')
        stale = self.agency.call("PATCH", "/fhir/Task/" + task_id, body_file=patch,
                                 content_type="application/json-patch+json", headers=['If-Match: W/"1"'])
        self.assertEqual(stale.status, 412, stale)

        # PUT the whole Task: in-progress, then completed.
        current = accepted.json()
        current["status"] = "in-progress"
        current["businessStatus"] = {"text": "enrolled"}
        put = self.agency.call("PUT", "/fhir/Task/" + task_id, body=json.dumps(current),
                               headers=['If-Match: W/"2"'])
        self.assertEqual(put.status, 200, put)
        done = put.json()
        done["status"] = "completed"
        finished = self.agency.call("PUT", "/fhir/Task/" + task_id, body=json.dumps(done))
        self.assertEqual(finished.status, 200, finished)
        # Out of a final state: refused, nothing changes.
        done["status"] = "in-progress"
        refused = self.agency.call("PUT", "/fhir/Task/" + task_id, body=json.dumps(done))
        self.assertIn(refused.status, (409, 422), refused)
        self.assertEqual(refused.json()["resourceType"], "OperationOutcome")

        final = self.clinic.call("GET", "/fhir/Task/" + task_id)
        self.assertEqual(final.json()["status"], "completed")
        history = self.clinic.call("GET", "/fhir/Task/%s/_history" % task_id).json()
        self.assertEqual([e["resource"]["status"] for e in history["entry"]],
                         ["completed", "in-progress", "accepted", "requested"])

        referrals = [json.loads(v) for k, v in consume(self.gw.bootstrap, "sdoh.referral.v1", 1)]
        mine = [e for e in referrals if e["data"]["referralId"] == task_id]
        self.assertEqual(len(mine), 1)
        self.assertEqual(mine[0]["data"]["agency"]["id"], "ehv-durham")
        statuses = [json.loads(v) for k, v in consume(self.gw.bootstrap, "sdoh.referral-status.v1", 4)
                    if k == task_id]
        self.assertEqual([(s["data"]["previousStatus"], s["data"]["status"]) for s in statuses],
                         [(None, "requested"), ("requested", "accepted"), ("accepted", "in-progress"),
                          ("in-progress", "completed")])
        self.assertEqual([s["data"]["sequence"] for s in statuses], [1, 2, 3, 4])
        assert_valid_events([json.dumps(e) for e in mine + statuses])


class FhirAfterRestart(unittest.TestCase):
    def test_tasks_and_resends_survive_a_restart(self):
        gw = Gateway(config=CLIENTS, env=ENV)
        with gw:
            clinic = FhirClient(gw, CLINIC_TOKEN)
            bundle = sample_path("bundle-transaction-screening-consent-referral.json")
            first = clinic.call("POST", "/fhir", body_file=bundle)
            self.assertEqual(first.status, 200, first)
            task = next(e["response"]["location"] for e in first.json()["entry"]
                        if e["response"]["location"].startswith("Task/")).split("/")[1]
            self.assertEqual(gw.stop(), 0)
            gw.start()
            clinic = FhirClient(gw, CLINIC_TOKEN)
            read = clinic.call("GET", "/fhir/Task/" + task)
            self.assertEqual(read.status, 200, read)
            again = clinic.call("POST", "/fhir", body_file=bundle)
            self.assertEqual(again.status, 200)
            self.assertEqual(again.json(), first.json())
            referrals = [k for k, _ in consume(gw.bootstrap, "sdoh.referral.v1", 0, timeout=2)]
            # The embedded broker starts empty after a restart: the resend published nothing.
            self.assertEqual(referrals.count(task), 0)


if __name__ == "__main__":
    unittest.main()
