"""Hostile input and overload at the listeners, with the real binary and real sockets: chunked
trailers and framing, Transfer-Encoding smuggling, slow (slowloris) HTTP requests and MLLP frames,
connection floods from one peer, and the PROXY protocol v2 from trusted load balancers. After each
attack the gateway must be alive and still answer a valid message: a FHIR POST with 201, an HL7
ORU with AA."""
import json
import os
import select
import shutil
import socket
import ssl
import struct
import tempfile
import threading
import time
import unittest

from harness import SAMPLES, SCHEMAS, Gateway, hl7_field, mllp_roundtrip, parse_metrics, run
from test_runtime import make_pki

FHIR_SAMPLE = os.path.join(SAMPLES, "fhir", "questionnaireresponse-hunger-vital-sign.json")
ORU_SAMPLE = os.path.join(SAMPLES, "hl7v2", "oru-r01-hunger-vital-sign-negative.hl7")


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def gateway(http="", mllp=""):
    """A gateway on ephemeral ports with extra keys in its http and mllp mappings."""
    gw = Gateway(base_config=(
        "data_dir: var\nschemas_dir: %s\nlog: { level: debug }\n"
        "http: { listen: \"127.0.0.1:0\"%s }\n"
        "mllp: { listen: \"127.0.0.1:0\"%s }\n"
        "kafka: { brokers: \"\", metadata_interval: 500ms }\n" % (SCHEMAS, http, mllp)))
    gw.data_dir = os.path.join(gw.dir, "var")
    return gw.start()


def wait_for(condition, timeout, what):
    """Polls `condition` until it returns something true; fails naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("not within %ss: %s" % (timeout, what))
        time.sleep(0.05)


def http_address(gw):
    host, port = gw.http_url.replace("http://", "").rsplit(":", 1)
    return host, int(port)


def connect(address, source="127.0.0.1", timeout=10):
    return socket.create_connection(address, timeout=timeout, source_address=(source, 0))


def read_response(sock, timeout=10):
    """One HTTP response from `sock`: (status, headers dict with lower-case names, body bytes).
    Status 0 when the server closed without answering."""
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return 0, {}, data
            data += chunk
    except ConnectionResetError:
        return 0, {}, data
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def closed_by_peer(sock, timeout):
    """Whether the server closes `sock` (EOF or reset) within `timeout`, reading and discarding
    whatever it sends before."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            if not sock.recv(65536):
                return True
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True
    return False


def post_request(path, body, extra_headers=""):
    return ("POST %s HTTP/1.1\r\nHost: gw\r\nContent-Type: application/fhir+json\r\n%s"
            "Content-Length: %d\r\n\r\n" % (path, extra_headers, len(body))).encode() + body


def chunked_post_head(path, transfer_encoding="chunked", extra_headers=""):
    return ("POST %s HTTP/1.1\r\nHost: gw\r\nContent-Type: application/fhir+json\r\n%s"
            "Transfer-Encoding: %s\r\n\r\n" % (path, extra_headers, transfer_encoding)).encode()


def chunk(data):
    return b"%x\r\n%s\r\n" % (len(data), data)


def vm_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


def metric(gw, key):
    status, body = gw.get("/metrics")
    assert status == 200, body
    samples, _, _ = parse_metrics(body)
    return samples.get(key, 0)


class AliveChecks:
    """Mixin: after an attack, the gateway still answers a valid FHIR POST and HL7 ORU."""

    def assert_fhir_post_created(self, source="127.0.0.1"):
        with connect(http_address(self.gw), source) as s:
            s.sendall(post_request("/fhir/QuestionnaireResponse", read_file(FHIR_SAMPLE)))
            status, _, body = read_response(s)
        self.assertEqual(status, 201, body)
        self.assertEqual(json.loads(body)["resourceType"], "QuestionnaireResponse")

    def assert_oru_accepted(self, source="127.0.0.1"):
        with connect(self.gw.mllp_address, source) as s:
            ack = mllp_roundtrip(s, read_file(ORU_SAMPLE))
        self.assertEqual(hl7_field(ack, "MSA", 1), "AA", ack)
        self.assertEqual(hl7_field(ack, "MSA", 2), "B2000017")


