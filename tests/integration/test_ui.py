"""The dashboard (/ui) in real headless Debian chromium, against the real gateway.

The gateway runs with an ops and an admin token; a scenario is played through its real
interfaces: families of different race, ethnicity and language referred over FHIR, most
accepted and some completed by the agency (FHIR PATCH), one left past its agency's short SLA
(overdue), one group too small to show (suppressed under measures.min_cell, 11 by default), and
HL7 dead letters: an RRI^I12 that came before its referral (replayable once the REF^I12 is
in) and an ORU^R01 without an OBX code (never replayable as it is). tests/browser/ui_check.mjs
(playwright-core driving /usr/bin/chromium, axe-core) then opens every page and checks it; its
screenshots go to <build>/test-artifacts/ui/.

UiOperations covers sign-in, deliveries (with the replay from the page), senders and the
ops roles; UiMeasures the overview, referrals and equity pages, which read the referral
measures (/ops/api/v1/referrals and /ops/api/v1/equity)."""
import json
import os
import subprocess
import sys
import unittest

from harness import SAMPLES, SCHEMAS, SOURCE_DIR, Gateway, hl7_field, mllp_exchange, wait_for
from test_fhir import CLINIC_TOKEN, AGENCY_TOKEN, FhirClient, sample_path

OPS_TOKEN = "ops-token-0123456789abcdef"
ADMIN_TOKEN = "admin-token-0123456789abcdef"
BROWSER_DIR = os.path.join(SOURCE_DIR, "tests", "browser")
ARTIFACTS = os.environ.get("SDOH_ARTIFACTS_DIR",
                           os.path.join(SOURCE_DIR, "build", "test-artifacts", "ui"))

# The families: (race code, race display, ethnicity code, ethnicity display, language, referrals,
# completed). 2028-9 has fewer referrals than min_cell (11): its cells are suppressed.
FAMILIES = [
    ("2106-3", "White", "2186-5", "Not Hispanic or Latino", "en", 12, 9),
    ("2054-5", "Black or African American", "2186-5", "Not Hispanic or Latino", "en", 12, 4),
    ("2106-3", "White", "2135-2", "Hispanic or Latino", "es", 1, 0),
    ("2028-9", "Asian", "2186-5", "Not Hispanic or Latino", "vi", 2, 1),
]


def config(routing_file):
    return (
        "fhir:\n"
        "  clients:\n"
        "    clinic-a: { token: { env: CLINIC_A_TOKEN }, party: peds-clinic-a }\n"
        "    ehv-durham: { token: { env: EHV_TOKEN }, party: ehv-durham }\n"
        "parties:\n"
        "  peds-clinic-a: { kind: clinic, organization: PEDS_CLINIC_A, name: \"Peds Clinic A\" }\n"
        "  ehv-durham: { kind: agency, mllp_senders: [\"AGENCY^EHV-DURHAM\"] }\n"
        "ops: { token: { env: SDOH_OPS_TOKEN } }\n"
        "admin: { token: { env: SDOH_ADMIN_TOKEN } }\n"
        "referrals: { routing_file: %s, default_sla: 3s, overdue_check_interval: 500ms }\n" % routing_file)


