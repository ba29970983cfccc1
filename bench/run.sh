#!/usr/bin/env bash
# Benchmark pcopy against cp -a, rsync -a, xcp and fcp on the same corpora in
# the same run, on tmpfs (/dev/shm: low noise, measures CPU and syscall cost)
# and on the disk (noisy: report the range). Prints medians and ratios.
#
#   bench/run.sh            everything (83 minutes on 2 cores; the
#                           latency table alone is ~50 minutes, most of it
#                           cp -a and rsync -a at 0.5 ms per operation)
#   bench/run.sh --quick    tmpfs only, small corpora, 3 runs
#   bench/run.sh --only X   one table: tmpfs, memory, profile, reflink,
#                           checksum, durability, snapshots, latency,
#                           latency-delay or disk
#
# Env: RUNS (default 5), DISK_DIR (default target/bench-disk), SHM_DIR,
# GENERATIONS (snapshot nights, default 100; --quick 10).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
QUICK=0
ONLY=""
[ "${1:-}" = "--quick" ] && QUICK=1
[ "${1:-}" = "--only" ] && ONLY=${2:?"--only needs a table name"}
RUNS=${RUNS:-$([ $QUICK = 1 ] && echo 3 || echo 5)}
SHM_DIR=${SHM_DIR:-/dev/shm/pcopy-bench}
DISK_DIR=${DISK_DIR:-$ROOT/target/bench-disk}
OUT=$ROOT/target/bench-results
mkdir -p "$OUT"

need() { command -v "$1" >/dev/null 2>&1; }
if ! need hyperfine || ! need rsync; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq hyperfine rsync >/dev/null
    else
        echo "install hyperfine and rsync first" >&2; exit 1
    fi
fi
export PATH="$HOME/.cargo/bin:$PATH"
need xcp || cargo install --quiet xcp || echo "xcp unavailable; skipped"
need fcp || cargo install --quiet fcp || echo "fcp unavailable; skipped"
(cd "$ROOT" && cargo build --release --quiet)
PCOPY=$ROOT/target/release/pcopy

echo "machine: $(nproc) CPUs, $(free -g | awk '/Mem:/{print $2}') GiB RAM, kernel $(uname -r)"
echo "tools: $(cp --version | head -1); $(rsync --version | head -1)"
need xcp && echo "       xcp $(xcp --version 2>&1 | head -1)"
need fcp && echo "       fcp $(fcp --version 2>&1 | head -1)"
echo "pcopy: $($PCOPY --version), default workers max(CPUs, 4) = $(( $(nproc) > 4 ? $(nproc) : 4 ))"

gen() { # dir kind args...
    local dir=$1; shift
    [ -f "$dir/.complete" ] && return
    rm -rf "$dir"
    if [ "$1" = usr-share ]; then
        mkdir -p "$dir" && cp -a /usr/share/. "$dir/" 2>/dev/null || true
    else
        python3 "$ROOT/bench/gen_corpus.py" "$1" "$dir" "${@:2}"
    fi
    touch "$dir/.complete"
    # Written back before anything is timed: on the disk the first tool
    # timed otherwise competes with the write-back of a fresh corpus.
    sync
}

# hyperfine one corpus: copy SRC into a fresh destination with every tool.
compare() { # label src base
    local label=$1 src=$2 base=$3 dst=$3/dst
    local cmds=(-n pcopy "$PCOPY -q $src $dst" -n "cp -a" "cp -a $src $dst" -n "rsync -a" "rsync -a $src/ $dst/")
    need xcp && cmds+=(-n xcp "xcp -r $src $dst")
    need fcp && cmds+=(-n fcp "fcp $src $dst")
    hyperfine -N -w 1 -r "$RUNS" --prepare "rm -rf $dst" --export-json "$OUT/$label.json" "${cmds[@]}" >/dev/null 2>&1 \
        || hyperfine -w 1 -r "$RUNS" --prepare "rm -rf $dst" --export-json "$OUT/$label.json" "${cmds[@]}" >/dev/null
    rm -rf "$dst"
    report "$label"
}

