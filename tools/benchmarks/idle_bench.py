#!/usr/bin/python3
"""Memory per idle MLLP connection (tools/bench idle).

Against a running gateway (tools/bench starts it with mllp.max_connections and
max_connections_per_peer above N): reads the gateway's VmRSS from /proc/PID/status, opens N
MLLP connections that send nothing, reads VmRSS again once the gateway counts all N open
(sdoh_mllp_connections_open), then has every connection send one ORU^R01 and wait for its AA
before it goes idle again (buffers a message left behind show here), and reads VmRSS a third
time. While the N are held, a fresh connection must still get its AA. Prints the RSS per idle
connection in KB after connect and after one message; exits non-zero when the gateway did not
hold the N connections or did not answer.

The messages themselves grow memory too, whatever connection they come on (the store's caches;
dev mode's embedded broker keeps every event in memory). A control sends as many messages again
on one connection, and the per-connection figure after one message is also given without that.

Before the baseline, one connection sends --warmup messages and closes, so that what the first
messages allocate once (store caches, the pipeline's pools) is not counted per connection.
"""
import argparse
import os
import re
import resource
import selectors
import socket
import sys
import time
import urllib.request

SB, EB, CR = b"\x0b", b"\x1c", b"\x0d"
SAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared",
                      "samples", "hl7v2", "oru-r01-ahc-hrsn-positive.hl7")


def message_template(path):
    """The sample ORU^R01 as segments split around MSH-10, MSH-15/16 emptied: original
    acknowledgment mode, so the answer is AA after the durable commit (as bench-mllp sends)."""
    with open(path, "rb") as f:
        text = f.read().replace(b"\r\n", b"\r").replace(b"\n", b"\r").strip(b"\r") + b"\r"
    segments = text.split(b"\r")
    msh = segments[0].split(b"|")
    msh[14:16] = [b"", b""]  # MSH-15, MSH-16 (MSH-1 is the separator: field n is index n - 1)
    before, after = b"|".join(msh[:9]) + b"|", b"|" + b"|".join(msh[10:])
    rest = b"\r".join(segments[1:])
    return lambda control_id: SB + before + control_id.encode() + after + b"\r" + rest + EB + CR


def ack_code(frame):
    """MSA-1 of an ACK frame's content, or None."""
    for segment in frame.split(b"\r"):
        if segment.startswith(b"MSA"):
            fields = segment.split(segment[3:4])
            return fields[1].decode(errors="replace") if len(fields) > 1 else None
    return None


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for pid %d" % pid)


def open_gauge(metrics_url):
    with urllib.request.urlopen(metrics_url, timeout=5) as r:
        text = r.read().decode()
    m = re.search(r"^sdoh_mllp_connections_open(?:\{\})? (\S+)$", text, re.M)
    return int(float(m.group(1))) if m else -1


def wait_open(metrics_url, want, timeout):
    deadline = time.monotonic() + timeout
    seen = open_gauge(metrics_url)
    while seen != want and time.monotonic() < deadline:
        time.sleep(0.05)
        seen = open_gauge(metrics_url)
    return seen


def settle_rss(pid, seconds=1.0):
    """VmRSS once it stopped moving (the gateway finishes what the last step set off)."""
    last = rss_kb(pid)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        time.sleep(seconds)
        now = rss_kb(pid)
        if abs(now - last) < 64:
            return now
        last = now
    return last


def exchange(address, frame, timeout=10.0):
    """One message on a fresh connection: (MSA-1, seconds)."""
    start = time.monotonic()
    with socket.create_connection(address, timeout=timeout) as s:
        s.sendall(frame)
        data = b""
        while EB not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    content = data[data.find(SB) + 1:data.find(EB)] if EB in data else b""
    return ack_code(content), time.monotonic() - start


def connect_all(address, n, metrics_url, batch):
    """N connected sockets, opened `batch` at a time; each batch waits until the gateway counts
    it open (the listen backlog is finite)."""
    socks = []
    while len(socks) < n:
        for _ in range(min(batch, n - len(socks))):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.connect(address)
            socks.append(s)
        seen = wait_open(metrics_url, len(socks), 30)
        if seen != len(socks):
            raise RuntimeError("the gateway counts %d open MLLP connections, expected %d"
                               % (seen, len(socks)))
    return socks


