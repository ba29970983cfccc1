#!/usr/bin/env python3
"""How fast a worker death is noticed and repaired.

Needs a build with fault injection (cargo build --features failpoints), used
here only to slow each file to 20 ms so the run lasts. Copies 200 files with
2 workers, SIGKILLs one worker once 5 files are in, and reads the
supervisor's timestamped log (-v) for the death and the replacement.
Usage: python3 bench/worker_death.py [path/to/pcopy]
"""
import os
os.makedirs("/tmp/ds", exist_ok=True)
for i in range(1, 201):
    with open(f"/tmp/ds/f{i}", "w") as f:
        f.write(str(i))
import re, signal, subprocess, sys, time, datetime
exe = sys.argv[1] if len(sys.argv) > 1 else "target/debug/pcopy"
res = []
for run in range(5):
    subprocess.run(["rm", "-rf", "/tmp/dd", "/tmp/death.log"])
    p = subprocess.Popen([exe, "-j", "2", "-v", "--log-file", "/tmp/death.log", "/tmp/ds", "/tmp/dd"],
                         env=dict(os.environ, FAILPOINTS="worker::before_task=sleep(20)"),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not (os.path.isdir("/tmp/dd") and len(os.listdir("/tmp/dd")) >= 5):
        time.sleep(0.005)
    kids = []
    for t in os.listdir(f"/proc/{p.pid}/task"):
        kids += open(f"/proc/{p.pid}/task/{t}/children").read().split()
    victim = int(kids[0])
    t_kill = time.time()
    os.kill(victim, signal.SIGKILL)
    p.wait()
    log = open("/tmp/death.log").read()
    def ts(line):
        # The log's stamps are UTC to the millisecond: 2026-11-25T23:46:15.510Z.
        return datetime.datetime.fromisoformat(line.split(" ")[0].rstrip("Z") + "+00:00").timestamp()
    lines = log.splitlines()
    died = next(l for l in lines if f"worker {victim} was killed" in l)
    idx = lines.index(died)
    started = next(l for l in lines[idx:] if "started as pid" in l)
    res.append(((ts(died) - t_kill) * 1000, (ts(started) - t_kill) * 1000, p.returncode))
for r in res:
    print(f"detected {r[0]:.2f} ms, replacement connected and initialised {r[1]:.2f} ms after SIGKILL, exit {r[2]}")