# The no-op re-run of a finished copy, pcopy (which compares data, mode,
# owner and xattrs/ACLs) against rsync doing the same: -aHAX is the same
# comparison, -a the cheaper one without ACLs and xattrs.
noop() { # label src base
    local label=$1 src=$2 base=$3
    rm -rf "$base/dp" "$base/dr" "$base/dx"
    "$PCOPY" -q "$src" "$base/dp"
    rsync -a "$src/" "$base/dr/"
    rsync -aHAX "$src/" "$base/dx/"
    hyperfine -N -w 1 -r "$RUNS" --export-json "$OUT/$label.json" \
        -n pcopy "$PCOPY -q $src $base/dp" -n "rsync -a" "rsync -a $src/ $base/dr/" \
        -n "rsync -aHAX" "rsync -aHAX $src/ $base/dx/" >/dev/null
    rm -rf "$base/dp" "$base/dr" "$base/dx"
    report "$label"
}

# A sync where 1 % of the files changed and 1 % were deleted since the last
# run: pcopy --delete against rsync -aHAX --delete, each starting from the
# same synced destination (restored by --prepare, not timed).
sync1pct() { # label src base
    local label=$1 src=$2 base=$3
    local s=$base/s1 p=$base/pristine d=$base/d1
    rm -rf "$s" "$p" "$d"
    cp -a "$src" "$s"
    "$PCOPY" -q "$s" "$p"
    python3 - "$s" <<'PY'
import os, sys
files = sorted(os.path.join(r, f) for r, _, fs in os.walk(sys.argv[1]) for f in fs)
for f in files[::100]:            # 1 % changed
    with open(f, "ab") as h: h.write(b"changed")
for f in files[50::100]:          # 1 % deleted
    os.unlink(f)
PY
    hyperfine -N -w 1 -r "$RUNS" --export-json "$OUT/$label.json" \
        --prepare "bash -c 'rm -rf $d && cp -a $p $d'" \
        -n "pcopy --delete" "$PCOPY -q --delete $s $d" \
        -n "rsync -aHAX --delete" "rsync -aHAX --delete $s/ $d/" >/dev/null
    rm -rf "$s" "$p" "$d"
    report "$label"
}

report() {
    python3 - "$OUT/$1.json" "$1" <<'PY'
import json, statistics, sys
res = json.load(open(sys.argv[1]))["results"]
med = {r["command"]: statistics.median(r["times"]) for r in res}
rng = {r["command"]: (min(r["times"]), max(r["times"])) for r in res}
p = res[0] and statistics.median(res[0]["times"])  # the first command is pcopy
print(f"\n### {sys.argv[2]}\n")
print("| tool | median s | min–max s | pcopy / tool |")
print("|---|---|---|---|")
for name, m in med.items():
    lo, hi = rng[name]
    print(f"| {name} | {m:.3f} | {lo:.3f}–{hi:.3f} | {p / m:.2f} |")
PY
}

# Time, per-file cost and peak RSS by tree size (the scale table).
memory() { # base
    local base=$1
    echo
    echo "### scale: time and peak RSS (VmHWM, KiB) by tree size"
    echo
    echo "| tree | time s | µs per file | peak RSS |"
    echo "|---|---|---|---|"
    for spec in "empty 10000" "empty 100000" "empty 1000000" "small 10000" "small 100000"; do
        set -- $spec
        gen "$base/$1$2" "$1" "$2"
        rm -rf "$base/dm"
        local t0 t1 rss
        t0=$(date +%s.%N)
        rss=$(python3 "$ROOT/bench/peak_rss.py" "$PCOPY" -q "$base/$1$2" "$base/dm" | tail -1)
        t1=$(date +%s.%N)
        python3 -c "t=$t1-$t0; print(f'| $1 $2 | {t:.2f} | {t/$2*1e6:.1f} | $rss |')"
        rm -rf "$base/dm"
    done
}

# Where the time per file goes: perf record of pcopy and fcp on small50k,
# children time per syscall entry point (what docs/performance.md tabulates).
profile() { # base
    local base=$1 tool
    need perf || { [ "$(id -u)" = 0 ] && apt-get install -y -qq linux-perf >/dev/null; } || true
    need perf || { echo "perf unavailable; profile skipped"; return; }
    for tool in "$PCOPY -q" "$(command -v fcp)"; do
        [ -n "${tool%% *}" ] || continue
        rm -rf "$base/dp"
        perf record -q -g -F 2999 -o "$OUT/perf.data" -- $tool "$base/small50k" "$base/dp" 2>/dev/null
        echo; echo "### profile: ${tool%% *} (children % of CPU per syscall)"; echo
        perf report -i "$OUT/perf.data" --children --sort sym --stdio -g none 2>/dev/null \
            | grep -E "__x64_sys_|__do_sys_" | head -12
        rm -rf "$base/dp"
    done
}

