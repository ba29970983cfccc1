#!/usr/bin/env python3
"""Snapshot backups night after night: pcopy --link-dest against
rsync -a --link-dest on the same source, in the same run.

    snapshots.py PCOPY CORPUS WORKDIR GENERATIONS

Night 0 copies CORPUS whole (g0) with each tool. Every later night changes
1 % of the source's files (a different 1 % each night: appended to, so size
and mtime change), then each tool makes g<n> from the source with
--link-dest=../g<n-1>; the order of the two tools alternates. Each night's
run is timed once per tool (a night cannot be repeated: the second run would
be a no-op), so the figures are medians over the nights.

Space: for each night, the bytes of the inodes g<n> does not share with
g<n-1> (by path), against what a perfect snapshot adds: the changed files'
blocks plus the new generation's directories. At the end `du -s -B1` of all
generations, per tool.
"""

import os
import shutil
import statistics
import subprocess
import sys
import time


def run(cmd):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def regular_files(root):
    out = []
    for r, _, fs in os.walk(root):
        for f in fs:
            out.append(os.path.relpath(os.path.join(r, f), root))
    out.sort()
    return out


def new_space(gen, prev):
    """Bytes of gen's inodes that prev does not hold at the same path, and
    how many regular files they are."""
    total, files = 0, 0
    for r, ds, fs in os.walk(gen):
        for name in ds + fs:
            if name.startswith(".pcopy-tmp."):
                continue  # a run's marker, removed once its data is synced
            p = os.path.join(r, name)
            st = os.lstat(p)
            q = os.path.join(prev, os.path.relpath(p, gen))
            try:
                shared = os.lstat(q).st_ino == st.st_ino
            except FileNotFoundError:
                shared = False
            if not shared:
                total += st.st_blocks * 512
                files += os.path.isfile(p) and not os.path.islink(p)
    # The generation's root directory itself.
    return total + os.lstat(gen).st_blocks * 512, files


def expected_space(gen, changed):
    dirs = sum(
        os.lstat(os.path.join(r, d)).st_blocks * 512
        for r, ds, _ in os.walk(gen)
        for d in ds
    ) + os.lstat(gen).st_blocks * 512
    data = sum(os.lstat(os.path.join(gen, c)).st_blocks * 512 for c in changed)
    return dirs + data


def main():
    pcopy, corpus, work, gens = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    src = os.path.join(work, "src")
    subprocess.run(["cp", "-a", corpus, src], check=True)
    tools = {
        "pcopy --link-dest": lambda d, b: [pcopy, "-q", src, d] + ([f"--link-dest=../{b}"] if b else []),
        "rsync -a --link-dest": lambda d, b: ["rsync", "-a", src + "/", d + "/"]
        + ([f"--link-dest=../{b}"] if b else []),
    }
    roots = {}
    for i, name in enumerate(tools):
        roots[name] = os.path.join(work, f"t{i}")
        os.makedirs(roots[name])
    files = regular_files(src)
    first = {}
    for name, cmd in tools.items():
        first[name] = run(cmd(os.path.join(roots[name], "g0"), None))
    times = {n: [] for n in tools}
    space = {n: [] for n in tools}
    extra_files = {n: 0 for n in tools}
    expected = []
    for night in range(1, gens + 1):
        changed = files[night % 100 :: 100]
        for c in changed:
            with open(os.path.join(src, c), "ab") as h:
                h.write(b"night %d\n" % night)
        order = list(tools) if night % 2 else list(reversed(tools))
        for name in order:
            d = os.path.join(roots[name], f"g{night}")
            times[name].append(run(tools[name](d, f"g{night - 1}")))
        for name in tools:
            g = os.path.join(roots[name], f"g{night}")
            prev = os.path.join(roots[name], f"g{night - 1}")
            b, nfiles = new_space(g, prev)
            space[name].append(b)
            extra_files[name] += nfiles - len(changed)
        expected.append(expected_space(os.path.join(roots["pcopy --link-dest"], f"g{night}"), changed))
    p = statistics.median(times["pcopy --link-dest"])
    print(f"\n### snapshots: {gens} nights of {len(files)} files, 1 % changed per night\n")
    print("| tool | night 0 (full copy) s | median night s | min–max s | pcopy / tool |")
    print("|---|---|---|---|---|")
    for name in tools:
        t = times[name]
        m = statistics.median(t)
        print(f"| {name} | {first[name]:.2f} | {m:.3f} | {min(t):.3f}–{max(t):.3f} | {p / m:.2f} |")
    ratios = [a / b for a, b in zip(times["pcopy --link-dest"], times["rsync -a --link-dest"])]
    print(f"\nper-night ratio pcopy / rsync: median {statistics.median(ratios):.2f}, "
          f"worst {max(ratios):.2f}")
    e = statistics.median(expected)
    print("\n| tool | median bytes a night adds | changed data + directories | ratio | files copied beyond the changed |")
    print("|---|---|---|---|---|")
    for name in tools:
        m = statistics.median(space[name])
        print(f"| {name} | {m:,.0f} | {e:,.0f} | {m / e:.3f} | {extra_files[name]} |")
    for name in tools:
        du = subprocess.run(["du", "-s", "-B1", roots[name]], capture_output=True, text=True, check=True)
        print(f"\n{name}: du -s of all {gens + 1} generations: {int(du.stdout.split()[0]):,} bytes")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