class HttpRequestLimits(unittest.TestCase, AliveChecks):
    """Limits on what one request may make the gateway read: trailers, chunk framing, codings,
    and time."""

    @classmethod
    def setUpClass(cls):
        cls.gw = gateway(http=", max_header_bytes: 4KiB, max_body_bytes: 64KiB, idle_timeout: 2s")

    @classmethod
    def tearDownClass(cls):
        cls.gw.__exit__(None, None, None)

    def refused(self, request, status, timeout=10):
        """Sends `request` (bytes), expects an answer with `status` after which the gateway closes
        the connection; returns the answer's body."""
        with connect(http_address(self.gw)) as s:
            s.sendall(request)
            got, headers, body = read_response(s, timeout)
            self.assertEqual(got, status, body)
            self.assertEqual(headers.get("connection"), "close")
            self.assertTrue(closed_by_peer(s, 5), "the connection stayed open after %d" % got)
        return body

    def test_a_trailer_far_over_the_header_limit_is_refused_without_being_buffered(self):
        trailer_line = b"X-Pad: " + b"a" * 1017 + b"\r\n"  # 1 KiB a line
        trailer = trailer_line * (8 * 1024)                  # 8 MiB, 2048 times max_header_bytes
        request = (chunked_post_head("/fhir/QuestionnaireResponse") + chunk(read_file(FHIR_SAMPLE))
                   + b"0\r\n" + trailer + b"\r\n")
        rss_before = vm_rss_kib(self.gw.proc.pid)
        with connect(http_address(self.gw)) as s:
            # The answer comes while the trailer is still being sent: send from a thread.
            def send_all():
                try:
                    s.sendall(request)
                except OSError:
                    pass  # the gateway closed the connection: expected
            sender = threading.Thread(target=send_all)
            sender.start()
            status, _, body = read_response(s)
            rss_during = vm_rss_kib(self.gw.proc.pid)
            sender.join(20)
            self.assertFalse(sender.is_alive(), "the gateway kept reading the trailer")
        self.assertEqual(status, 431, body)
        outcome = json.loads(body)
        self.assertEqual(outcome["resourceType"], "OperationOutcome")
        self.assertIn("http.max_header_bytes", outcome["issue"][0]["diagnostics"])
        # The 8 MiB were not held: before, RSS grew by more than twice the bytes sent.
        self.assertLess(rss_during - rss_before, len(trailer) // 1024 // 4,
                        "RSS grew from %d KiB to %d KiB" % (rss_before, rss_during))
        self.assert_fhir_post_created()

    def test_trailer_fields_count_against_the_header_limit_with_the_header(self):
        big_header = "X-Note: %s\r\n" % ("h" * 2500)
        trailer = b"X-Checksum: " + b"t" * 2500 + b"\r\n"  # each alone fits in 4 KiB, not both
        self.refused(chunked_post_head("/fhir/QuestionnaireResponse", extra_headers=big_header)
                     + chunk(read_file(FHIR_SAMPLE)) + b"0\r\n" + trailer + b"\r\n", 431)
        self.assert_fhir_post_created()

    def test_a_small_trailer_is_accepted_and_not_taken_as_a_header(self):
        with connect(http_address(self.gw)) as s:
            # A trailer naming another content type must not change how the body was read.
            s.sendall(chunked_post_head("/fhir/QuestionnaireResponse") + chunk(read_file(FHIR_SAMPLE))
                      + b"0\r\nContent-Type: text/plain\r\nX-Checksum: 1\r\n\r\n")
            status, _, body = read_response(s)
        self.assertEqual(status, 201, body)

    def test_chunk_framing_beyond_the_byte_budget_is_refused(self):
        # 1-byte chunks with 1 KiB extensions: 330 KiB of framing for 330 bytes of body, over
        # the budget of 2 x 4 KiB + 2 x 64 KiB + 64 KiB = 200 KiB.
        framing = b"".join(b"1;ext=" + b"e" * 1018 + b"\r\n" + b"x\r\n" for _ in range(330))
        body = self.refused(chunked_post_head("/fhir/QuestionnaireResponse") + framing
                            + b"0\r\n\r\n", 413)
        self.assertIn("204800 bytes", json.loads(body)["issue"][0]["diagnostics"])
        self.assert_fhir_post_created()

    def test_a_header_section_over_the_limit_is_an_operation_outcome_under_fhir(self):
        body = self.refused(("GET /fhir/metadata HTTP/1.1\r\nHost: gw\r\nX-Big: %s\r\n\r\n"
                             % ("b" * 5000)).encode(), 431)
        self.assertEqual(json.loads(body)["resourceType"], "OperationOutcome")

    def test_a_coding_before_chunked_is_not_implemented(self):
        body = self.refused(chunked_post_head("/fhir/QuestionnaireResponse", "gzip, chunked")
                            + chunk(read_file(FHIR_SAMPLE)) + b"0\r\n\r\n", 501)
        self.assertEqual(json.loads(body)["resourceType"], "OperationOutcome")
        self.assert_fhir_post_created()

    def test_chunked_twice_is_a_bad_request(self):
        body = self.refused(chunked_post_head("/fhir/QuestionnaireResponse", "chunked, chunked")
                            + chunk(read_file(FHIR_SAMPLE)) + b"0\r\n\r\n", 400)
        self.assertIn("more than once", json.loads(body)["issue"][0]["diagnostics"])

    def test_identity_leaves_the_length_unknown_and_is_a_bad_request(self):
        # Read as "no body", the chunks would become the next request (smuggling).
        self.refused(chunked_post_head("/fhir/QuestionnaireResponse", "identity")
                     + chunk(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n") + b"0\r\n\r\n", 400)

    def test_transfer_encoding_with_content_length_is_a_bad_request(self):
        body = read_file(FHIR_SAMPLE)
        for headers in ("Transfer-Encoding: identity\r\nContent-Length: %d\r\n" % len(body),
                        "Content-Length: %d\r\nTransfer-Encoding: chunked\r\n" % len(body)):
            request = ("POST /fhir/QuestionnaireResponse HTTP/1.1\r\nHost: gw\r\n"
                       "Content-Type: application/fhir+json\r\n%s\r\n" % headers).encode() + body
            with self.subTest(headers=headers):
                self.refused(request, 400)
        self.assert_fhir_post_created()

    def test_chunked_in_any_case_is_accepted(self):
        with connect(http_address(self.gw)) as s:
            s.sendall(chunked_post_head("/fhir/QuestionnaireResponse", "Chunked")
                      + chunk(read_file(FHIR_SAMPLE)) + b"0\r\n\r\n")
            status, _, body = read_response(s)
        self.assertEqual(status, 201, body)

    def trickle_until_closed(self, first, byte, limit):
        """Sends `first`, then `byte` every 0.3 s; returns the seconds from connect until the
        gateway closed the connection, failing after `limit` seconds."""
        with connect(http_address(self.gw)) as s:
            started = time.monotonic()
            s.sendall(first)
            while time.monotonic() - started < limit:
                if closed_by_peer(s, 0.3):
                    return time.monotonic() - started
                try:
                    s.sendall(byte)
                except (BrokenPipeError, ConnectionResetError):
                    return time.monotonic() - started
        self.fail("still open after %ss of trickling" % limit)

    def test_a_trickled_header_is_cut_off_at_idle_timeout(self):
        elapsed = self.trickle_until_closed(b"POST /fhir/QuestionnaireResponse HTTP/1.1\r\nX-Slow: ",
                                            b"a", limit=6)
        self.assertGreaterEqual(elapsed, 1.8)  # idle_timeout 2s for the whole request
        self.assertLess(elapsed, 3.5)
        self.assert_fhir_post_created()

    def test_a_trickled_body_is_cut_off_at_idle_timeout(self):
        elapsed = self.trickle_until_closed(post_request("/fhir/QuestionnaireResponse", b"")[:-4]
                                            .replace(b"Content-Length: 0", b"Content-Length: 60000")
                                            + b"\r\n\r\n{", b" ", limit=6)
        self.assertGreaterEqual(elapsed, 1.8)
        self.assertLess(elapsed, 3.5)
        self.assert_fhir_post_created()


class HttpConnectionFlood(unittest.TestCase, AliveChecks):
    """One peer holding idle connections cannot lock out the others (http.max_connections_per_peer)."""

    @classmethod
    def setUpClass(cls):
        cls.gw = gateway(http=", max_connections: 40, max_connections_per_peer: 8")

    @classmethod
    def tearDownClass(cls):
        cls.gw.__exit__(None, None, None)

    def test_idle_connections_from_one_peer_leave_room_for_the_others(self):
        address = http_address(self.gw)
        flood = [connect(address, source="127.0.0.2") for _ in range(45)]  # more than max_connections
        try:
            wait_for(lambda: metric(self.gw, 'sdoh_http_connections_rejected_total{reason="peer_cap"}') == 37,
                     10, "37 connections over 127.0.0.2's share refused")
            readable, _, _ = select.select(flood, [], [], 2)
            closed = [s for s in readable if closed_by_peer(s, 1)]
            self.assertEqual(len(closed), 37)
            self.assertEqual(metric(self.gw, 'sdoh_http_connections_rejected_total{reason="global_cap"}'), 0)
            self.assertEqual(self.gw.get("/healthz")[0], 200)
            self.assert_fhir_post_created()
            # The peer's admitted connections still work.
            admitted = [s for s in flood if s not in closed]
            self.assertEqual(len(admitted), 8)
            admitted[0].sendall(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n")
            self.assertEqual(read_response(admitted[0])[0], 200)
            # A closed connection gives its slot back to its peer.
            admitted.pop().close()
            def new_connection_answers():
                with connect(address, source="127.0.0.2") as s:
                    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n")
                    return read_response(s, 2)[0] == 200
            wait_for(new_connection_answers, 10, "127.0.0.2 gets a slot back")
        finally:
            for s in flood:
                s.close()
        events = wait_for(lambda: [e for e in self.gw.log_events()
                                   if e.get("event") == "http.peer_connection_limit"],
                          5, "an http.peer_connection_limit log line")
        self.assertEqual(events[0]["peer"], "127.0.0.2")
        self.assertEqual(events[0]["limit"], 8)


class MllpConnectionFlood(unittest.TestCase, AliveChecks):
    """The same for MLLP (mllp.max_connections_per_peer)."""

    @classmethod
    def setUpClass(cls):
        cls.gw = gateway(mllp=", max_connections: 20, max_connections_per_peer: 4")

    @classmethod
    def tearDownClass(cls):
        cls.gw.__exit__(None, None, None)

    def test_idle_connections_from_one_peer_leave_room_for_the_others(self):
        flood = [connect(self.gw.mllp_address, source="127.0.0.2") for _ in range(24)]
        try:
            wait_for(lambda: metric(self.gw, 'sdoh_mllp_connections_rejected_total{reason="peer_cap"}') == 20,
                     10, "20 connections over 127.0.0.2's share refused")
            readable, _, _ = select.select(flood, [], [], 2)
            self.assertEqual(len([s for s in readable if closed_by_peer(s, 1)]), 20)
            self.assertEqual(metric(self.gw, 'sdoh_mllp_connections_rejected_total{reason="global_cap"}'), 0)
            self.assert_oru_accepted()
            admitted = [s for s in flood if s not in readable]
            self.assertEqual(len(admitted), 4)
            ack = mllp_roundtrip(admitted[0], read_file(ORU_SAMPLE))
            self.assertEqual(hl7_field(ack, "MSA", 1), "AA", ack)
        finally:
            for s in flood:
                s.close()


class MllpFrameTimeout(unittest.TestCase, AliveChecks):
    """A frame trickled a byte at a time is cut off at mllp.frame_timeout, not kept forever by an
    idle timer that restarts with every byte."""

    @classmethod
    def setUpClass(cls):
        cls.gw = gateway(mllp=", frame_timeout: 2s, idle_timeout: 60s")

    @classmethod
    def tearDownClass(cls):
        cls.gw.__exit__(None, None, None)

    def trickle_until_closed(self, data, limit=8):
        """Sends `data` one byte every 0.3 s; the seconds from the first byte until the gateway
        closed the connection."""
        with connect(self.gw.mllp_address) as s:
            started = time.monotonic()
            for byte in data:
                if closed_by_peer(s, 0.3):
                    return time.monotonic() - started
                try:
                    s.sendall(bytes([byte]))
                except (BrokenPipeError, ConnectionResetError):
                    return time.monotonic() - started
                if time.monotonic() - started > limit:
                    break
        self.fail("still open after %ss of trickling" % limit)

    def test_a_trickled_frame_is_closed_at_frame_timeout(self):
        before = metric(self.gw, "sdoh_mllp_frame_timeouts_total")
        elapsed = self.trickle_until_closed(b"\x0b" + read_file(ORU_SAMPLE))
        self.assertGreaterEqual(elapsed, 1.8)
        self.assertLess(elapsed, 3.5)
        self.assertEqual(metric(self.gw, "sdoh_mllp_frame_timeouts_total"), before + 1)
        events = wait_for(lambda: [e for e in self.gw.log_events() if e.get("event") == "mllp.frame_timeout"],
                          5, "an mllp.frame_timeout log line")
        self.assertGreater(events[-1]["bytes_buffered"], 0)
        self.assertNotIn("MSH", json.dumps(events[-1]))  # no content in the log
        self.assert_oru_accepted()

    def test_trickled_bytes_outside_any_frame_are_bounded_too(self):
        before = metric(self.gw, "sdoh_mllp_frame_timeouts_total")
        elapsed = self.trickle_until_closed(b"\r\n" * 40)
        self.assertGreaterEqual(elapsed, 1.8)
        self.assertLess(elapsed, 3.5)
        self.assertEqual(metric(self.gw, "sdoh_mllp_frame_timeouts_total"), before + 1)
        self.assert_oru_accepted()

    def test_a_slow_frame_that_completes_in_time_is_answered_and_the_connection_stays(self):
        message = b"\x0b" + read_file(ORU_SAMPLE) + b"\x1c\r"
        with connect(self.gw.mllp_address) as s:
            third = len(message) // 3
            for part in (message[:third], message[third:2 * third], message[2 * third:]):
                s.sendall(part)
                time.sleep(0.5)  # 1.5 s for the frame, under frame_timeout
            data = b""
            while not data.endswith(b"\x1c\r"):
                got = s.recv(65536)
                self.assertTrue(got, "closed before the ACK")
                data += got
            self.assertEqual(hl7_field(data.decode(), "MSA", 1), "AA")
            # A connection waiting between frames is idle, not mid-frame: past frame_timeout it
            # still takes the next message.
            time.sleep(2.5)
            ack = mllp_roundtrip(s, read_file(ORU_SAMPLE))
            self.assertEqual(hl7_field(ack, "MSA", 1), "AA", ack)


class MllpCertificateShares(unittest.TestCase):
    """Under mTLS a connection counts against its verified certificate's share, not its address's:
    two clinics behind one NAT address with certificates of their own do not share one share."""

    @classmethod
    def setUpClass(cls):
        cls.pki = tempfile.mkdtemp(prefix="sdoh-pki-")
        make_pki(cls.pki)  # ca, server (password-protected key), client "clinic-a-interface"
        for args in (["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=clinic-b-interface",
                      "-keyout", "client-b.key", "-out", "client-b.csr"],
                     ["x509", "-req", "-in", "client-b.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                      "-CAcreateserial", "-days", "2", "-out", "client-b.crt"]):
            out = run(["openssl", *args], cwd=cls.pki)
            assert out.returncode == 0, out.stderr
        p = lambda name: os.path.join(cls.pki, name)
        tls = ("tls: { cert_file: %s, key_file: %s, key_password: { env: SDOH_IT_TLS_KEY_PASSWORD }, "
               "client_ca_file: %s, require_client_cert: true }" % (p("server.crt"), p("server.key"), p("ca.crt")))
        cls.gw = Gateway(base_config=(
            "data_dir: var\nschemas_dir: %s\nlog: { level: debug }\n"
            "http: { listen: \"127.0.0.1:0\" }\n"
            "mllp: { listen: \"127.0.0.1:0\", max_connections_per_peer: 1, %s }\n"
            "kafka: { brokers: \"\", metadata_interval: 500ms }\n" % (SCHEMAS, tls)),
            env={"SDOH_IT_TLS_KEY_PASSWORD": "tls-key-pass"})
        cls.gw.data_dir = os.path.join(cls.gw.dir, "var")
        cls.gw.start()

    @classmethod
    def tearDownClass(cls):
        cls.gw.__exit__(None, None, None)
        shutil.rmtree(cls.pki, ignore_errors=True)

    def open_tls(self, client):
        ctx = ssl.create_default_context(cafile=os.path.join(self.pki, "ca.crt"))
        ctx.load_cert_chain(os.path.join(self.pki, client + ".crt"), os.path.join(self.pki, client + ".key"))
        raw = connect(self.gw.mllp_address)
        return ctx.wrap_socket(raw, server_hostname="127.0.0.1")

    def test_each_certificate_has_its_own_share(self):
        opened = []
        try:
            for client in ("client", "client-b"):  # same address, share of 1 each
                opened.append(self.open_tls(client))
                ack = mllp_roundtrip(opened[-1], read_file(ORU_SAMPLE))
                self.assertEqual(hl7_field(ack, "MSA", 1), "AA", (client, ack))
            opened.append(self.open_tls("client"))  # a second connection of clinic A
            try:
                ack = mllp_roundtrip(opened[-1], read_file(ORU_SAMPLE))
            except (ssl.SSLError, OSError):
                ack = ""
            self.assertEqual(ack, "", "a second connection of one certificate was answered")
            self.assertEqual(metric(self.gw, 'sdoh_mllp_connections_rejected_total{reason="peer_cap"}'), 1)
            events = wait_for(lambda: [e for e in self.gw.log_events()
                                       if e.get("event") == "mllp.peer_connection_limit"],
                              5, "an mllp.peer_connection_limit log line")
            self.assertEqual(events[-1]["peer"], "cert:/CN=clinic-a-interface")
        finally:
            for s in opened:
                s.close()


def proxy_v2(source, source_port, destination=("127.0.0.1", 443), command=0x21):
    """A PROXY protocol v2 header for TCP over IPv4 (HAProxy spec 2.2), written out by hand."""
    signature = b"\r\n\r\n\x00\r\nQUIT\n"
    addresses = (socket.inet_aton(source) + socket.inet_aton(destination[0])
                 + struct.pack("!HH", source_port, destination[1]))
    return signature + bytes([command, 0x11]) + struct.pack("!H", len(addresses)) + addresses


PROXY_LOCAL = b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x20, 0x00, 0x00, 0x00])
PROXY = "127.0.0.3"  # the trusted load balancer; the harness itself connects from 127.0.0.1


class ProxyProtocol(unittest.TestCase, AliveChecks):
    """A trusted load balancer names the real client in a PROXY v2 header; the per-peer cap and
    the logs follow the client it names."""

    @classmethod
    def setUpClass(cls):
        cls.gw = gateway(http=', max_connections_per_peer: 2, trusted_proxies: ["%s/32"]' % PROXY,
                         mllp=', trusted_proxies: ["%s"]' % PROXY)

    @classmethod
    def tearDownClass(cls):
        cls.gw.__exit__(None, None, None)

    def via_proxy(self, header):
        s = connect(http_address(self.gw), source=PROXY)
        s.sendall(header)
        return s

    def healthz(self, s):
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n")
        return read_response(s)[0]

    def test_the_per_peer_cap_counts_the_clients_the_proxy_names(self):
        opened = []
        try:
            for port in (40001, 40002):
                opened.append(self.via_proxy(proxy_v2("203.0.113.7", port)))
                self.assertEqual(self.healthz(opened[-1]), 200)
            opened.append(self.via_proxy(proxy_v2("198.51.100.9", 40003)))
            self.assertEqual(self.healthz(opened[-1]), 200)  # another client behind the same proxy
            opened.append(self.via_proxy(proxy_v2("203.0.113.7", 40004)))
            self.assertTrue(closed_by_peer(opened[-1], 5), "a third connection of 203.0.113.7 was kept")
            self.assertEqual(metric(self.gw, 'sdoh_http_connections_rejected_total{reason="peer_cap"}'), 1)
            events = wait_for(lambda: [e for e in self.gw.log_events()
                                       if e.get("event") == "http.peer_connection_limit"],
                              5, "an http.peer_connection_limit log line")
            self.assertEqual(events[-1]["peer"], "203.0.113.7")
            self.assert_fhir_post_created()
        finally:
            for s in opened:
                s.close()

    def test_a_local_header_is_the_proxys_own_health_check(self):
        with self.via_proxy(PROXY_LOCAL) as s:
            self.assertEqual(self.healthz(s), 200)

    def test_a_trusted_proxy_without_a_header_is_closed(self):
        before = metric(self.gw, 'sdoh_http_connections_rejected_total{reason="proxy_header"}')
        with self.via_proxy(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n") as s:
            status, _, _ = read_response(s)
        self.assertEqual(status, 0, "a request without PROXY header from the proxy was answered")
        self.assertEqual(metric(self.gw, 'sdoh_http_connections_rejected_total{reason="proxy_header"}'),
                         before + 1)
        self.assert_fhir_post_created()

    def test_a_header_from_an_untrusted_peer_is_bad_input(self):
        with connect(http_address(self.gw)) as s:  # 127.0.0.1: not a trusted proxy
            s.sendall(proxy_v2("203.0.113.7", 40005) + b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n")
            status, _, body = read_response(s)
        self.assertEqual(status, 400, body)
        self.assert_fhir_post_created()

    def test_mllp_through_the_proxy_answers_and_logs_the_real_client(self):
        with connect(self.gw.mllp_address, source=PROXY) as s:
            s.sendall(proxy_v2("203.0.113.7", 40100))
            ack = mllp_roundtrip(s, read_file(ORU_SAMPLE))
        self.assertEqual(hl7_field(ack, "MSA", 1), "AA", ack)
        wait_for(lambda: any(e.get("event") == "mllp.connected" and e.get("peer") == "203.0.113.7:40100"
                             for e in self.gw.log_events()), 5, "mllp.connected names 203.0.113.7:40100")
        self.assert_oru_accepted()


if __name__ == "__main__":
    unittest.main()


class RateLimits(unittest.TestCase):
    """A token bucket per party (rate_limits): over HTTP 429 with Retry-After, over MLLP AE with
    ERR-3 207 and nothing stored, so the sender's resend after the wait is accepted. Another
    party's bucket is untouched."""

    @classmethod
    def setUpClass(cls):
        cls.gw = Gateway(base_config=(
            "data_dir: var\nschemas_dir: %s\n"
            "http: { listen: \"127.0.0.1:0\" }\nmllp: { listen: \"127.0.0.1:0\" }\n"
            "kafka: { brokers: \"\", metadata_interval: 500ms }\n"
            "rate_limits: { per_second: 1, burst: 3 }\n" % SCHEMAS))
        cls.gw.data_dir = os.path.join(cls.gw.dir, "var")
        cls.gw.start()

    @classmethod
    def tearDownClass(cls):
        cls.gw.__exit__(None, None, None)

    def oru(self, control_id):
        sample = read_file(ORU_SAMPLE)
        return sample.replace(hl7_field(sample.decode(), "MSH", 10).encode(), control_id.encode(), 1)

    def test_mllp_over_the_limit_gets_ae_207_and_the_resend_after_the_wait_is_accepted(self):
        time.sleep(3.1)  # a full bucket whatever ran before
        with connect(self.gw.mllp_address) as s:
            for i in range(3):
                ack = mllp_roundtrip(s, self.oru("RL-%d" % i))
                self.assertEqual(hl7_field(ack, "MSA", 1), "AA", ack)
            ack = mllp_roundtrip(s, self.oru("RL-3"))
            self.assertEqual(hl7_field(ack, "MSA", 1), "AE", ack)
            self.assertTrue(hl7_field(ack, "ERR", 3).startswith("207"), ack)
            self.assertIn("rate limit", ack)
            # Another sender (here: another source address) has its own bucket.
            with connect(self.gw.mllp_address, source="127.0.0.2") as other:
                ack = mllp_roundtrip(other, self.oru("RL-OTHER"))
                self.assertEqual(hl7_field(ack, "MSA", 1), "AA", ack)
            time.sleep(1.2)
            ack = mllp_roundtrip(s, self.oru("RL-3"))
            self.assertEqual(hl7_field(ack, "MSA", 1), "AA", ack)  # not a duplicate: never stored

    def test_http_over_the_limit_gets_429_with_retry_after_and_an_operation_outcome(self):
        time.sleep(3.1)
        host, port = http_address(self.gw)
        answers = []
        for _ in range(4):
            with connect((host, port)) as s:
                s.sendall(b"GET /fhir/Task HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
                answers.append(read_response(s))
        self.assertEqual([a[0] for a in answers[:3]], [200, 200, 200])
        status, headers, body = answers[3]
        self.assertEqual(status, 429)
        self.assertEqual(headers.get("retry-after"), "1")
        outcome = json.loads(body)
        self.assertEqual(outcome["resourceType"], "OperationOutcome")
        self.assertEqual(outcome["issue"][0]["code"], "throttled")
