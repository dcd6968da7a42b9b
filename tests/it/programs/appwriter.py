#!/usr/bin/env python3
"""The class-A app of issue 14, as its own process: a coordination daemon
that writes each event with two write calls (the JSON, then "\\n") plus
fdatasync on one lock-less O_APPEND fd, and a watcher thread that, 150 ms
after it sees a new inode at the path, reopens the path and rebuilds its
state from the top (the latest SET per key; DEL removes the key).

usage: appwriter.py LOG NAME REPORT STOP

Each reload is checked against the app's own writes made before it
reopened: a reload "misses" when one of its keys has another value in the
rebuilt state than the app last wrote. When the file STOP exists it writes
{"reloads", "misses", "missed_keys_max", "lines", "examples"} to REPORT.
"""
import json, os, random, sys, threading, time

KEYS = 20
log, name, report_path, stop = sys.argv[1:5]
rng = random.Random(os.getpid())
mu = threading.Lock()
truth = {}  # key -> seq of its last SET, or None after a DEL
wrote_at = {}  # key -> when its last write completed (monotonic)
last_write = [0.0]
state = {"fd": os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644),
         "reloads": 0, "misses": 0, "worst": 0, "lines": 0, "examples": []}
seq = 0


def rebuild():
    """The app's start-up replay: the latest SET per own key, DEL removes."""
    seen = {}
    with open(log, "rb") as f:
        for line in f.read().split(b"\n"):
            try:
                ev = json.loads(line)
            except ValueError:
                continue  # a torn or empty line
            if not isinstance(ev, dict) or ev.get("item_type") != name:
                continue
            k = ev["item"]["id"]
            if ev["change_type"] == "DEL":
                seen.pop(k, None)
            else:
                seen[k] = ev["seq"]
    return seen


def watcher():
    noticed = None
    while not os.path.exists(stop):
        try:
            st = os.stat(log)
        except FileNotFoundError:
            time.sleep(0.01)
            continue
        with mu:
            fst = os.fstat(state["fd"])
        if (st.st_dev, st.st_ino) != (fst.st_dev, fst.st_ino):
            if noticed is None:
                noticed = time.monotonic()
            elif time.monotonic() - noticed >= 0.15:
                with mu:
                    reopened = time.monotonic()
                    os.close(state["fd"])
                    state["fd"] = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                    mine = dict(truth)  # every write made before the reopen
                    seen = rebuild()
                    wrong = [k for k, v in mine.items() if seen.get(k) != v]
                    state["reloads"] += 1
                    if wrong:
                        state["misses"] += 1
                        state["worst"] = max(state["worst"], len(wrong))
                        if len(state["examples"]) < 5:
                            k = wrong[0]
                            # Why it missed: how long before the reopen the
                            # missed write was made, and whether it was the
                            # app's last write before it.
                            w = wrote_at.get(k, 0.0)
                            state["examples"].append({
                                "key": k, "wrote": mine[k], "saw": seen.get(k),
                                "ms_before_reopen": round((reopened - w) * 1e3, 3),
                                "last_write": w == last_write[0]})
                noticed = None
        time.sleep(0.01)


t = threading.Thread(target=watcher, daemon=True)
t.start()
while not os.path.exists(stop):
    key = rng.randrange(KEYS)
    with mu:
        seq += 1
        op = "DEL" if rng.random() < 0.2 else "SET"
        ev = {"change_type": op, "item_type": name, "item": {"id": key}, "seq": seq}
        os.write(state["fd"], json.dumps(ev, separators=(",", ":")).encode())
        os.write(state["fd"], b"\n")
        os.fdatasync(state["fd"])
        truth[key] = None if op == "DEL" else seq
        wrote_at[key] = last_write[0] = time.monotonic()
        state["lines"] += 1
    time.sleep(0.01)
t.join()
out = {k: state[k] for k in ("reloads", "misses", "lines", "examples")}
out["missed_keys_max"] = state["worst"]
with open(report_path + ".tmp", "w") as f:
    json.dump(out, f)
os.rename(report_path + ".tmp", report_path)