# Copies within a reflink-capable XFS image (root: loop mount; the image
# lives on tmpfs): pcopy --reflink auto and never, cp -a, xcp.
reflink() { # base
    local base=$1 img=$1/xfs.img mnt=$1/xfs
    [ "$(id -u)" = 0 ] || { echo "not root: XFS reflink comparison skipped"; return; }
    need mkfs.xfs || apt-get install -y -qq xfsprogs >/dev/null || { echo "no xfsprogs"; return; }
    rm -f "$img"; mkdir -p "$mnt"
    truncate -s 5G "$img" && mkfs.xfs -q -f -m reflink=1 "$img" && mount -o loop "$img" "$mnt" \
        || { echo "XFS loop mount refused: reflink comparison skipped"; return; }
    mkdir -p "$mnt/one" && head -c 1G /dev/urandom > "$mnt/one/big"
    cp -a "$base/small50k" "$mnt/small50k"
    local c
    for c in one small50k; do
        local cmds=(-n pcopy "$PCOPY -q $mnt/$c $mnt/d" -n "pcopy never" "$PCOPY -q --reflink never $mnt/$c $mnt/d"
            -n "cp -a" "cp -a $mnt/$c $mnt/d")
        need xcp && cmds+=(-n xcp "xcp -r $mnt/$c $mnt/d")
        hyperfine -N -w 1 -r "$RUNS" --prepare "rm -rf $mnt/d" --export-json "$OUT/xfs-$c.json" \
            "${cmds[@]}" >/dev/null
        report "xfs-$c"
    done
    umount "$mnt"; rm -f "$img"
}

# The cost of power-cut safety on ext4 (a loop image in tmpfs, so the
# write-back is memory-speed and the numbers are stable): pcopy by default
# (its marker, the fdatasync of sparse and chunked files, the end-of-run
# syncfs in a detached child) and with --fsync, against rsync -a with and
# without --fsync; each run starts after `sync`, into a fresh destination.
# OLD_PCOPY=path adds a build to compare with (the default before a change).
durability() { # base
    local base=$1 img=$1/ext4.img mnt=$1/ext4
    [ "$(id -u)" = 0 ] || { echo "not root: durability benchmark skipped"; return; }
    rm -f "$img"; mkdir -p "$mnt"
    truncate -s 10G "$img" && mkfs.ext4 -q -F "$img" && mount -o loop "$img" "$mnt" \
        || { echo "ext4 loop mount refused: durability benchmark skipped"; return; }
    gen "$base/large" large 3 1024
    local c
    for c in small50k large; do
        local cmds=(-n pcopy "$PCOPY -q $base/$c $mnt/d" -n "pcopy --fsync" "$PCOPY -q --fsync $base/$c $mnt/d")
        [ -n "${OLD_PCOPY:-}" ] && cmds+=(-n "old pcopy" "$OLD_PCOPY -q $base/$c $mnt/d")
        cmds+=(-n "rsync -a" "rsync -a $base/$c/ $mnt/d/" -n "rsync -a --fsync" "rsync -a --fsync $base/$c/ $mnt/d/")
        hyperfine -N -w 1 -r "$RUNS" --prepare "sh -c 'rm -rf $mnt/d; sync'" \
            --export-json "$OUT/ext4-$c.json" "${cmds[@]}" >/dev/null
        report "ext4-$c"
    done
    umount "$mnt"; rm -f "$img"
}

