#!/usr/bin/env python3
"""A writer as a real app writes, for the writer-class tests.

usage: writer.py CLASS LOG NAME TRUTH STOP [LOGKEEPER STORE]

CLASS is
  A  lock-less: one O_APPEND fd, one write per line+'\n', fdatasync; polls the
     path's inode and reopens only >= 150 ms after noticing a change, then
     re-reads the whole file (a coordination daemon with a debounced watcher);
  B  one fd for life, flock(LOCK_EX) around each append, never reopens (a
     task journal);
  D  the writer protocol, by running `logkeeper append STORE LINE`.
Each writer owns the keys (NAME, 0..KEYS), sets and deletes them, and when
the file STOP exists writes its truth (the last value per key, null when
deleted, and how many lines it wrote) to TRUTH as JSON and exits.

Environment: WRITER_JOURNAL, a file to which, after each line's write
returned, "SEQ KEY OP UNIX_TIME" is appended (the visibility tests);
WRITER_PAUSE, seconds between lines (default 0.0005).
"""
import fcntl, json, os, random, subprocess, sys, time

KEYS = 12
# Seconds between lines; a longer pause (WRITER_PAUSE) leaves quiet gaps, as
# a real app's bursts do.
PAUSE = float(os.environ.get("WRITER_PAUSE", "0.0005"))
cls, log, name, truth_path, stop = sys.argv[1:6]
lk = sys.argv[6:8]
rng = random.Random(hash(name) ^ os.getpid())
truth = {}
lines = 0
seq = 0


def line_for(key):
    global seq
    seq += 1
    if rng.random() < 0.25:
        ev = {"change_type": "DEL", "item_type": name, "item": {"id": key}, "seq": seq}
        truth[str(key)] = None
    else:
        ev = {"change_type": "SET", "item_type": name, "item": {"id": key}, "seq": seq}
        truth[str(key)] = seq
    return json.dumps(ev, separators=(",", ":"))


journal = open(os.environ["WRITER_JOURNAL"], "a") if os.environ.get("WRITER_JOURNAL") else None
fd = None
if cls in "AB":
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
noticed = None
while not os.path.exists(stop):
    key = rng.randrange(KEYS)
    if cls == "A":
        try:
            st = os.stat(log)
            if (st.st_dev, st.st_ino) != (os.fstat(fd).st_dev, os.fstat(fd).st_ino):
                if noticed is None:
                    noticed = time.monotonic()
                elif time.monotonic() - noticed >= 0.15:
                    os.close(fd)
                    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                    noticed = None
                    with open(log, "rb") as f:  # rebuild state from the file
                        f.read()
        except FileNotFoundError:
            pass
        os.write(fd, (line_for(key) + "\n").encode())
        os.fdatasync(fd)
    elif cls == "B":
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, (line_for(key) + "\n").encode())
        fcntl.flock(fd, fcntl.LOCK_UN)
    elif cls == "D":
        subprocess.run([lk[0], "append", lk[1], line_for(key)], check=True)
    else:
        sys.exit("unknown writer class " + cls)
    lines += 1
    if journal:
        journal.write("%d %d %s %.6f\n" % (seq, key, "DEL" if truth[str(key)] is None else "SET", time.time()))
        journal.flush()
    time.sleep(PAUSE)
tmp = truth_path + ".tmp"
with open(tmp, "w") as f:
    json.dump({"truth": truth, "lines": lines}, f)
os.rename(tmp, truth_path)
