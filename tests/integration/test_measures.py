"""The closed-loop measures from stored history, through the real gateway: several families of
different groups are referred over FHIR and some referrals completed by their agency; /metrics
counts each referral in the first scrape after its commit and keeps its histograms across a
restart; /ops/api/v1/referrals and /equity answer with the played scenario's figures; and
tools/report prints them (aligned text and CSV) with small groups shown as "<11"."""
import csv
import io
import json
import os
import subprocess
import sys
import unittest

from harness import SOURCE_DIR, Gateway, parse_metrics
from test_fhir import AGENCY_TOKEN, CLIENTS, CLINIC_TOKEN, ENV, FhirClient, sample_path

REPORT = os.path.join(SOURCE_DIR, "tools", "report")

# Two groups of families: 11 Black families who prefer Spanish in ZIP 277xx (shown), and 3 Asian
# families who prefer English in ZIP 276xx (fewer than 11: suppressed).
SHOWN = {"race": "2054-5", "language": "es", "zip": "27701"}
SMALL = {"race": "2028-9", "language": "en", "zip": "27601"}
REQUESTED = "sdoh_referrals{status=\"requested\",agency=\"ehv-durham\",category=\"food-insecurity\"}"


class Measures(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.gw = Gateway(config=CLIENTS, env=ENV).start()
        cls.clinic = FhirClient(cls.gw, CLINIC_TOKEN)
        cls.agency = FhirClient(cls.gw, AGENCY_TOKEN)
        cls.tasks = []

    @classmethod
    def tearDownClass(cls):
        cls.gw.__exit__(None, None, None)

    def refer(self, n, family, consent=True, answer=None):
        """The shared transaction as a new family (its own MRN, referral number, race, language
        and ZIP) referred to ehv-durham for food, with consent: released when made (without:
        held awaiting-consent). `answer`, a list, gets the Bundle the gateway answered."""
        with open(sample_path("bundle-transaction-screening-consent-referral.json")) as f:
            bundle = json.load(f)
        bundle["id"] = "tx-measures-%d" % n
        bundle["identifier"]["value"] = "BUNDLE-MEASURES-%d" % n
        mrn = "MRN-M%d" % n
        if not consent:
            bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["resourceType"] != "Consent"]
        for entry in bundle["entry"]:
            r = entry["resource"]
            if r["resourceType"] == "Patient":
                r["identifier"][0]["value"] = mrn
                entry["request"]["ifNoneExist"] = entry["request"]["ifNoneExist"].replace("MRN12345", mrn)
                r["address"][0]["postalCode"] = family["zip"]
                r["communication"][0]["language"]["coding"][0]["code"] = family["language"]
                r["extension"][0]["extension"][0]["valueCoding"]["code"] = family["race"]
            if r["resourceType"] == "QuestionnaireResponse":
                r["identifier"]["value"] = "QR-MEASURES-%d" % n
            if r["resourceType"] == "ServiceRequest":
                r["identifier"][0]["value"] = "REF-MEASURES-%d" % n
        path = os.path.join(self.gw.dir, "measures-%d.json" % n)
        with open(path, "w") as f:
            json.dump(bundle, f)
        r = self.clinic.call("POST", "/fhir", body_file=path)
        self.assertEqual(r.status, 200, r)
        if answer is not None:
            answer.append(r.json())
        return next(e["response"]["location"] for e in r.json()["entry"]
                    if e["response"]["location"].startswith("Task/")).split("/")[1]

    def move(self, task_id, status):
        r = self.agency.call("PATCH", "/fhir/Task/" + task_id,
                             body='[{"op":"replace","path":"/status","value":"%s"}]' % status,
                             content_type="application/json-patch+json")
        self.assertEqual(r.status, 200, r)

    def scrape(self):
        status, body = self.gw.get("/metrics")
        self.assertEqual(status, 200, body)
        return body

    def api(self, route):
        status, body = self.gw.get("/ops/api/v1/" + route)
        self.assertEqual(status, 200, body)
        return json.loads(body)

    def test_1_each_referral_counts_in_the_first_scrape_after_its_commit(self):
        for n in range(14):
            self.tasks.append(self.refer(n, SHOWN if n < 11 else SMALL))
            # No wait, no retry: the answer came after the commit, the scrape follows it.
            self.assertEqual(parse_metrics(self.scrape())[0].get(REQUESTED), n + 1)
        # Six of the shown group's referrals are accepted and completed by the agency.
        for task in self.tasks[:6]:
            self.move(task, "accepted")
            self.move(task, "completed")
        samples, types, helps = parse_metrics(self.scrape())
        self.assertEqual(samples[REQUESTED], 8)
        self.assertEqual(samples["sdoh_referrals{status=\"completed\",agency=\"ehv-durham\",category=\"food-insecurity\"}"], 6)
        self.assertEqual(samples["sdoh_referral_time_to_accept_seconds_count{agency=\"ehv-durham\"}"], 6)
        self.assertEqual(samples["sdoh_referral_time_to_complete_seconds_count{agency=\"ehv-durham\"}"], 6)
        # Equity series: the group of 11 is shown, the group of 3 is not there at all.
        self.assertEqual(samples["sdoh_referrals_by_group{dimension=\"race\",group=\"2054-5\"}"], 11)
        self.assertEqual(samples["sdoh_referrals_closed{outcome=\"completed\",dimension=\"race\",group=\"2054-5\"}"], 6)
        self.assertEqual(samples["sdoh_referrals_by_group{dimension=\"zip3\",group=\"277\"}"], 11)
        self.assertFalse([k for k in samples if "2028-9" in k or "\"276\"" in k or "group=\"en\"" in k])
        for name in ("sdoh_referrals", "sdoh_referrals_by_group", "sdoh_referral_time_to_accept_seconds"):
            self.assertIn("the last 395 days (measures.window)", helps[name])

    def test_2_the_api_answers_with_the_played_figures(self):
        referrals = self.api("referrals?since=30d")
        self.assertEqual(referrals["minCell"], 11)
        self.assertEqual(referrals["window"]["measureWindowDays"], 395)
        row = next(r for r in referrals["funnel"]
                   if r["agency"] == "ehv-durham" and r["category"] == "food-insecurity")
        self.assertEqual({k: row[k] for k in ("requested", "received", "accepted", "completed",
                                              "rejected", "failed", "cancelled", "open")},
                         {"requested": 14, "received": 6, "accepted": 6, "completed": 6,
                          "rejected": 0, "failed": 0, "cancelled": 0, "open": 8})
        total = next(r for r in referrals["funnel"] if r["agency"] == "*" and r["category"] == "*")
        self.assertEqual(total["requested"], 14)
        times = next(t for t in referrals["times"] if t["agency"] == "ehv-durham")
        self.assertEqual(times["toAccept"]["count"], 6)
        self.assertEqual(times["toComplete"]["count"], 6)
        self.assertIsNotNone(times["toComplete"]["medianSeconds"])
        self.assertEqual(referrals["overdue"], [])
        self.assertEqual(referrals["held"], [{"reason": "no-route", "count": 0},
                                             {"reason": "awaiting-consent", "count": 0},
                                             {"reason": "uncategorised", "count": 0}])

        equity = self.api("equity")
        self.assertEqual(equity["overall"]["referrals"], 14)
        self.assertEqual(equity["overall"]["completed"], 6)
        self.assertAlmostEqual(equity["overall"]["completionRate"], 6 / 14)
        race = next(d for d in equity["dimensions"] if d["dimension"] == "race")
        shown = next(g for g in race["groups"] if g["group"] == "2054-5")
        self.assertEqual((shown["label"], shown["referrals"], shown["closed"], shown["completed"]),
                         ("Black or African American", 11, 6, 6))
        self.assertAlmostEqual(shown["gapVsOverall"], 6 / 11 - 6 / 14)
        small = next(g for g in race["groups"] if g["group"] == "2028-9")
        self.assertTrue(small["suppressed"])
        self.assertIsNone(small["referrals"])
        self.assertEqual(race["largestGap"]["group"], "2054-5")
        zip3 = next(d for d in equity["dimensions"] if d["dimension"] == "zip3")
        self.assertEqual(sorted(g["group"] for g in zip3["groups"]), ["276", "277"])
        status, body = self.gw.get("/ops/api/v1/equity?since=soon")
        self.assertEqual(status, 400, body)
        self.assertEqual(json.loads(body)["status"], 400)

    def test_3_tools_report_prints_the_same_figures(self):
        out = subprocess.run([REPORT, "--since", "30d", "--url", self.gw.http_url],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        text = out.stdout
        self.assertIn("measure window: 395 days", text)
        funnel_line = next(l for l in text.splitlines() if l.startswith("ehv-durham") and "food-insecurity" in l)
        self.assertEqual(funnel_line.split()[2:], ["14", "6", "6", "6", "0", "0", "0", "8"])
        small = next(l for l in text.splitlines() if l.startswith("race") and "2028-9" in l)
        self.assertEqual(small.split()[2:], ["Asian"] + ["<11"] * 6)
        shown = next(l for l in text.splitlines() if l.startswith("race") and "2054-5" in l)
        self.assertIn("54.5%", shown)
        self.assertEqual(shown.split()[-2:], ["largest", "gap"])

        out = subprocess.run([REPORT, "--csv", "--only", "equity", "--url", self.gw.http_url],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        rows = list(csv.DictReader(io.StringIO(out.stdout)))
        by = {(r["dimension"], r["group"]): r for r in rows}
        self.assertEqual(by[("race", "2054-5")]["referrals"], "11")
        self.assertEqual(by[("race", "2054-5")]["completed"], "6")
        self.assertEqual(by[("race", "2028-9")]["referrals"], "<11")
        self.assertEqual(by[("overall", "*")]["referrals"], "14")

        # Found through the config's data directory, as an operator runs it.
        out = subprocess.run([REPORT, "--only", "funnel", "--config", self.gw.config_path],
                             capture_output=True, text=True, timeout=60, cwd=self.gw.dir)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("Funnel per agency and need", out.stdout)

    def test_4_histograms_are_the_same_after_a_restart(self):
        before = [l for l in self.scrape().splitlines() if l.startswith("sdoh_referral_time_to_")]
        self.assertTrue(before)
        self.assertEqual(self.gw.stop(), 0)
        self.gw.start()
        after = [l for l in self.scrape().splitlines() if l.startswith("sdoh_referral_time_to_")]
        self.assertEqual(after, before)

    def test_5_a_held_referral_enters_the_funnel_when_its_hold_is_released(self):
        answer = []
        self.refer(100, SHOWN, consent=False, answer=answer)
        referrals = self.api("referrals")
        self.assertEqual(referrals["held"][1], {"reason": "awaiting-consent", "count": 1})
        total = next(r for r in referrals["funnel"] if r["agency"] == "*" and r["category"] == "*")
        self.assertEqual(total["requested"], 14)  # not released to its agency yet

        patient = next(e["response"]["location"] for e in answer[0]["entry"]
                       if e["response"]["location"].startswith("Patient/")).split("/")[1]
        with open(sample_path("bundle-transaction-screening-consent-referral.json")) as f:
            consent = next(e["resource"] for e in json.load(f)["entry"]
                           if e["resource"]["resourceType"] == "Consent")
        consent["patient"] = {"reference": "Patient/" + patient}
        posted = self.clinic.call("POST", "/fhir/Consent", body=json.dumps(consent))
        self.assertEqual(posted.status, 201, posted)
        referrals = self.api("referrals")
        self.assertEqual(referrals["held"][1], {"reason": "awaiting-consent", "count": 0})
        total = next(r for r in referrals["funnel"] if r["agency"] == "*" and r["category"] == "*")
        self.assertEqual((total["requested"], total["open"]), (15, 9))


if __name__ == "__main__":
    unittest.main()