# A checksum audit of an up-to-date copy (issue 23): `-n -c` reads both
# sides of every file of the same size and writes nothing. pcopy compares
# the bytes in the walk's threads; rsync -n -c hashes both sides. Also the
# real -c run, which does the same reading and then nothing.
checksum() { # base
    local base=$1 c
    gen "$base/large2" large 2 1024
    for c in large2 small50k; do
        rm -rf "$base/dp" "$base/dr"
        "$PCOPY" -q "$base/$c" "$base/dp"
        rsync -a "$base/$c/" "$base/dr/"
        hyperfine -N -w 1 -r "$RUNS" --export-json "$OUT/checksum-$c.json" \
            -n "pcopy -n -c" "$PCOPY -q -n -c $base/$c $base/dp" \
            -n "rsync -n -c" "rsync -a -n -c $base/$c/ $base/dr/" \
            -n "pcopy -c" "$PCOPY -q -c $base/$c $base/dp" \
            -n "rsync -c" "rsync -a -c $base/$c/ $base/dr/" >/dev/null
        report "checksum-$c"
    done
    rm -rf "$base/dp" "$base/dr"
}

# Median of 3 (or RUNS) timed runs of CMD, each after PREPARE ("-" if it failed).
median3() { # prepare cmd [runs]
    local j=$OUT/median3.json
    hyperfine -N -r "${3:-3}" --prepare "$1" --export-json "$j" "$2" >/dev/null 2>&1 || { echo "-"; return; }
    python3 -c 'import json,sys,statistics; print(round(statistics.median(json.load(open(sys.argv[1]))["results"][0]["times"]),2))' "$j"
}

# Latency-bound storage: bench/latencyfs (a FUSE passthrough adding DELAY
# per operation) on the source side, then on the destination side; every
# tool at default settings, then pcopy's curve against -j. Root (FUSE mount).
latency() { # base
    local base=$1 lat=$1/lat delay=${LATENCY_US:-500} n=${LATENCY_FILES:-20000}
    [ "$(id -u)" = 0 ] || { echo "not root: latency benchmark skipped"; return; }
    [ -e /dev/fuse ] || { echo "no /dev/fuse: latency benchmark skipped"; return; }
    (cd "$ROOT/bench/latencyfs" && cargo build --release --quiet) || { echo "latencyfs build failed"; return; }
    local lfs=$ROOT/bench/latencyfs/target/release/latencyfs
    rm -rf "$lat"; mkdir -p "$lat/back" "$lat/mnt"
    python3 "$ROOT/bench/gen_corpus.py" small "$lat/back/src" "$n"
    # The curves use a smaller tree (they are many runs).
    local cn=${LATENCY_CURVE_FILES:-5000}
    python3 "$ROOT/bench/gen_corpus.py" small "$lat/back/curve" "$cn"
    "$lfs" "$lat/back" "$lat/mnt" "$delay" & local pid=$!
    sleep 1
    echo; echo "### latency: $n small files, ${delay} µs per operation (median of 3; cp -a and rsync -a: 1 run)"; echo
    echo "| tool | source side s | destination side s |"; echo "|---|---|---|"
    local tools=("pcopy:$PCOPY -q" "cp -a:cp -a" "rsync -a:rsync -a")
    need xcp && tools+=("xcp:xcp -r")
    need fcp && tools+=("fcp:fcp")
    local t name cmd
    for t in "${tools[@]}"; do
        name=${t%%:*}; cmd=${t#*:}
        local slash=""; [ "$name" = "rsync -a" ] && slash=/
        local a b runs=3
        # Single-threaded copiers take minutes here: one run each.
        case $name in "cp -a"|"rsync -a") runs=1 ;; esac
        a=$(median3 "rm -rf $lat/out" "$cmd $lat/mnt/src$slash $lat/out$slash" $runs)
        b=$(median3 "rm -rf $lat/back/out" "$cmd $lat/back/src$slash $lat/mnt/out$slash" $runs)
        echo "| $name | $a | $b |"
    done
    echo; echo "pcopy against -j, $cn files (source side / destination side, s):"
    for j in 2 4 8 16 32; do
        local a b
        a=$(median3 "rm -rf $lat/out" "$PCOPY -q -j $j $lat/mnt/curve $lat/out")
        b=$(median3 "rm -rf $lat/back/out" "$PCOPY -q -j $j $lat/back/curve $lat/mnt/out")
        echo "- -j $j: $a / $b"
    done
    unmount_lat "$lat" "$pid"
    rm -rf "$lat"
}

# Unmount latencyfs and reap it (it exits by itself once unmounted: a kill
# that finds nothing is not an error; under set -e it ended the script).
unmount_lat() { # lat pid
    umount "$1/mnt" 2>/dev/null || fusermount3 -u "$1/mnt" 2>/dev/null || true
    kill "$2" 2>/dev/null || true
    wait "$2" 2>/dev/null || true
}

