#!/usr/bin/env python3
"""Writes the AHC HRSN ORU^R01 messages of tools/bench mllp --sizes (1, 4 and 32 KB) beside
this script: oru-r01-ahc-hrsn-{1,4,32}k.hl7. Run it again after changing it; the files are
committed so that build/bench/bench-mllp --message can send them by hand.

Each grows the way real screening results grow, from the shared sample
(../shared/samples/hl7v2/oru-r01-ahc-hrsn-positive.hl7), with MSH-15/MSH-16 empty (original
acknowledgment mode: the gateway answers AA after the durable commit):
- 1 KB: a short screening: PID with one identifier, the housing and food questions only.
- 4 KB: the whole instrument (every core, HITS and supplemental question of
  schemas/mappings/instruments/ahc-hrsn.json, answered) with the next-of-kin, a note on how the
  screening was taken and the screener's comment under each answer reviewed with the family.
- 32 KB: the same screening with the screener's comment under every answer (NTE after each OBX)
  and the care coordinator's follow-up narrative (NTE after the OBR), as clinics that send their
  social-work notes with the result do.
The gateway maps every OBX; it keeps NTE in the stored payload only. All content is synthetic.
"""
import json
import pathlib

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent.parent
INSTRUMENT = json.loads((ROOT / "schemas/mappings/instruments/ahc-hrsn.json").read_text())

MSH = ("MSH|^~\\&|EHR|PEDS_CLINIC_A|SDOH_GW|STATE_EC|20261120103000-0500||ORU^R01^ORU_R01|"
       "A1000001|P|2.5.1|||||||UNICODE UTF-8")
PID_SHORT = ("PID|1||MRN12345^^^PEDS_A^MR||Garcia^Sofia^^^^^L||20260501|F|||"
             "12 Elm St^^Durham^NC^27701^USA")
PID = ("PID|1||MRN12345^^^PEDS_A^MR~8675309^^^STATE_MEDICAID^MA||Garcia^Sofia^^^^^L||20260501|F||"
       "2106-3^White^CDCREC|12 Elm St^^Durham^NC^27701^USA||^PRN^PH^^1^919^5551234|||||||||"
       "2135-2^Hispanic or Latino^CDCREC")
NK1 = "NK1|1|Garcia^Maria|MTH^Mother^HL70063|12 Elm St^^Durham^NC^27701^USA|^PRN^PH^^1^919^5551234"
PV1 = "PV1|1|O|PEDS^^^PEDS_A||||1234567890^Rivera^Ana^^^Dr"
OBR = ("OBR|1|ORD123|SCR456|96777-8^Accountable health communities (AHC) health-related social "
       "needs screening (HRSN) tool^LN|||20261120100000-0500")

# The answer each question gets (index into its answer list): a positive screening for housing,
# food and utilities, negative elsewhere; 96778-6 is choose-all-that-apply.
ANSWERS = {"71802-3": [1], "96778-6": [1, 0], "88122-7": [0], "88123-5": [1], "93030-5": [1],
           "96779-4": [0], "95618-5": [0], "95617-7": [1], "95616-9": [0], "95615-1": [0],
           "76513-1": [2], "96780-2": [0], "96781-0": [2], "93159-2": [2], "96782-8": [1],
           "93038-8": [2]}

SCREENING_NOTE = ("Screening completed by the parent on the clinic tablet in the waiting room, in "
                  "English, before the well-child visit; reviewed with the family by the medical "
                  "assistant, who offered the resource list.")

COMMENTS = [
    "Parent asked for information about local programs for this domain and agreed to a call back.",
    "Answer confirmed verbally with the parent during rooming; no change to the recorded answer.",
    "Family reports this has been the situation for about three months, since a change in work hours.",
    "Parent prefers text messages for follow-up about this need, in the afternoon after school pickup.",
]