class UiScenario:
    """Starts the gateway and plays the scenario once per test class."""

    @classmethod
    def setUpClass(cls):
        os.makedirs(ARTIFACTS, exist_ok=True)
        cls.gw = Gateway(config="", env={"CLINIC_A_TOKEN": CLINIC_TOKEN, "EHV_TOKEN": AGENCY_TOKEN,
                                         "SDOH_OPS_TOKEN": OPS_TOKEN, "SDOH_ADMIN_TOKEN": ADMIN_TOKEN})
        # WIC Durham has no SLA of its own, so the test's short default (3 s) is its: its referral
        # is the scenario's overdue one.
        with open(os.path.join(SCHEMAS, "routing", "routing.json")) as f:
            routing = json.load(f)
        for agency in routing["agencies"]:
            if agency["id"] == "wic-durham":
                agency.pop("sla", None)
        routing_file = os.path.join(cls.gw.dir, "routing.json")
        with open(routing_file, "w") as f:
            json.dump(routing, f)
        with open(cls.gw.config_path, "a") as f:
            f.write(config(routing_file))
        cls.gw.start()
        cls.clinic = FhirClient(cls.gw, CLINIC_TOKEN)
        cls.agency = FhirClient(cls.gw, AGENCY_TOKEN)
        try:
            cls.play()
        except BaseException:
            # tearDownClass does not run after a failed setUpClass: stop the gateway here.
            cls.gw.__exit__(*sys.exc_info())
            raise

    @classmethod
    def tearDownClass(cls):
        cls.gw.__exit__(None, None, None)

    @classmethod
    def refer(cls, n, race, race_display, ethnicity, ethnicity_display, language, agency="ehv-durham"):
        """One family's screening, consent (any agency) and referral to `agency`; the Task id."""
        with open(sample_path("bundle-transaction-screening-consent-referral.json")) as f:
            bundle = json.load(f)
        bundle["id"] = "tx-ui-%d" % n
        bundle["identifier"]["value"] = "BUNDLE-UI-%d" % n
        mrn = "MRN-UI-%d" % n
        for entry in bundle["entry"]:
            r = entry["resource"]
            if r["resourceType"] == "Patient":
                for ident in r["identifier"]:
                    ident["value"] = mrn
                entry["request"]["ifNoneExist"] = entry["request"]["ifNoneExist"].replace("MRN12345", mrn)
                for ext in r["extension"]:
                    coding = ext["extension"][0]["valueCoding"]
                    if ext["url"].endswith("us-core-race"):
                        coding["code"], coding["display"] = race, race_display
                    else:
                        coding["code"], coding["display"] = ethnicity, ethnicity_display
                r["communication"][0]["language"]["coding"][0]["code"] = language
            if r["resourceType"] == "QuestionnaireResponse":
                r["identifier"]["value"] = "QR-UI-%d" % n
            if r["resourceType"] == "Consent":
                r["provision"].pop("actor", None)
            if r["resourceType"] == "ServiceRequest":
                r["identifier"][0]["value"] = "REF-UI-%d" % n
                if agency != "ehv-durham":
                    r.pop("performer", None)
            if r["resourceType"] == "Task":
                r["owner"] = {"reference": "Organization/" + agency}
        path = os.path.join(cls.gw.dir, "ui-%d.json" % n)
        with open(path, "w") as f:
            json.dump(bundle, f)
        answer = cls.clinic.call("POST", "/fhir", body_file=path)
        assert answer.status == 200, answer
        return next(e["response"]["location"] for e in answer.json()["entry"]
                    if e["response"]["location"].startswith("Task/")).split("/")[1]

    @classmethod
    def move(cls, task, status, business_status):
        patch = [{"op": "replace", "path": "/status", "value": status},
                 {"op": "add", "path": "/businessStatus", "value": {"text": business_status}}]
        answer = cls.agency.call("PATCH", "/fhir/Task/" + task, body=json.dumps(patch),
                                 content_type="application/json-patch+json")
        assert answer.status == 200, answer

    @classmethod
    def play(cls):
        n = 0
        for race, race_display, ethnicity, ethnicity_display, language, referrals, completed in FAMILIES:
            for i in range(referrals):
                n += 1
                task = cls.refer(n, race, race_display, ethnicity, ethnicity_display, language)
                cls.move(task, "accepted", "family-contacted")
                if i < completed:
                    cls.move(task, "completed", "enrolled")
        # The overdue one: WIC never answers within its 3 s.
        n += 1
        cls.overdue_task = cls.refer(n, "2106-3", "White", "2186-5", "Not Hispanic or Latino", "en",
                                     agency="wic-durham")
        # HL7: an agency's RRI^I12 that came before its referral (AE 204, a dead letter), then the
        # REF^I12 it answers; and an ORU^R01 without an OBX code (AE, a dead letter for good).
        with open(os.path.join(SAMPLES, "hl7v2", "rri-i12-accepted.hl7"), "rb") as f:
            rri = f.read()
        with open(os.path.join(SAMPLES, "hl7v2", "ref-i12-home-visiting.hl7"), "rb") as f:
            ref = f.read()
        with open(os.path.join(SAMPLES, "hl7v2", "bad-missing-obx-code.hl7"), "rb") as f:
            bad = f.read()
        early, referral, oru = mllp_exchange(cls.gw.mllp_address, [rri, ref, bad])
        assert hl7_field(early, "MSA", 1) == "AE" and hl7_field(early, "ERR", 3).startswith("204"), early
        assert hl7_field(referral, "MSA", 1) in ("AA", "CA"), referral
        assert hl7_field(oru, "MSA", 1) == "AE", oru
        cls.gw.wait_drained()
        status, body = cls.gw.request("GET", "/ops/api/v1/dead-letters?limit=10",
                                      headers={"Authorization": "Bearer " + OPS_TOKEN})
        assert status == 200, body
        letters = json.loads(body)["deadLetters"]
        cls.early_rri = next(d["deadLetterId"] for d in letters if d["source"]["messageType"].startswith("RRI"))
        cls.bad_oru = next(d["deadLetterId"] for d in letters if d["source"]["messageType"].startswith("ORU"))
        # The WIC referral passes its SLA (3 s) and the overdue check (every 500 ms) sees it.
        wait_for(lambda: any(e.get("event") == "referrals.overdue" and e.get("referral") == cls.overdue_task
                             for e in cls.gw.log_events()), 15, "the WIC referral to turn overdue")

    def browser(self, suite):
        """Runs the browser checks of `suite`; their output is printed, their result asserted."""
        expect = {"overdueReferral": self.overdue_task, "replayableDeadLetter": self.early_rri,
                  "badDeadLetter": self.bad_oru, "suppressedRace": "2028-9"}
        env = dict(os.environ, SDOH_UI_URL=self.gw.http_url, SDOH_OPS_TOKEN=OPS_TOKEN,
                   SDOH_ADMIN_TOKEN=ADMIN_TOKEN, SDOH_ARTIFACTS_DIR=ARTIFACTS,
                   SDOH_UI_SUITE=suite, SDOH_UI_EXPECT=json.dumps(expect))
        out = subprocess.run(["node", "--test", "--test-reporter=spec", "ui_check.mjs"],
                             cwd=BROWSER_DIR, env=env, capture_output=True, text=True, timeout=300)
        print(out.stdout[-20000:], out.stderr[-5000:])
        self.assertEqual(out.returncode, 0, "browser checks failed (output above); gateway log tail:\n"
                         + self.gw.log()[-3000:])


class UiOperations(UiScenario, unittest.TestCase):
    def test_sign_in_deliveries_replay_and_senders_in_chromium(self):
        self.browser("operations")
        # The replay from the page went through the gateway: the RRI now found its referral.
        status, body = self.gw.request("GET", "/ops/api/v1/dead-letters/" + self.early_rri,
                                       headers={"Authorization": "Bearer " + OPS_TOKEN})
        self.assertEqual(status, 200, body)
        self.assertIsNotNone(json.loads(body)["replayedAt"])


class UiMeasures(UiScenario, unittest.TestCase):
    def test_overview_referrals_and_equity_in_chromium(self):
        self.browser("measures")


if __name__ == "__main__":
    unittest.main()
