"""No PHI where it must never be: after the whole integration suite, every gateway's log, its last
/metrics and every screening event it committed (harness.py keeps them under
$SDOH_TEST_ARTIFACTS/phi-corpus) are scanned for every name, medical record number, street
address and phone number in the shared samples. CTest runs this after every other integration
test (the phi_corpus fixture); run by hand, it scans what the last CTest run left."""
import glob
import json
import os
import re
import unittest

from harness import ARTIFACTS, SAMPLES

# HL7 escape sequences (v2.5.1 2.7.4) that may sit inside a name.
HL7_ESCAPES = {"\\S\\": "^", "\\T\\": "&", "\\F\\": "|", "\\R\\": "~", "\\E\\": "\\"}


def hl7_unescape(text):
    for esc, char in HL7_ESCAPES.items():
        text = text.replace(esc, char)
    return text


def phone_forms(digits):
    """The ways a US phone number is written: 5551234, 555-1234, 9195551234, 919-555-1234, ..."""
    digits = re.sub(r"\D", "", digits)[-10:]
    forms = {digits[-7:], digits[-7:-4] + "-" + digits[-4:]}
    if len(digits) == 10:
        a, b, c = digits[:3], digits[3:6], digits[6:]
        forms |= {digits, "%s-%s-%s" % (a, b, c), "%s.%s.%s" % (a, b, c), "(%s) %s-%s" % (a, b, c)}
    return forms


def hl7_terms(path):
    """Names (PID-5, NK1-2, the providers of PV1-7 and PRD-2), identifiers (PID-3), street
    addresses (PID-11, NK1-4) and phone numbers (PID-13, NK1-5) of an HL7 v2 sample."""
    terms = {"name": set(), "identifier": set(), "address": set(), "phone": set()}
    with open(path, "rb") as f:
        text = f.read().decode("latin-1")
    for segment in re.split(r"[\r\n]+", text):
        fields = segment.split("|")
        kind = fields[0]

        def field(n):
            return fields[n] if len(fields) > n else ""

        def names(value):
            for rep in value.split("~"):
                parts = rep.split("^")
                # XPN: family^given^middle; XCN: id^family^given^middle
                start = 1 if parts and parts[0].isdigit() else 0
                for part in parts[start:start + 3]:
                    for piece in hl7_unescape(part).split("^"):
                        if len(piece) >= 3:
                            terms["name"].add(piece)

        def phones(value):
            for rep in value.split("~"):
                parts = rep.split("^")
                digits = "".join(parts[5:7]) if len(parts) > 6 else parts[0]
                if len(re.sub(r"\D", "", digits)) >= 7:
                    terms["phone"] |= phone_forms(digits)

        def streets(value):
            for rep in value.split("~"):
                street = rep.split("^")[0]
                if street:
                    terms["address"].add(street)

        if kind == "PID":
            for rep in field(3).split("~"):
                if rep.split("^")[0]:
                    terms["identifier"].add(rep.split("^")[0])
            names(field(5))
            streets(field(11))
            phones(field(13))
            phones(field(14))
        elif kind == "NK1":
            names(field(2))
            streets(field(4))
            phones(field(5))
        elif kind == "PV1":
            names(field(7))
        elif kind == "PRD" and "^" in field(2):
            names(field(2))
    return terms


