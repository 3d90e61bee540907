"""Which pages a SQLite store's transactions write, by table and index.

Usage: /usr/bin/python3 tools/benchmarks/wal_pages.py DB [--last N]

Run it against the store of a gateway under load (tools/bench mllp or fhir with --keep print the
path; or the gateway's store.path). It reads the write-ahead log's frames since its last
restart, groups them by transaction (a frame with a commit mark ends one) and names each frame's
page by the table or index that owns it (SQLite's dbstat, read from the live database). Every frame is one page written to the WAL, then copied again to the database by the
next checkpoint: the cost of a durable commit grows with them, and a page in a randomly keyed
index is one more page per row inserted.
"""

import argparse
import collections
import os
import sqlite3
import struct
import sys

WAL_HEADER = struct.Struct(">8I")
FRAME_HEADER = struct.Struct(">6I")


def wal_transactions(wal):
    """The page numbers of each committed transaction in the WAL's current generation."""
    if len(wal) < WAL_HEADER.size:
        return 0, []
    _magic, _version, page_size, _seq, salt1, salt2, _c1, _c2 = WAL_HEADER.unpack_from(wal)
    transactions, current = [], []
    offset = WAL_HEADER.size
    while offset + FRAME_HEADER.size + page_size <= len(wal):
        page, commit_size, s1, s2, _k1, _k2 = FRAME_HEADER.unpack_from(wal, offset)
        if (s1, s2) != (salt1, salt2):
            break  # frames of an earlier generation: the WAL restarted before them
        current.append(page)
        if commit_size:
            transactions.append(current)
            current = []
        offset += FRAME_HEADER.size + page_size
    return page_size, transactions


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("db", help="the store's database file (its -wal beside it)")
    parser.add_argument("--last", type=int, default=2000, help="transactions to count (newest)")
    args = parser.parse_args()
    if not os.path.exists(args.db + "-wal"):
        sys.exit("wal_pages: no write-ahead log beside %s (is the gateway running?)" % args.db)
    # The log as it is now (frames are only appended until it restarts), then each page's owner
    # from one read snapshot of the live database, which sees every frame read.
    with open(args.db + "-wal", "rb") as f:
        page_size, transactions = wal_transactions(f.read())
    owner = {}
    conn = sqlite3.connect("file:%s?mode=ro" % args.db, uri=True)
    try:
        for name, page in conn.execute("SELECT name, pageno FROM dbstat"):
            owner[page] = name
    finally:
        conn.close()
    transactions = transactions[-args.last:]
    if not transactions:
        sys.exit("wal_pages: no committed transaction in the log yet")
    counts = collections.Counter()
    for t in transactions:
        for page in t:
            counts["(database header)" if page == 1 else owner.get(page, "(freed since)")] += 1
    n = len(transactions)
    frames = sum(counts.values())
    print("%d transactions, %.1f pages of %d bytes each (%.1f KiB written to the WAL, and again "
          "by the checkpoint)" % (n, frames / n, page_size, frames / n * page_size / 1024))
    print("(a transaction is one group commit: /metrics' sdoh_store_commit_batch_size gives the "
          "commits per group)")
    print("%-44s %s" % ("table or index", "pages per transaction"))
    for name, count in counts.most_common():
        print("%-44s %6.2f" % (name, count / n))


if __name__ == "__main__":
    main()