def one_message_each(socks, make_frame, window, timeout):
    """Every socket sends one message and reads its ACK, at most `window` in flight.
    Returns the number of non-AA answers (or errors)."""
    sel = selectors.DefaultSelector()
    pending = list(enumerate(socks))
    pending.reverse()
    buffers, failures, in_flight = {}, 0, 0
    run = "%05d" % (os.getpid() % 100000)
    deadline = time.monotonic() + timeout
    for s in socks:
        s.setblocking(False)
    while pending or in_flight:
        while pending and in_flight < window:
            i, s = pending.pop()
            s.setblocking(True)
            s.sendall(make_frame("I%s%08d" % (run, i)))
            s.setblocking(False)
            buffers[s] = b""
            sel.register(s, selectors.EVENT_READ)
            in_flight += 1
        if time.monotonic() > deadline:
            raise RuntimeError("%d ACKs missing after %ss" % (in_flight + len(pending), timeout))
        for key, _ in sel.select(timeout=1.0):
            s = key.fileobj
            chunk = s.recv(65536)
            buffers[s] += chunk
            data = buffers[s]
            if not chunk or EB in data:
                if not chunk or ack_code(data[data.find(SB) + 1:data.find(EB)]) != "AA":
                    failures += 1
                sel.unregister(s)
                del buffers[s]
                in_flight -= 1
    sel.close()
    return failures


def roundtrip(s, frame, what):
    """Sends one frame on `s` and reads until its ACK's end block: the bytes read."""
    s.sendall(frame)
    data = b""
    while EB not in data:
        chunk = s.recv(65536)
        if not chunk:
            sys.exit("idle_bench: the gateway closed the %s connection" % what)
        data += chunk
    return data

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pid", type=int, required=True, help="the gateway's process id")
    p.add_argument("--mllp", required=True, help="host:port of the gateway's MLLP listener")
    p.add_argument("--metrics", required=True, help="the gateway's /metrics URL")
    p.add_argument("--connections", type=int, default=10000)
    p.add_argument("--batch", type=int, default=500, help="connections opened at a time")
    p.add_argument("--window", type=int, default=32, help="messages in flight at a time")
    p.add_argument("--warmup", type=int, default=200, help="messages sent before the baseline")
    p.add_argument("--message", default=SAMPLE, help="ER7 file to send (MSH-10 is replaced)")
    args = p.parse_args()
    host, port = args.mllp.rsplit(":", 1)
    address = (host, int(port))
    make_frame = message_template(args.message)

    # This client holds N sockets too: its soft descriptor limit up to the hard one.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < args.connections + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    if soft < args.connections + 64:
        sys.exit("idle_bench: RLIMIT_NOFILE hard limit %d is below %d connections" %
                 (hard, args.connections))

    with socket.create_connection(address, timeout=10) as s:
        for i in range(args.warmup):
            roundtrip(s, make_frame("W%05d%08d" % (os.getpid() % 100000, i)), "warm-up")
    wait_open(args.metrics, 0, 10)
    base = settle_rss(args.pid)
    print("gateway pid %d, VmRSS before: %d KB" % (args.pid, base))

    started = time.monotonic()
    socks = connect_all(address, args.connections, args.metrics, args.batch)
    took = time.monotonic() - started
    held = settle_rss(args.pid)
    per_idle = (held - base) / args.connections
    print("%d idle connections open in %.1f s: VmRSS %d KB, +%d KB, %.2f KB per connection"
          % (args.connections, took, held, held - base, per_idle))

    started = time.monotonic()
    failures = one_message_each(socks, make_frame, args.window, 600)
    took = time.monotonic() - started
    after = settle_rss(args.pid)
    per_used = (after - base) / args.connections
    print("each sent one ORU^R01 and got its ACK (%d not AA) in %.1f s, idle again: VmRSS %d KB, "
          "+%d KB, %.2f KB per connection" % (failures, took, after, after - base, per_used))

    # The control: as many messages again, all on one connection. What they add (the store's
    # caches, dev mode's embedded broker keeping every event in memory) grows with messages, not
    # connections, and is taken out of the per-connection figure below.
    started = time.monotonic()
    with socket.create_connection(address, timeout=30) as s:
        for i in range(args.connections):
            data = roundtrip(s, make_frame("C%05d%08d" % (os.getpid() % 100000, i)), "control")
            if ack_code(data[data.find(SB) + 1:data.find(EB)]) != "AA":
                failures += 1
    control = settle_rss(args.pid)
    per_message = (control - after) / args.connections
    per_used_net = per_used - per_message
    print("control: %d more messages on one connection in %.1f s: VmRSS %d KB, +%d KB, %.2f KB "
          "per message (not per connection)" % (args.connections, time.monotonic() - started,
                                                control, control - after, per_message))

    code, seconds = exchange(address, make_frame("F%05d" % (os.getpid() % 100000)))
    print("a fresh connection while %d are held: %s in %.1f ms"
          % (args.connections, code, seconds * 1000))
    still = wait_open(args.metrics, args.connections, 10)
    for s in socks:
        s.close()
    released = wait_open(args.metrics, 0, 60)
    print("the gateway counted %d still open before they closed, %d after; VmRSS after close "
          "%d KB" % (still, released, settle_rss(args.pid)))
    print("RSS per idle connection: %.2f KB after connect, %.2f KB after one message, %.2f KB "
          "without what the messages themselves added (target <= 16)"
          % (per_idle, per_used, per_used_net))
    ok = failures == 0 and code == "AA" and still == args.connections
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