NARRATIVE = [
    "Care coordination note. Reviewed the screening results with the parent after the visit. The "
    "family lives in a rented apartment and reports mold in the bathroom and pests in the kitchen "
    "that the landlord has not addressed after two written requests. Provided the tenant rights "
    "hotline and the county code enforcement contact, and explained how a housing inspection works.",
    "Food: the family receives WIC for the younger sibling and is not enrolled in SNAP. Explained "
    "eligibility, offered to help with the online application, and gave the schedule of the food "
    "pantry two blocks from the clinic, which is open on Tuesday and Saturday mornings.",
    "Utilities: the electric company sent a disconnection notice last month. The parent has a "
    "payment plan but missed one installment. Referred to the county energy assistance program and "
    "to the utility's medical certificate process, since the child uses a nebulizer at home.",
    "Transportation and work: the family has a car and reports no missed appointments. The parent "
    "would like help finding work with daytime hours; referred to the workforce center's job "
    "readiness program, which offers child care during its sessions.",
    "Social support and stress: the parent reports feeling lonely sometimes and somewhat stressed, "
    "mostly about housing and bills. Offered the parent support group that meets at the library on "
    "Thursday evenings and the behavioral health line. The parent declined a warm handoff today.",
    "Plan: referral placed to the community care hub for housing, food and utilities, with consent "
    "recorded. The care coordinator will call the parent within two business days and document the "
    "outcome of each referral. Next screening at the next well-child visit or sooner on request.",
]


# The answers the medical assistant reviewed with the family (the 4 KB message comments on these).
REVIEWED = {"71802-3", "96778-6", "88122-7", "88123-5", "96779-4", "76513-1", "96780-2",
            "96781-0", "93159-2", "93038-8", "95617-7"}


def obx_segments(comments):
    """comments: the OBX-3 codes that get the screener's comment in an NTE after their OBX."""
    out = []
    for seq, item in enumerate(INSTRUMENT["items"], start=1):
        answers = [item["answers"][i] for i in ANSWERS[item["code"]]]
        value = "~".join(f"{a['code']}^{a['display']}^LN" for a in answers)
        time = "|||20261120100000-0500" if seq == 1 else ""
        out.append(f"OBX|{seq}|CWE|{item['code']}^{item['display']}^LN||{value}||||||F{time}")
        if item["code"] in comments:
            out.append(f"NTE|1|L|{COMMENTS[seq % len(COMMENTS)]}")
    return out


def short():
    groups = [s for s in obx_segments(()) if s.split("|")[3].split("^")[0] in
              ("71802-3", "96778-6", "88122-7", "88123-5")]
    return [MSH, PID_SHORT, PV1, OBR] + groups


def whole():
    return [MSH, PID, NK1, PV1, OBR, f"NTE|1|L|{SCREENING_NOTE}"] + obx_segments(REVIEWED)


def with_notes(target):
    head = [MSH, PID, NK1, PV1, OBR, f"NTE|1|L|{SCREENING_NOTE}"]
    tail = obx_segments({item["code"] for item in INSTRUMENT["items"]})
    notes = []
    # Whole paragraphs, in order, for as long as the message stays within the target.
    while True:
        paragraph = NARRATIVE[len(notes) % len(NARRATIVE)]
        candidate = notes + [f"NTE|{len(notes) + 2}|L|{paragraph}"]
        if len("\r".join(head + candidate + tail)) + 1 > target:
            break
        notes = candidate
    return head + notes + tail


def main():
    for name, segments in (("1k", short()), ("4k", whole()), ("32k", with_notes(32 * 1024))):
        path = HERE / f"oru-r01-ahc-hrsn-{name}.hl7"
        # One segment a line: bench-mllp turns line ends into the CR that HL7 wants on the wire.
        path.write_text("\n".join(segments) + "\n")
        print(f"{path.name}: {len(chr(13).join(segments)) + 1} bytes, {len(segments)} segments")


if __name__ == "__main__":
    main()