# pcopy at default settings against the delay per operation.
latency_delay() { # base
    local base=$1 lat=$1/latd cn=${LATENCY_CURVE_FILES:-5000}
    [ "$(id -u)" = 0 ] || { echo "not root: latency benchmark skipped"; return; }
    [ -e /dev/fuse ] || { echo "no /dev/fuse: latency benchmark skipped"; return; }
    (cd "$ROOT/bench/latencyfs" && cargo build --release --quiet) || { echo "latencyfs build failed"; return; }
    local lfs=$ROOT/bench/latencyfs/target/release/latencyfs pid d a b
    rm -rf "$lat"; mkdir -p "$lat/back" "$lat/mnt"
    python3 "$ROOT/bench/gen_corpus.py" small "$lat/back/curve" "$cn"
    echo; echo "pcopy (default settings) against the delay, $cn files (source side / destination side, s, median of 3):"
    for d in 100 200 500 1000; do
        "$lfs" "$lat/back" "$lat/mnt" "$d" & pid=$!
        sleep 1
        a=$(median3 "rm -rf $lat/out" "$PCOPY -q $lat/mnt/curve $lat/out")
        b=$(median3 "rm -rf $lat/back/out" "$PCOPY -q $lat/back/curve $lat/mnt/out")
        echo "- ${d} µs: $a / $b"
        unmount_lat "$lat" "$pid"
    done
    rm -rf "$lat"
}

run_on() { # base where
    local base=$1 where=$2
    mkdir -p "$base"
    echo; echo "## $where ($base)"
    gen "$base/small50k" small 50000
    compare "$where-small50k" "$base/small50k" "$base"
    noop "$where-noop50k" "$base/small50k" "$base"
    sync1pct "$where-sync1pct50k" "$base/small50k" "$base"
    [ $QUICK = 1 ] && return
    gen "$base/large" large 3 1024
    compare "$where-large-3x1GiB" "$base/large" "$base"
    gen "$base/usr-share" usr-share
    compare "$where-usr-share" "$base/usr-share" "$base"
}

# Whether to run table $1: all of them, or the one --only names.
want() { [ -z "$ONLY" ] || [ "$ONLY" = "$1" ]; }
want tmpfs && run_on "$SHM_DIR" tmpfs
[ $QUICK = 1 ] || ! want memory || memory "$SHM_DIR"
[ $QUICK = 1 ] || ! want profile || profile "$SHM_DIR"
[ $QUICK = 1 ] || ! want reflink || reflink "$SHM_DIR"
[ $QUICK = 1 ] || ! want checksum || { gen "$SHM_DIR/small50k" small 50000; checksum "$SHM_DIR"; }
# Snapshot nights. Every name on tmpfs takes one of its inodes, links
# included: 100 nights of two tools are 10 million, over /dev/shm's limit
# (3 million here), so as root they run on a tmpfs of their own without
# one; otherwise in SHM_DIR, with the nights that fit.
snapshots() {
    local nights=${GENERATIONS:-$([ $QUICK = 1 ] && echo 10 || echo 100)} dir=$SHM_DIR/snapshots
    gen "$SHM_DIR/small50k" small 50000
    if [ "$(id -u)" = 0 ]; then
        dir=/tmp/pcopy-bench-snapshots
        mkdir -p "$dir" && mount -t tmpfs -o size=16G,nr_inodes=0 tmpfs "$dir"
    fi
    python3 "$ROOT/bench/snapshots.py" "$PCOPY" "$SHM_DIR/small50k" "$dir/work" "$nights" || true
    [ "$(id -u)" = 0 ] && umount "$dir"
    return 0
}
want snapshots && snapshots
[ $QUICK = 1 ] || ! want durability || { gen "$SHM_DIR/small50k" small 50000; durability "$SHM_DIR"; }
[ $QUICK = 1 ] || ! want latency || latency "$SHM_DIR"
[ $QUICK = 1 ] || ! want latency-delay || latency_delay "$SHM_DIR"
[ $QUICK = 1 ] || ! want disk || run_on "$DISK_DIR" disk
echo; echo "raw hyperfine JSON in $OUT"
