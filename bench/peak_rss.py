#!/usr/bin/env python3
"""Run a pcopy command and report the peak RSS (VmHWM) of the supervisor and
of its largest worker, sampled from /proc while it runs (VmHWM is a
high-water mark, so a late sample is the peak)."""
import os
import subprocess
import sys
import time


def hwm(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid):
    out = []
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{t}/children") as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
sup = work = 0
while p.poll() is None:
    sup = max(sup, hwm(p.pid))
    for c in children(p.pid):
        work = max(work, hwm(c))
    time.sleep(0.02)
print(f"supervisor_kib={sup} worker_kib={work} exit={p.returncode}")
