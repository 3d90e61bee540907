"""tools/demo, as a new user runs it: one command, a clinic and two agencies (one on Kafka, one
on a FHIR Subscription), every referral closed, in under a minute."""
import os
import subprocess
import time
import unittest

from harness import SOURCE_DIR

DEMO = os.path.join(SOURCE_DIR, "tools", "demo")


class Demo(unittest.TestCase):
    def test_the_demo_closes_both_referrals_in_under_a_minute(self):
        started = time.monotonic()
        env = dict(os.environ)
        out = subprocess.run([DEMO, "--no-build"], capture_output=True, text=True, timeout=90, env=env)
        took = time.monotonic() - started
        print("\n" + out.stdout, flush=True)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertLess(took, 60)
        lines = out.stdout.splitlines()
        # Each agency moved its referral to completed, by its own protocol.
        self.assertTrue(any("ei-durham" in l and "-> completed (enrolled), by agency ei-durham" in l
                            for l in lines), out.stdout)
        self.assertTrue(any("ehv-durham" in l and "-> completed (enrolled), by agency ehv-durham" in l
                            for l in lines), out.stdout)
        self.assertIn("ei-durham (Kafka) received referral", out.stdout)
        self.assertIn("ehv-durham (FHIR) was notified of referral", out.stdout)
        self.assertIn("both referrals closed", lines[-1])


if __name__ == "__main__":
    unittest.main()
