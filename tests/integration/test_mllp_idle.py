"""Idle MLLP connections are cheap to hold (issue 16: at most 16 KB each, 10,000 of them).

The gateway starts with a soft descriptor limit below the connections the test holds, as under a
shell's `ulimit -n`: it must raise its soft limit to the hard one or refuse connections at accept.
It then holds some hundreds of connections that send nothing, and the growth of its resident
memory per connection is bounded, before and after each connection has sent one ORU^R01 and
had its answer. While they are held, a fresh connection still gets its AA.

The full-size figure (10,000 connections) is `tools/bench idle`; this is its regression guard.
"""
import os
import re
import resource
import socket
import time
import unittest

from harness import Gateway, SAMPLES, hl7_field, mllp_roundtrip, wait_for

HELD = 600
# The soft limit the gateway starts with: below HELD, so only a raised limit holds them all.
STARTING_SOFT_LIMIT = 512
# The bound. Measured here (2026-12-07): 6.5 KB after connect, 10.4 KB after one message;
# with the 16 KB read buffer of before, 18.4 KB after connect. At 10,000 connections
# (tools/bench idle): 7.9 KB and 9.4 KB, before 19.8 KB and 22.7 KB.
MAX_KB_PER_CONNECTION = 16
ORU = os.path.join(SAMPLES, "hl7v2", "oru-r01-ahc-hrsn-positive.hl7")


def oru(control_id):
    """The sample ORU^R01 with its own MSH-10, so each is a new message (no resend), and MSH-15/16
    emptied: original acknowledgment mode, answered AA after the durable commit."""
    with open(ORU, "rb") as f:
        text = f.read().replace(b"\r\n", b"\r").replace(b"\n", b"\r")
    text = text.replace(b"|2.5.1|||AL|NE|", b"|2.5.1|||||", 1)
    return text.replace(b"|A1000001|", b"|" + control_id.encode() + b"|", 1)


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M).group(1))


def settled_rss_kb(pid):
    """VmRSS once two readings half a second apart agree within 64 KB (work under way done)."""
    last = rss_kb(pid)
    for _ in range(20):
        time.sleep(0.5)
        now = rss_kb(pid)
        if abs(now - last) < 64:
            return now
        last = now
    return last


def open_files_limits(pid):
    """(soft, hard) 'Max open files' of a process, from /proc/PID/limits."""
    with open("/proc/%d/limits" % pid) as f:
        m = re.search(r"^Max open files\s+(\S+)\s+(\S+)", f.read(), re.M)
    return m.group(1), m.group(2)


class MllpIdleConnections(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.own_limits = resource.getrlimit(resource.RLIMIT_NOFILE)
        soft, hard = cls.own_limits
        if hard != resource.RLIM_INFINITY and hard < HELD + 200:
            raise AssertionError("this test needs a hard RLIMIT_NOFILE of %d, not %d" % (HELD + 200, hard))
        cap = HELD + 100
        cls.gw = Gateway(mllp_config=", max_connections: %d, max_connections_per_peer: %d" % (cap, cap),
                         config="rate_limits: { per_second: 0 }\n")
        # The gateway inherits this soft limit; the test takes its own back once it has started.
        resource.setrlimit(resource.RLIMIT_NOFILE, (STARTING_SOFT_LIMIT, hard))
        try:
            cls.gw.start()
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        cls.pid = cls.gw.proc.pid

    @classmethod
    def tearDownClass(cls):
        cls.gw.__exit__(None, None, None)
        resource.setrlimit(resource.RLIMIT_NOFILE, cls.own_limits)

    def test_the_gateway_raises_its_descriptor_soft_limit_to_the_hard_limit(self):
        soft, hard = open_files_limits(self.pid)
        self.assertEqual(soft, hard)
        events = [e for e in self.gw.log_events() if e.get("event") == "gateway.descriptor_limit"]
        self.assertEqual(len(events), 1, self.gw.log()[-2000:])
        self.assertEqual(events[0]["started_with"], STARTING_SOFT_LIMIT)
        self.assertEqual(str(events[0]["soft"]), soft)

    def test_idle_connections_are_held_in_bounded_memory_and_a_fresh_one_is_answered(self):
        # What the first messages allocate once (store caches, pools) is not per connection.
        with socket.create_connection(self.gw.mllp_address, timeout=10) as s:
            for i in range(1000):
                ack = mllp_roundtrip(s, oru("WARM%06d" % i))
                self.assertEqual(hl7_field(ack, "MSA", 1), "AA", ack)
        wait_for(lambda: self.gw.metric("sdoh_mllp_connections_open") == 0, 10, "the warm-up closed")
        # A control: what HELD more messages cost on one connection (their events held in memory
        # by the embedded broker, heap that grows), so that only what each connection holds is
        # counted against it below.
        start = settled_rss_kb(self.pid)
        with socket.create_connection(self.gw.mllp_address, timeout=10) as s:
            for i in range(HELD):
                ack = mllp_roundtrip(s, oru("CTRL%06d" % i))
                self.assertEqual(hl7_field(ack, "MSA", 1), "AA", ack)
        wait_for(lambda: self.gw.metric("sdoh_mllp_connections_open") == 0, 10, "the control closed")
        before = settled_rss_kb(self.pid)
        messages_cost = max(0, before - start)

        held = []
        try:
            for _ in range(HELD):
                held.append(socket.create_connection(self.gw.mllp_address, timeout=10))
            wait_for(lambda: self.gw.metric("sdoh_mllp_connections_open") == HELD, 30,
                     "%d connections open" % HELD)
            idle = settled_rss_kb(self.pid)
            per_connection = (idle - before) / HELD
            self.assertLessEqual(per_connection, MAX_KB_PER_CONNECTION,
                                 "VmRSS %d KB -> %d KB for %d idle connections" % (before, idle, HELD))

            for i, s in enumerate(held):
                ack = mllp_roundtrip(s, oru("IDLE%06d" % i))
                self.assertEqual(hl7_field(ack, "MSA", 1), "AA", ack)
            used = settled_rss_kb(self.pid)
            per_connection = (used - before - messages_cost) / HELD
            self.assertLessEqual(per_connection, MAX_KB_PER_CONNECTION,
                                 "VmRSS %d KB -> %d KB for %d connections idle after one message, "
                                 "less %d KB that as many messages on one connection cost"
                                 % (before, used, HELD, messages_cost))

            with socket.create_connection(self.gw.mllp_address, timeout=10) as fresh:
                ack = mllp_roundtrip(fresh, oru("FRESH00001"))
            self.assertEqual(hl7_field(ack, "MSA", 1), "AA", ack)
            self.assertEqual(self.gw.metric('sdoh_mllp_connections_rejected_total{reason="global_cap"}'), 0)
        finally:
            for s in held:
                s.close()
        wait_for(lambda: self.gw.metric("sdoh_mllp_connections_open") == 0, 30, "every connection closed")


if __name__ == "__main__":
    unittest.main()
