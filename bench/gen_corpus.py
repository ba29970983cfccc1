#!/usr/bin/env python3
"""Deterministic benchmark corpora for bench/run.sh.

small DIR N   : N files, log-normal sizes around a 4 KiB median (1 MiB max),
                ~100 files per directory, nested two levels.
empty DIR N   : N zero-byte files, ~1000 per directory (memory scaling).
large DIR K MB: K incompressible files of MB MiB each.
"""
import math
import os
import random
import sys


def small(root, n, per_dir=100, empty=False):
    rng = random.Random(42)
    os.makedirs(root, exist_ok=True)
    block = rng.randbytes(1 << 20)
    for i in range(n):
        d = os.path.join(root, f"d{i // (per_dir * 10):03}", f"s{(i // per_dir) % 10:02}")
        if i % per_dir == 0:
            os.makedirs(d, exist_ok=True)
        if empty:
            size = 0
        else:
            size = min(int(rng.lognormvariate(math.log(4096), 1.2)), 1 << 20)
        off = rng.randrange(0, (1 << 20) - size + 1)
        with open(os.path.join(d, f"f{i:07}.bin"), "wb") as f:
            f.write(block[off:off + size])


def large(root, k, mb):
    os.makedirs(root, exist_ok=True)
    for i in range(k):
        with open(os.path.join(root, f"big{i}.bin"), "wb") as f:
            for _ in range(mb):
                f.write(os.urandom(1 << 20))


if __name__ == "__main__":
    kind, root = sys.argv[1], sys.argv[2]
    if kind == "small":
        small(root, int(sys.argv[3]))
    elif kind == "empty":
        small(root, int(sys.argv[3]), per_dir=1000, empty=True)
    elif kind == "large":
        large(root, int(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.exit(f"unknown corpus kind {kind}")
