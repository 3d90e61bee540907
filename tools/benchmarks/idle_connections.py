#!/usr/bin/env python3
"""What an idle connection costs a server: opens N TCP connections to it that send nothing,
waits until the server holds them (its open file descriptors grew by N, or 5 s), and prints the
growth of its resident set divided by N. Used by tools/bench mllp for the gateway and for each
reference, before any load (so the heap has no freed memory to hide the growth in).
  tools/benchmarks/idle_connections.py PID HOST PORT N
Prints one line: "idle <N> <held> <rss_before_kb> <rss_after_kb> <bytes_per_connection>".
"""
import os
import resource
import socket
import sys
import time


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def main():
    pid, host, port, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 64), hard))
    before_fds, before = open_fds(pid), rss_kb(pid)
    sockets = []
    try:
        for _ in range(n):
            sockets.append(socket.create_connection((host, port), timeout=5))
        deadline = time.monotonic() + 5
        while open_fds(pid) - before_fds < n and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # let the accepted connections reach their first read
        held = open_fds(pid) - before_fds
        after = rss_kb(pid)
    finally:
        for s in sockets:
            s.close()
    print("idle %d %d %d %d %.0f" % (n, held, before, after, (after - before) * 1024 / n))


if __name__ == "__main__":
    main()