def fhir_terms(path):
    """The same from the people in a FHIR sample (Patient, RelatedPerson, Practitioner)."""
    terms = {"name": set(), "identifier": set(), "address": set(), "phone": set()}
    with open(path) as f:
        try:
            root = json.load(f)
        except ValueError:
            return terms

    def walk(node):
        if isinstance(node, dict):
            if node.get("resourceType") in ("Patient", "RelatedPerson", "Practitioner"):
                for name in node.get("name", []):
                    for part in [name.get("family", "")] + name.get("given", []):
                        if len(part) >= 3:
                            terms["name"].add(part)
                for ident in node.get("identifier", []):
                    if ident.get("value"):
                        terms["identifier"].add(ident["value"])
                for address in node.get("address", []):
                    terms["address"] |= set(address.get("line", []))
                for telecom in node.get("telecom", []):
                    if telecom.get("system") == "phone" and telecom.get("value"):
                        terms["phone"] |= phone_forms(telecom["value"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(root)
    return terms


def sample_terms():
    terms = {"name": set(), "identifier": set(), "address": set(), "phone": set()}
    for path in sorted(glob.glob(os.path.join(SAMPLES, "hl7v2", "*.hl7"))):
        for kind, values in hl7_terms(path).items():
            terms[kind] |= values
    for path in sorted(glob.glob(os.path.join(SAMPLES, "fhir", "*.json"))):
        for kind, values in fhir_terms(path).items():
            terms[kind] |= values
    return terms


def scanner(terms):
    """One regular expression for every term. Whole words only; a number that is all digits does
    not count after ':' or '=' (a port, a byte count), where an identifier never stands."""
    patterns = []
    for kind, values in terms.items():
        for value in sorted(values, key=len, reverse=True):
            escaped = re.escape(value)
            if value.isdigit():
                patterns.append(r"(?<![:=\d])%s(?!\d)" % escaped)
            else:
                patterns.append(r"(?<![\w])%s(?![\w])" % escaped)
    return re.compile("|".join(patterns))


def scan(pattern, path):
    """(path, line number, the match) for each hit in a file."""
    hits = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            for match in pattern.finditer(line):
                hits.append((path, number, match.group(0)))
    return hits


class PhiScan(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.terms = sample_terms()
        cls.pattern = scanner(cls.terms)

    def test_the_terms_cover_every_kind_of_identifier_in_the_samples(self):
        self.assertTrue({"Garcia", "Sofia", "Maria", "Nguyen", "O'Brien", "Liam"} <= self.terms["name"])
        self.assertTrue({"MRN12345", "8675309", "44120", "C-991"} <= self.terms["identifier"])
        self.assertTrue({"12 Elm St", "400 Oak Ave"} <= self.terms["address"])
        self.assertTrue({"5551234", "919-555-1234", "9195551234"} <= self.terms["phone"])

    def test_the_scanner_finds_a_leak_and_ignores_ports(self):
        self.assertTrue(self.pattern.search('{"event":"x","patient":"Garcia^Sofia"}'))
        self.assertTrue(self.pattern.search('{"mrn":"MRN12345"}'))
        self.assertTrue(self.pattern.search('PID|1||44120^^^PEDS_B^MR'))
        self.assertTrue(self.pattern.search('"phone":"(919) 555-1234"'))
        self.assertIsNone(self.pattern.search('{"peer":"127.0.0.1:44120","bytes":50001}'))
        self.assertIsNone(self.pattern.search('{"agency":"ehv-durham","detail":"Garcias"}'))

    def test_no_sample_phi_in_any_log_metrics_or_screening_event_of_the_suite(self):
        corpus = os.path.join(ARTIFACTS or "", "phi-corpus")
        self.assertTrue(ARTIFACTS and os.path.isdir(corpus),
                        "no corpus at %s: run the integration suite through CTest first" % corpus)
        logs = glob.glob(os.path.join(corpus, "*", "gateway.log"))
        metrics = glob.glob(os.path.join(corpus, "*", "metrics.txt"))
        events = glob.glob(os.path.join(corpus, "*", "screening-events.jsonl"))
        # The suite ran: many gateways, and their screenings.
        self.assertGreater(len(logs), 30, corpus)
        self.assertGreater(len(metrics), 20, corpus)
        self.assertGreater(len(events), 10, corpus)
        event_count = sum(sum(1 for _ in open(p)) for p in events)
        self.assertGreater(event_count, 50)
        hits = []
        for path in logs + metrics + events:
            hits += scan(self.pattern, path)
        self.assertEqual(hits[:20], [], "%d PHI term(s) found, the first 20 shown" % len(hits))


if __name__ == "__main__":
    unittest.main()
