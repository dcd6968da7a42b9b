#!/usr/bin/env python3
"""A change-feed writer, as the apps served by segmented stores write.

usage: feed_writer.py DIR LEDGER ROLL_BYTES KEYS PAUSE_US

- One event per line, `{"seq": N, ...}`, seq from 1, each line written with
  one write(2) (flushed at once: no user-space buffer).
- The file is `DIR/events-<20-digit seq of its first event>.jsonl`; once it
  holds ROLL_BYTES or more, the next event opens a new file. A file is never
  reopened for append.
- KEYS > 0: events carry "account": "acct-<seq % KEYS>" and every 7th is a
  CLOSE (a delete); KEYS == 0: no key.
- Every line is also appended to LEDGER (what was written, in order) after
  it reached the segment.
- The active file must never be touched by anyone else: before rolling
  away from a file (and at exit) the writer checks that the path still has
  its inode and exactly the bytes it wrote; otherwise it reports and exits 3.
- SIGTERM: finish the current line, check, print the last seq, exit 0.
"""

import os
import signal
import sys
import time

stop = False


def on_term(_sig, _frame):
    global stop
    stop = True


def main():
    d, ledger_path, roll, keys, pause_us = sys.argv[1:6]
    roll, keys, pause = int(roll), int(keys), int(pause_us) / 1e6
    signal.signal(signal.SIGTERM, on_term)
    ledger = os.open(ledger_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    fd, path, written, ino = None, None, b"", None
    seq = 0
    files = 0

    def check(path, fd, written, ino):
        st = os.stat(path)
        if st.st_ino != ino:
            sys.stderr.write(f"active file {path} was replaced (inode {ino} -> {st.st_ino})\n")
            sys.exit(3)
        with open(path, "rb") as f:
            now = f.read()
        if now != written:
            sys.stderr.write(
                f"active file {path} changed under its writer: wrote {len(written)} bytes, file has {len(now)}\n"
            )
            sys.exit(3)

    while not stop:
        seq += 1
        if fd is None or len(written) >= roll:
            new_path = os.path.join(d, "events-%020d.jsonl" % seq)
            new_fd = os.open(new_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)
            if fd is not None:
                check(path, fd, written, ino)
                os.close(fd)
            fd, path, written = new_fd, new_path, b""
            ino = os.fstat(fd).st_ino
            files += 1
        if keys > 0:
            op = "CLOSE" if seq % 7 == 0 else "SET"
            line = '{"seq":%d,"op":"%s","account":"acct-%d","balance":%d}\n' % (
                seq, op, seq % keys, (seq * 7919) % 100000)
        else:
            line = '{"seq":%d,"kind":"tick","payload":"%s"}\n' % (seq, "x" * (seq % 40))
        b = line.encode()
        n = os.write(fd, b)
        assert n == len(b)
        written += b
        os.write(ledger, b)
        if pause:
            time.sleep(pause)
    check(path, fd, written, ino)
    os.close(fd)
    print(seq, files)


main()
