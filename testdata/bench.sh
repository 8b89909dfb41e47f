#!/usr/bin/env bash
# bench.sh — rehydrator against the downloads and two generic delta tools.
#
# Usage:
#   bash testdata/bench.sh [RELEASE_DIR] [WORKDIR]
#
#   RELEASE_DIR  a release as downloaded: stream.json plus every file it
#                lists. Empty or absent: testdata/mkrelease.sh builds one into
#                WORKDIR/release (kept and reused by later runs).
#   WORKDIR      scratch space and results (default /tmp/rehydrator-bench);
#                the report is also written to WORKDIR/report.txt.
#
# One run measures, side by side:
#   1. size: the downloads vs the rehydrator bundle vs a `zstd --patch-from`
#      bundle vs an `xdelta3` bundle, per artifact and in total;
#   2. per-variant cost: stored bytes as a share of each platform disk
#      variant's non-zero bytes;
#   3. throughput: `rehydrate` of the metal raw and qemu qcow2 images vs
#      `sha256sum` over the same file; of the aws VMDK vs `qemu-img convert`
#      making it from the metal raw image; peak RSS of `rehydrate --all`;
#   4. dehydrate wall time and peak RSS;
#   5. issue 3's acceptance checks, each with its target and PASS/FAIL: the
#      aws VMDK, OVAs and nutanix qcow2 each stored in <= 1% of their size;
#      the ISO in <= 1% of its size; the PXE files in <= root.squashfs + 1%;
#      bundle >= 93% smaller than the downloads; aws VMDK rehydrate time
#      <= 0.7 x qemu-img's.
#
# Environment:
#   JOBS=N          parallel peer encodes (default: nproc)
#   BENCH_CACHE=0   re-encode the peers instead of reusing WORKDIR/cache
#   REHYDRATOR=BIN  use this binary instead of `go build ./cmd/rehydrator`
#
# Needs (Debian 12 packages): zstd, xdelta3, time (GNU /usr/bin/time),
# coreutils (sha256sum), python3, qemu-utils; plus Go to build the binary.
#
# Runtime: the peers cost ~1100 CPU seconds on the example, so a first run
# takes ~10-12 minutes on 2 idle cores (plus 1-2 for mkrelease.sh), 3/4 of it
# in `zstd -19 --patch-from`: each call indexes the whole 448 MiB metal image
# at level 19 (~33 CPU s), whatever the target's size. Peer outputs are
# cached in WORKDIR/cache, keyed by tool versions, flags and the SHA-256 of
# reference and target, so later runs take 1-3 minutes. Every fresh peer
# output is decoded and compared byte for byte with its artifact first.
set -euo pipefail
export LC_ALL=C

REPO=$(cd "$(dirname "$0")/.." && pwd)
RELEASE_ARG=${1:-}
WORK=${2:-/tmp/rehydrator-bench}
JOBS=${JOBS:-$(nproc)}
BENCH_CACHE=${BENCH_CACHE:-1}

ZSTD_LEVEL=-19                          # both peers compress the base with it
XDELTA_MAX_B=$((1 << 31))               # xdelta3 -B range: 512 KiB .. 2 GiB
XDELTA_MIN_B=$((1 << 19))
# `qemu-img convert -O vmdk` options of the aws image (as mkrelease.sh and
# Fedora CoreOS make it): the throughput row against qemu-img uses them.
QEMU_VMDK_OPTS=adapter_type=lsilogic,subformat=streamOptimized,compat6

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { printf 'bench.sh: %s\n' "$*" >&2; exit 1; }

# ------------------------------------------------------------------ setup

check_tools() {
	local missing=() t
	for t in zstd xdelta3 sha256sum python3 cmp qemu-img; do
		command -v "$t" >/dev/null 2>&1 || missing+=("$t")
	done
	[[ -x /usr/bin/time ]] || missing+=("/usr/bin/time (package: time)")
	[[ -n ${REHYDRATOR:-} ]] || command -v go >/dev/null 2>&1 || missing+=(go)
	((${#missing[@]} == 0)) || die "missing tools: ${missing[*]} (apt-get install zstd xdelta3 time coreutils python3 qemu-utils)"
}

# prepare_workdir: fresh per-run directories; the release and the peer cache
# survive between runs.
prepare_workdir() {
	mkdir -p "$WORK"
	WORK=$(cd "$WORK" && pwd)
	BIN=$WORK/rehydrator
	BUNDLE=$WORK/bundle        # rehydrator bundle
	ALL=$WORK/all              # `rehydrate --all`: every artifact uncompressed
	TP=$WORK/throughput        # single-artifact rehydrate outputs
	PEERS=$WORK/peers          # this run's peer outputs (links into the cache)
	CACHE=$WORK/cache
	LOGS=$WORK/logs
	METRICS=$WORK/metrics.txt  # "key value" lines for the report
	rm -rf "$BUNDLE" "$ALL" "$TP" "$PEERS" "$LOGS" "$WORK"/tmp.*
	rm -f "$METRICS" "$WORK/report.txt" "$WORK/artifacts.tsv" "$WORK/nonzero.tsv"
	mkdir -p "$ALL" "$TP" "$PEERS/zstd" "$PEERS/xdelta3" "$CACHE" "$LOGS"
	write_helper
}

metric() { printf '%s %s\n' "$1" "$2" >>"$METRICS"; }

# timed CMD...: run CMD under GNU time; sets T_SECS (wall), T_CPU (user +
# system seconds) and T_RSS (peak KiB).
timed() {
	local tf u s
	tf=$(mktemp "$WORK/tmp.time.XXXXXX")
	/usr/bin/time -f '%e %M %U %S' -o "$tf" "$@"
	read -r T_SECS T_RSS u s <"$tf"
	T_CPU=$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }')
	rm -f "$tf"
}

# fmin A [B]: the smaller of two decimal numbers; A alone if B is empty.
fmin() { awk -v a="$1" -v b="${2:-}" 'BEGIN { print (b == "" || a + 0 < b + 0) ? a : b }'; }

build_binary() {
	if [[ -n ${REHYDRATOR:-} ]]; then
		cp "$REHYDRATOR" "$BIN"
	else
		log "building rehydrator"
		(cd "$REPO" && go build -o "$BIN" ./cmd/rehydrator)
	fi
}

# get_release: use RELEASE_DIR, or build the example into WORKDIR/release
# (once: a complete earlier build is reused).
get_release() {
	if [[ -n $RELEASE_ARG ]]; then
		REL=$(cd "$RELEASE_ARG" && pwd)
	else
		REL=$WORK/release
		if [[ ! -f $REL/stream.json ]]; then
			log "generating the example release into $REL (1-2 min)"
			rm -rf "$REL.tmp"
			bash "$REPO/testdata/mkrelease.sh" "$REL.tmp" >"$LOGS/mkrelease.log" 2>&1 ||
				die "mkrelease.sh failed, see $LOGS/mkrelease.log"
			mv "$REL.tmp" "$REL"
		fi
	fi
	[[ -f $REL/stream.json ]] || die "$REL/stream.json not found"
}

# ------------------------------------------------------- rehydrator runs

run_dehydrate() {
	log "dehydrate"
	timed "$BIN" dehydrate --stream "$REL/stream.json" --artifacts "$REL" \
		--output "$BUNDLE" >"$LOGS/dehydrate.log" 2>&1
	metric dehydrate_s "$T_SECS"
	metric dehydrate_cpu_s "$T_CPU"
	metric dehydrate_rss_kb "$T_RSS"
	"$BIN" list --from "$BUNDLE" >"$WORK/list.txt"
	metric bundle_bytes "$(find "$BUNDLE" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%.0f\n", s }')"
}

# run_rehydrate_all: every artifact into $ALL. These files (each SHA-256
# verified by rehydrate against the stream) are the inputs of the peers.
run_rehydrate_all() {
	log "rehydrate --all"
	timed "$BIN" rehydrate --from "$BUNDLE" "$ALL" --arch "$ARCH" --all >"$LOGS/rehydrate-all.log" 2>&1
	metric all_s "$T_SECS"
	metric all_cpu_s "$T_CPU"
	metric all_rss_kb "$T_RSS"
	metric all_bytes "$(find "$ALL" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%.0f\n", s }')"
}

# rehydrate_best LABEL PLATFORM: rehydrate one disk image into TP/LABEL
# twice; sets RH_FILE (the output), RH_S and RH_CPU (best of the two) and
# RH_RSS (peak KiB, the larger of the two).
rehydrate_best() {
	local label=$1 platform=$2 dir=$TP/$1
	RH_S='' RH_CPU='' RH_RSS=0
	for _ in 1 2; do
		rm -rf "$dir" && mkdir -p "$dir"
		timed "$BIN" rehydrate --from "$BUNDLE" "$dir" --arch "$ARCH" --disk "$platform" \
			>>"$LOGS/rehydrate-$label.log" 2>&1
		RH_S=$(fmin "$T_SECS" "$RH_S")
		RH_CPU=$(fmin "$T_CPU" "$RH_CPU")
		if ((T_RSS > RH_RSS)); then RH_RSS=$T_RSS; fi
	done
	RH_FILE=$(find "$dir" -type f)
	[[ $(wc -l <<<"$RH_FILE") == 1 ]] || die "rehydrate --disk $platform: expected one file in $dir"
}

# throughput LABEL PLATFORM: rehydrate one disk image to a file twice, then
# sha256sum the same (warm) file twice; the best of each pair counts.
throughput() {
	local label=$1 platform=$2 dir=$TP/$1 best_sha='' cpu_sha='' f sum
	log "throughput: $label"
	rehydrate_best "$label" "$platform"
	f=$RH_FILE
	cat "$f" >/dev/null # warm read: the page cache cannot be dropped here
	for _ in 1 2; do
		timed sha256sum "$f" >"$dir.sha256"
		best_sha=$(fmin "$T_SECS" "$best_sha")
		cpu_sha=$(fmin "$T_CPU" "$cpu_sha")
	done
	# Reference only: SHA-256 through OpenSSL (SHA-NI where the CPU has it).
	timed python3 -c 'import hashlib, sys
h = hashlib.sha256()
with open(sys.argv[1], "rb") as f:
    for b in iter(lambda: f.read(1 << 20), b""):
        h.update(b)' "$f"
	metric "tp_${label}_ossl_cpu_s" "$T_CPU"
	sum=$(cut -d' ' -f1 "$dir.sha256")
	metric "tp_${label}_file" "$(basename "$f")"
	metric "tp_${label}_bytes" "$(stat -c %s "$f")"
	metric "tp_${label}_rh_s" "$RH_S"
	metric "tp_${label}_rh_rss_kb" "$RH_RSS"
	metric "tp_${label}_sha_s" "$best_sha"
	metric "tp_${label}_rh_cpu_s" "$RH_CPU"
	metric "tp_${label}_sha_cpu_s" "$cpu_sha"
	metric "tp_${label}_sha256" "$sum"
	rm -rf "$dir"
}

# throughput_qemu_img LABEL PLATFORM: rehydrate PLATFORM's streamOptimized
# VMDK twice (rehydrate deflates every grain anew), then make it twice the way
# the release was made: `qemu-img convert` from the uncompressed metal image
# (the base, as rehydrated into ALL). The best of each pair counts.
# qemu-img's output is compared with the artifact. It can differ: qemu-img
# writes a random CID (the release pins it), and PLATFORM's image need not be
# the metal one byte for byte. So the same conversion, untimed, from
# PLATFORM's own raw image (the artifact decoded by qemu-img) tells the two
# apart.
throughput_qemu_img() {
	local label=$1 platform=$2 qdir=$TP/$1-qemu-img best='' cpu='' rss=0 f out
	log "throughput: $label vs qemu-img convert"
	rehydrate_best "$label" "$platform"
	f=$RH_FILE
	rm -rf "$qdir" && mkdir -p "$qdir"
	out=$qdir/$(basename "$f") # the descriptor's extent line names the file
	for _ in 1 2; do
		rm -f "$out"
		timed qemu-img convert -f raw -O vmdk -o "$QEMU_VMDK_OPTS" "$ALL/$BASE_NAME" "$out" \
			>>"$LOGS/qemu-img-$label.log" 2>&1
		best=$(fmin "$T_SECS" "$best")
		cpu=$(fmin "$T_CPU" "$cpu")
		if ((T_RSS > rss)); then rss=$T_RSS; fi
	done
	metric "tp_${label}_file" "$(basename "$f")"
	metric "tp_${label}_bytes" "$(stat -c %s "$f")"
	metric "tp_${label}_rh_s" "$RH_S"
	metric "tp_${label}_rh_cpu_s" "$RH_CPU"
	metric "tp_${label}_rh_rss_kb" "$RH_RSS"
	metric qemu_vmdk_opts "$QEMU_VMDK_OPTS"
	metric "tp_${label}_qi_s" "$best"
	metric "tp_${label}_qi_cpu_s" "$cpu"
	metric "tp_${label}_qi_rss_kb" "$rss"
	metric "tp_${label}_qi_base_cmp" "$(helper vmdkcmp "$out" "$f")"
	qemu-img convert -f vmdk -O raw "$f" "$qdir/own.raw" >>"$LOGS/qemu-img-$label.log" 2>&1
	rm -f "$out"
	qemu-img convert -f raw -O vmdk -o "$QEMU_VMDK_OPTS" "$qdir/own.raw" "$out" \
		>>"$LOGS/qemu-img-$label.log" 2>&1
	metric "tp_${label}_qi_own_cmp" "$(helper vmdkcmp "$out" "$f")"
	rm -rf "${TP:?}/$label" "$qdir"
}

# ------------------------------------------------------------- the peers

# The peer commands. BASE is the metal raw image, TARGET an artifact (both
# uncompressed), OUT the result. zstd 1.5.4 raises its own memory limit to
# the reference's size for --patch-from, so no --memory= is needed to encode;
# decoding needs --long=31 (or --memory=) because windows exceed 128 MiB.
peer_encode() { # PEER BASE TARGET OUT
	case $1 in
	zstd-base) zstd -q -f $ZSTD_LEVEL --long=31 "$3" -o "$4" ;;
	xdelta3-base) zstd -q -f $ZSTD_LEVEL "$3" -o "$4" ;;
	zstd) zstd -q -f $ZSTD_LEVEL --long=31 --patch-from="$2" "$3" -o "$4" ;;
	xdelta3) xdelta3 -q -f -e -9 -D -B "$XDELTA_B" -s "$2" "$3" "$4" ;;
	esac
}
peer_decode() { # PEER BASE IN -> stdout
	case $1 in
	zstd-base | xdelta3-base) zstd -q -d -c --long=31 "$3" ;;
	zstd) zstd -q -d -c --long=31 --patch-from="$2" "$3" ;;
	xdelta3) xdelta3 -q -d -D -c -s "$2" "$3" ;;
	esac
}
peer_flags() { # PEER: what the cache key covers
	case $1 in
	zstd-base) echo "zstd $ZSTD_LEVEL --long=31" ;;
	xdelta3-base) echo "zstd $ZSTD_LEVEL" ;;
	zstd) echo "zstd $ZSTD_LEVEL --long=31 --patch-from" ;;
	xdelta3) echo "xdelta3 -e -9 -D -B $XDELTA_B -s" ;;
	esac
}

# peer_task PEER NAME USHA: encode artifact NAME (uncompressed SHA-256 USHA)
# with PEER, verify the round trip, and leave PEERS/DIR/NAME.{bin,secs,cpu,status}.
peer_task() {
	local peer=$1 name=$2 usha=$3 dir key out err
	dir=$PEERS/${peer%-base}
	key=$(printf '%s|%s|%s|%s|%s' "$TOOLVERS" "$(peer_flags "$peer")" "$BASE_SHA" "$usha" "$peer" |
		sha256sum | cut -c1-32)
	out=$dir/$name.bin
	if [[ $BENCH_CACHE == 1 && -f $CACHE/$key.bin && -f $CACHE/$key.secs ]]; then
		ln -f "$CACHE/$key.bin" "$out"
		cp "$CACHE/$key.secs" "$dir/$name.secs"
		if [[ -f $CACHE/$key.cpu ]]; then cp "$CACHE/$key.cpu" "$dir/$name.cpu"; fi
		echo cached >"$dir/$name.status"
		return 0
	fi
	err=$LOGS/$peer-$name.log
	# GNU time runs programs, not functions: go through an (exported) bash
	timed bash -c 'peer_encode "$@"' peer_encode "$peer" "$ALL/$BASE_NAME" "$ALL/$name" "$out.tmp" 2>"$err" ||
		{ echo "encode failed" >"$dir/$name.status"; return 1; }
	if ! peer_decode "$peer" "$ALL/$BASE_NAME" "$out.tmp" 2>>"$err" | cmp -s - "$ALL/$name"; then
		echo "ROUND TRIP MISMATCH" >"$dir/$name.status"
		return 1
	fi
	mv "$out.tmp" "$out"
	echo "$T_SECS" >"$dir/$name.secs"
	echo "$T_CPU" >"$dir/$name.cpu"
	echo fresh >"$dir/$name.status"
	ln -f "$out" "$CACHE/$key.bin.tmp" && mv "$CACHE/$key.bin.tmp" "$CACHE/$key.bin"
	cp "$dir/$name.cpu" "$CACHE/$key.cpu"
	cp "$dir/$name.secs" "$CACHE/$key.secs"
}
export -f peer_task peer_encode peer_decode peer_flags timed

# run_peers: every peer task, JOBS at a time, longest first.
run_peers() {
	local tasks=() t running=0 failed=0 n=0
	export PEERS CACHE LOGS ALL WORK BASE_NAME BASE_SHA TOOLVERS ZSTD_LEVEL XDELTA_B BENCH_CACHE
	# The two base compressions first (slowest), then the zstd patches, then
	# xdelta3 (fast), each by uncompressed size, largest first.
	tasks+=("zstd-base $BASE_NAME $BASE_SHA" "xdelta3-base $BASE_NAME $BASE_SHA")
	mapfile -t -O 2 tasks < <(
		while IFS=$'\t' read -r _ _ _ _ _ _ name usha role; do
			[[ $role == base ]] && continue
			size=$(stat -c %s "$ALL/$name")
			printf '1 %s zstd %s %s\n2 %s xdelta3 %s %s\n' "$size" "$name" "$usha" "$size" "$name" "$usha"
		done <"$WORK/artifacts.tsv" | sort -k1,1n -k2,2nr | cut -d' ' -f3-
	)
	log "peers: ${#tasks[@]} encodes, $JOBS at a time (cache: $([[ $BENCH_CACHE == 1 ]] && echo on || echo off))"
	for t in "${tasks[@]}"; do
		if ((running >= JOBS)); then
			wait -n || failed=$((failed + 1))
			running=$((running - 1))
		fi
		# shellcheck disable=SC2086 # t is "PEER NAME USHA"
		peer_task $t </dev/null &
		running=$((running + 1)) n=$((n + 1))
		if ((n % 8 == 0)); then log "peers: started $n/${#tasks[@]}"; fi
	done
	while ((running > 0)); do
		wait -n || failed=$((failed + 1))
		running=$((running - 1))
	done
	((failed == 0)) || die "$failed peer encodes failed; see $PEERS/*/*.status and $LOGS"
}

# --------------------------------------------------------------- python

# write_helper: the python3 side: stream.json parsing, the non-zero block
# scan, qcow2, VMDK and cpio inspection and the report itself.
write_helper() {
	cat >"$WORK/bench_helper.py" <<'PYEOF'
import json, os, struct, sys

COMPRESSIONS = (".xz", ".gz", ".zip")
VARIANT_FORMATS = {"raw", "qcow2", "vhd", "vhdx", "tar"}


def strip_comp(s):
    for c in COMPRESSIONS:
        if s.endswith(c):
            return s[: -len(c)]
    return s


def cmd_artifacts(stream, reldir, arch):
    """One TSV row per download of ARCH:
    arch platform format kind download dlsize outname usha role"""
    s = json.load(open(stream))
    rows = []
    for plat, pv in sorted(s["architectures"][arch]["artifacts"].items()):
        for fmt, fv in sorted(pv["formats"].items()):
            for kind, kv in sorted(fv.items()):
                dl = kv["location"].rsplit("/", 1)[-1]
                out = strip_comp(dl)
                usha = kv.get("uncompressed-sha256", kv["sha256"])
                base = plat == "metal" and kind == "disk" and strip_comp(fmt) == "raw"
                rows.append([arch, plat, fmt, kind, dl, os.path.getsize(os.path.join(reldir, dl)),
                             out, usha, "base" if base else "delta"])
    if sum(r[8] == "base" for r in rows) != 1:
        sys.exit("bench: no single metal raw disk image in the stream")
    return rows


def nonzero_bytes(path, block=4096, chunk=1 << 20):
    """Bytes in 4 KiB blocks holding a non-zero byte, read 1 MiB at a time."""
    zero_chunk, zero_block, n = bytes(chunk), bytes(block), 0
    with open(path, "rb", buffering=0) as f:
        while True:
            b = f.read(chunk)
            if not b:
                return n
            if b == zero_chunk[: len(b)]:
                continue
            mv = memoryview(b)
            for i in range(0, len(b), block):
                blk = mv[i:i + block]
                if blk != zero_block[: len(blk)]:
                    n += block
    return n


def qcow2_compressed(path):
    """True if PATH is a qcow2 image with compressed clusters (as nutanix's)."""
    with open(path, "rb") as f:
        h = f.read(104)
        if len(h) < 72 or h[:4] != b"QFI\xfb":
            return False
        version, = struct.unpack(">I", h[4:8])
        cluster_bits, = struct.unpack(">I", h[20:24])
        l1_size, = struct.unpack(">I", h[36:40])
        l1_off, = struct.unpack(">Q", h[40:48])
        incompat = struct.unpack(">Q", h[72:80])[0] if version >= 3 else 0
        stride = 16 if incompat & (1 << 4) else 8      # extended L2 entries
        f.seek(l1_off)
        l1 = struct.unpack(">%dQ" % l1_size, f.read(8 * l1_size))
        for e in l1:
            off = e & 0x00FFFFFFFFFFFE00
            if not off:
                continue
            f.seek(off)
            l2 = f.read(1 << cluster_bits)
            for i in range(0, len(l2), stride):
                if l2[i] & 0x40:                    # bit 62: compressed
                    return True
    return False


def is_variant(row):
    """Platform disk variants measured in section 2."""
    _, plat, fmt, kind, *_ = row
    f = strip_comp(fmt)
    return row[8] != "base" and kind == "disk" and f.rsplit(".", 1)[-1] in VARIANT_FORMATS


def cmd_nonzero(artifacts_tsv, alldir):
    for line in open(artifacts_tsv):
        row = line.rstrip("\n").split("\t")
        if not is_variant(row):
            continue
        p = os.path.join(alldir, row[6])
        print("%s\t%d\t%d" % (row[6], nonzero_bytes(p), qcow2_compressed(p)))


def vmdk_descriptor(b):
    """(start, end) of the descriptor embedded in sparse VMDK extent B, or None."""
    if len(b) < 512 or b[:4] != b"KDMV":
        return None
    off, size = struct.unpack_from("<QQ", b, 28)
    start, end = off * 512, (off + size) * 512
    return (start, end) if 0 < start < end <= len(b) else None


def first_diff(x, y, chunk=1 << 20):
    """Offset of the first byte where X and Y differ (or the shorter's length)."""
    for i in range(0, min(len(x), len(y)), chunk):
        if x[i:i + chunk] != y[i:i + chunk]:
            return next(j for j in range(i, i + chunk) if x[j] != y[j])
    return min(len(x), len(y))


def cmd_vmdkcmp(made, artifact):
    """One line: how VMDK MADE (by qemu-img) differs from ARTIFACT. The
    descriptor is compared as text with its CID line apart; the rest byte for
    byte (the descriptor area is fixed-size, so a CID of another length moves
    nothing else)."""
    x, y = open(made, "rb").read(), open(artifact, "rb").read()
    if x == y:
        print("identical")
        return
    diffs = []
    dx, dy = vmdk_descriptor(x), vmdk_descriptor(y)
    if dx and dx == dy:
        lx, ly = (b[dx[0]:dx[1]].rstrip(b"\0").split(b"\n") for b in (x, y))
        cid = lambda ls: [l for l in ls if l.startswith(b"CID=")]
        other = lambda ls: [l for l in ls if not l.startswith(b"CID=")]
        if cid(lx) != cid(ly):
            diffs.append("the descriptor's CID")
        if other(lx) != other(ly):
            diffs.append("other descriptor lines")
        x, y = x[:dx[0]] + bytes(dx[1] - dx[0]) + x[dx[1]:], y[:dy[0]] + bytes(dy[1] - dy[0]) + y[dy[1]:]
    if x != y:
        diffs.append("bytes from offset %d on" % first_diff(x, y))
    if len(x) != len(y):
        diffs.append("sizes %d vs %d" % (len(x), len(y)))
    if diffs == ["the descriptor's CID"]:
        print("identical but for the descriptor's CID (random in qemu-img; the release pins it)")
    else:
        print("DIFFERS: " + "; ".join(diffs))


def cpio_member_size(path, name):
    """Size of the member of newc cpio PATH (gzip-compressed or not) whose
    base name is NAME, or None."""
    import gzip
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    f = gzip.open(path, "rb") if gz else open(path, "rb")
    with f:
        while True:
            h = f.read(110)
            if len(h) < 110 or h[:6] not in (b"070701", b"070702"):
                return None
            fsize, nsize = int(h[54:62], 16), int(h[94:102], 16)
            n = f.read(nsize)[:-1].decode("utf-8", "replace")
            f.read((-(110 + nsize)) % 4)
            if n == "TRAILER!!!":
                return None
            if os.path.basename(n) == name:
                return fsize
            f.seek(fsize + (-fsize) % 4, 1)


# ----------------------------------------------------------------- report

def read_metrics(path):
    m = {}
    for line in open(path):
        k, _, v = line.rstrip("\n").partition(" ")
        m[k] = v
    return m


def read_list(path):
    """rehydrator list: FILE -> STORED, columns found by the header (the
    columns before STORED are single words; later ones may not be)."""
    lines = open(path).read().splitlines()
    hdr = lines[0].split()
    fi, si = hdr.index("FILE"), hdr.index("STORED")
    stored = {}
    for line in lines[1:]:
        f = line.split()
        if f and f[0] != "total":
            stored[f[fi]] = int(f[si])
    return stored


def peer(dirpath, name):
    """Size, wall seconds, CPU seconds (None if unknown) and status of a peer output."""
    f = lambda ext: os.path.join(dirpath, name + ext)
    secs = float(open(f(".secs")).read())
    cpu = float(open(f(".cpu")).read()) if os.path.exists(f(".cpu")) else None
    return os.path.getsize(f(".bin")), secs, cpu, open(f(".status")).read().strip()


# Issue 3's acceptance targets (section 5).
SMALL_MAX = 1.0         # %: aws VMDK, OVAs, nutanix qcow2, ISO over PXE; PXE over squashfs
SAVINGS_MIN = 93        # %: bundle vs downloads
TIME_RATIO_MAX = 0.7    # rehydrate / qemu-img convert, aws VMDK


def verdict(ok):
    return "PASS" if ok else "FAIL"


def mib(n):
    return "%.1f MiB" % (n / 1048576)


def pct_saved(x, ref):
    return "%5.1f%% smaller" % (100.0 * (1 - x / ref)) if x <= ref else "%5.1f%% LARGER" % (100.0 * (x / ref - 1))


def cmd_report(work, reldir, bundle, jobs, xdelta_b, base_size):
    m = read_metrics(os.path.join(work, "metrics.txt"))
    rows = [l.rstrip("\n").split("\t") for l in open(os.path.join(work, "artifacts.tsv"))]
    stored = read_list(os.path.join(work, "list.txt"))
    alldir, peers = os.path.join(work, "all"), os.path.join(work, "peers")
    nz = {}
    for l in open(os.path.join(work, "nonzero.tsv")):
        n, b, c = l.split("\t")
        nz[n] = (int(b), c.strip() == "1")
    out = []
    p = out.append

    # One row per artifact, base first, then in stream order.
    rows.sort(key=lambda r: (r[8] != "base", r[1], r[2], r[3]))
    names = [r[6] for r in rows]
    prefix = os.path.commonprefix(names)
    prefix = prefix[: prefix.rfind("-") + 1] if "-" in prefix else ""
    data = []
    fresh = cached = 0
    enc = {"zstd": 0.0, "xdelta3": 0.0}
    enc_cpu = {"zstd": 0.0, "xdelta3": 0.0}
    for r in rows:
        name = r[6]
        d = dict(name=name, short=name[len(prefix):], fmt=r[2] if r[3] == "disk" else "%s/%s" % (r[2], r[3]),
                 usize=os.path.getsize(os.path.join(alldir, name)), dl=int(r[5]),
                 rh=stored[name], base=r[8] == "base", row=r)
        for pe in ("zstd", "xdelta3"):
            d[pe], secs, cpu, st = peer(os.path.join(peers, pe), name)
            enc[pe] += secs
            enc_cpu[pe] = None if cpu is None or enc_cpu[pe] is None else enc_cpu[pe] + cpu
            fresh += st == "fresh"
            cached += st == "cached"
        data.append(d)

    arch, rel = rows[0][0], json.load(open(os.path.join(work, "stream.json")))
    release = next(iter(rel["architectures"][arch]["artifacts"].values())).get("release", "?")
    p("rehydrator benchmark: %s %s, %d artifacts (release %s)" % (rel.get("stream", "release"), arch, len(rows), release))
    p("  host: %s cores, load average %s at start, %s at end; %s; %s; %s" % (
        os.cpu_count(), m["load_start"], m["load_end"], m["v_zstd"], m["v_xdelta3"], m["v_go"]))
    p("  release: %s" % reldir)
    p("  bundle:  %s" % bundle)
    p("  peers (reference = the metal raw image, uncompressed; %d fresh + %d cached encodes, fresh ones" % (fresh, cached))
    p("  decoded and compared byte for byte with the artifact):")
    p("    zstd-patch: base `zstd -19 --long=31`; others `zstd -19 --long=31 --patch-from=METAL`")
    p("      zstd 1.5.4 sizes its own memory limit to the reference for --patch-from, so encoding")
    p("      needs no --memory=; decoding needs `zstd -d --long=31 [--patch-from=METAL]` (or --memory=)")
    p("      as the windows exceed the 128 MiB default")
    xb_note = "the base fits" if base_size <= xdelta_b else \
        "BASE (%d B) IS LARGER THAN xdelta3's MAXIMUM WINDOW: copies past 2 GiB are not found" % base_size
    p("    xdelta3:    base `zstd -19`; others `xdelta3 -e -9 -D -B %d -s METAL` (secondary lzma)" % xdelta_b)
    p("      -B: base size (%d) rounded up to a power of two; xdelta3 3.0.11 takes 512 KiB..2 GiB; %s" % (base_size, xb_note))
    p("      -D: no external gzip/xz decompression, so the delta is of the bytes as given")
    p("")

    # ---- 1. size
    p("1. SIZE (bytes; uncompressed = artifact as rehydrated, download = file as shipped)")
    p("   file names below drop the common prefix %r" % prefix)
    w = max(len(d["short"]) for d in data)
    wf = max(len(d["fmt"]) for d in data)
    hdr = "   %-*s  %-*s %12s %11s %11s %11s %11s  %s" % (w, "ARTIFACT", wf, "FORMAT", "UNCOMPRESSED", "DOWNLOAD",
                                                          "REHYDRATOR", "ZSTD-PATCH", "XDELTA3", "SMALLEST")
    p(hdr)
    losses = []
    for d in data:
        cand = {"rehydrator": d["rh"], "zstd-patch": d["zstd"], "xdelta3": d["xdelta3"]}
        best = min(cand, key=cand.get)
        tag = best + (" (base)" if d["base"] else "")
        p("   %-*s  %-*s %12d %11d %11d %11d %11d  %s" % (w, d["short"], wf, d["fmt"], d["usize"], d["dl"], d["rh"],
                                                         d["zstd"], d["xdelta3"], tag))
        if best != "rehydrator":
            losses.append((d, best, cand[best]))
    tot_dl = sum(d["dl"] for d in data)
    tot_u = sum(d["usize"] for d in data)
    tot_list = sum(d["rh"] for d in data)
    tot_bundle = int(m["bundle_bytes"])
    tot_z = sum(d["zstd"] for d in data)
    tot_x = sum(d["xdelta3"] for d in data)
    p("   %-*s  %-*s %12d %11d %11d %11d %11d" % (w, "total", wf, "", tot_u, tot_dl, tot_list, tot_z, tot_x))
    p("")
    p("   downloads (every file stream.json lists) %14d  %10s" % (tot_dl, mib(tot_dl)))
    saved = 100.0 * (1 - tot_bundle / tot_dl)
    p("   (a) rehydrator bundle (all files)         %14d  %10s  %s vs downloads: %s (target >= %d%%)" % (
        tot_bundle, mib(tot_bundle), pct_saved(tot_bundle, tot_dl), verdict(saved >= SAVINGS_MIN), SAVINGS_MIN))
    p("       of which blobs `list` counts %d, index/manifest/stream metadata %d" % (tot_list, tot_bundle - tot_list))
    p("   (b) zstd --patch-from bundle              %14d  %10s  %s vs downloads" % (tot_z, mib(tot_z), pct_saved(tot_z, tot_dl)))
    p("   (c) xdelta3 bundle                        %14d  %10s  %s vs downloads" % (tot_x, mib(tot_x), pct_saved(tot_x, tot_dl)))
    p("       (peer totals are base + deltas only: no index or metadata)")
    p("   rehydrator bundle vs (b): %s;  vs (c): %s" % (pct_saved(tot_bundle, tot_z), pct_saved(tot_bundle, tot_x)))
    if losses:
        p("   artifacts where a peer stores fewer bytes than rehydrator:")
        for d, best, b in losses:
            p("     %-*s rehydrator %d vs %s %d: +%d B (%.2fx)" % (w, d["short"], d["rh"], best, b, d["rh"] - b, d["rh"] / max(b, 1)))
    p("")

    # ---- 2. per-variant cost
    p("2. PER-VARIANT COST: stored bytes / non-zero bytes (non-zero 4 KiB blocks x 4096)")
    p("   variants: raw/qcow2/vhd/vhdx/tar platform disks other than the base; qcow2 with compressed")
    p("   clusters excluded: %s" % (", ".join(n[len(prefix):] for n, (_, c) in nz.items() if c) or "none"))
    p("   %-*s %12s %11s %9s %9s %9s" % (w, "VARIANT", "NON-ZERO", "STORED", "REHYDR.", "ZSTD", "XDELTA3"))
    worst = None
    for d in data:
        if d["name"] not in nz or nz[d["name"]][1]:
            continue
        n = nz[d["name"]][0]
        pr = 100.0 * d["rh"] / n
        flag = "  > 0.5% !" if pr > 0.5 else ""
        p("   %-*s %12d %11d %8.4f%% %8.4f%% %8.4f%%%s" % (w, d["short"], n, d["rh"], pr, 100.0 * d["zstd"] / n,
                                                           100.0 * d["xdelta3"] / n, flag))
        if worst is None or pr > worst[0]:
            worst = (pr, d["short"])
    if worst:
        p("   max: %.4f%% (%s) -> %s" % (worst[0], worst[1], "FLAG: above 0.5%" if worst[0] > 0.5 else "all within 0.5%"))
    p("")

    # ---- 3. throughput
    p("3. THROUGHPUT (best of 2 runs; wall time; MB = 10^6 bytes; sha256sum over the same file after a warm read)")
    p("   %-8s %11s | %-33s | %-24s | %s" % ("", "", "rehydrate to a file", "sha256sum", "ratio"))
    p("   %-8s %11s | %7s %8s %7s %8s | %7s %8s %7s | %s" % ("ARTIFACT", "SIZE", "WALL", "MB/s", "CPU", "PEAK RSS",
                                                           "WALL", "MB/s", "CPU", "rehydrate/sha256sum MB/s (by CPU s)"))
    for label in ("metal", "qemu"):
        k = lambda s: m["tp_%s_%s" % (label, s)]
        size = int(k("bytes"))
        rs, ss = float(k("rh_s")), float(k("sha_s"))
        rmb, smb = size / 1e6 / max(rs, 0.01), size / 1e6 / max(ss, 0.01)
        rc, sc = float(k("rh_cpu_s")), float(k("sha_cpu_s"))
        p("   %-8s %11d | %6.2fs %8.1f %6.2fs %4.0f MiB | %6.2fs %8.1f %6.2fs | %.2fx (%.2fx)" % (
            label, size, rs, rmb, rc, int(k("rh_rss_kb")) / 1024, ss, smb, sc, rmb / smb, sc / max(rc, 0.01)))
    for label in ("metal", "qemu"):
        k = lambda s: m["tp_%s_%s" % (label, s)]
        want = next(d["row"][7] for d in data if d["name"] == k("file"))
        ok = "matches" if k("sha256") == want else "DOES NOT MATCH"
        p("   %s: sha256sum %s the stream's uncompressed-sha256; python3 hashlib (OpenSSL) hashes it in %.2fs CPU" % (
            k("file")[len(prefix):], ok, float(k("ossl_cpu_s"))))
    p("   rehydrate verifies SHA-256 of all it writes (Go, SHA-NI where present) and writes zero runs as holes;")
    p("   coreutils sha256sum has no SHA-NI path, so on CPUs with SHA-NI it is the slower of the two.")
    p("   CPU = user+sys seconds; on a busy machine (see the load average above) compare those, not wall.")
    aws = lambda s: m["tp_aws_%s" % s]
    size = int(aws("bytes"))
    a_rs, a_rc, a_qs, a_qc = (float(aws(x)) for x in ("rh_s", "rh_cpu_s", "qi_s", "qi_cpu_s"))
    p("   %s, a streamOptimized VMDK (rehydrate deflates every grain anew), vs qemu-img making it from" % aws("file")[len(prefix):])
    p("   the uncompressed metal image: `qemu-img convert -f raw -O vmdk -o %s METAL.raw OUT.vmdk`" % m["qemu_vmdk_opts"])
    p("   %-8s %11s | %-33s | %-33s | %s" % ("", "", "rehydrate to a file", "qemu-img convert", "ratio"))
    p("   %-8s %11s | %7s %8s %7s %8s | %7s %8s %7s %8s | %s" % ("ARTIFACT", "SIZE", "WALL", "MB/s", "CPU", "PEAK RSS",
                                                                "WALL", "MB/s", "CPU", "PEAK RSS",
                                                                "rehydrate/qemu-img time: wall (CPU)"))
    p("   %-8s %11d | %6.2fs %8.1f %6.2fs %4.0f MiB | %6.2fs %8.1f %6.2fs %4.0f MiB | %.2f (%.2f); target <= %g" % (
        "aws", size, a_rs, size / 1e6 / max(a_rs, 0.01), a_rc, int(aws("rh_rss_kb")) / 1024,
        a_qs, size / 1e6 / max(a_qs, 0.01), a_qc, int(aws("qi_rss_kb")) / 1024, a_rs / max(a_qs, 0.01), a_rc / max(a_qc, 0.01),
        TIME_RATIO_MAX))
    p("   qemu-img's output vs the release's VMDK: %s" % aws("qi_base_cmp"))
    p("   (check, untimed: the same conversion from the aws raw image, decoded from the VMDK by qemu-img:")
    p("   %s)" % aws("qi_own_cmp"))
    all_s, all_b = float(m["all_s"]), int(m["all_bytes"])
    p("   rehydrate --all: %d artifacts, %d bytes in %.2fs wall, %.2fs CPU (%.1f MB/s), peak RSS %.0f MiB" % (
        len(rows), all_b, all_s, float(m["all_cpu_s"]), all_b / 1e6 / max(all_s, 0.01), int(m["all_rss_kb"]) / 1024))
    p("")

    # ---- 4. dehydrate
    ds = float(m["dehydrate_s"])
    p("4. DEHYDRATE: %.2fs wall, %.2fs CPU (%.1f MB/s of uncompressed artifacts), peak RSS %.0f MiB" % (
        ds, float(m["dehydrate_cpu_s"]), tot_u / 1e6 / max(ds, 0.01), int(m["dehydrate_rss_kb"]) / 1024))
    cpu = lambda pe: "n/a" if enc_cpu[pe] is None else "%.0fs" % enc_cpu[pe]
    p("   for scale, peer encode time summed over artifacts (%s jobs in parallel):" % jobs)
    p("     zstd-patch %.0fs wall, %s CPU;  xdelta3 %.0fs wall, %s CPU" % (enc["zstd"], cpu("zstd"), enc["xdelta3"], cpu("xdelta3")))
    p("   (includes each peer's base compression; cached encodes keep the time of the run that made them)")
    p("")

    # ---- 5. acceptance
    p("5. ACCEPTANCE (issue 3): stored bytes from `rehydrator list`, sizes uncompressed")
    p("   %-50s %-24s %-18s %s" % ("CHECK", "VALUE", "TARGET", "VERDICT"))
    verdicts = []

    def check(what, value, target, ok):
        verdicts.append(ok)
        p("   %-50s %-24s %-18s %s" % (what, value, target, verdict(ok)))

    def share(d):
        return 100.0 * d["rh"] / d["usize"]

    plat, fmt = lambda d: d["row"][1], lambda d: strip_comp(d["row"][2])
    small = [d for d in data if (plat(d) == "aws" and fmt(d) == "vmdk") or fmt(d) == "ova" or
             (plat(d) == "nutanix" and fmt(d) == "qcow2")]
    for d in small:
        check("%s: stored / size" % d["short"], "%.4f%%" % share(d), "<= %g%%" % SMALL_MAX, share(d) <= SMALL_MAX)
    iso = [d for d in data if fmt(d) == "iso"]
    pxe = [d for d in data if fmt(d) == "pxe"]
    for d in iso:
        check("%s: stored / size (on top of PXE)" % d["short"], "%.4f%%" % share(d), "<= %g%%" % SMALL_MAX,
              share(d) <= SMALL_MAX)
    rootfs = [d for d in pxe if d["row"][3] == "rootfs"]
    sqfs = cpio_member_size(os.path.join(alldir, rootfs[0]["name"]), "root.squashfs") if rootfs else None
    if sqfs:
        pxe_rh = sum(d["rh"] for d in pxe)
        lim = sqfs * (1 + SMALL_MAX / 100)
        check("PXE kernel+initramfs+rootfs: stored", "%d B" % pxe_rh, "<= %.0f B" % lim, pxe_rh <= lim)
        p("     target: root.squashfs (%d B, read from the rootfs cpio) + %g%%" % (sqfs, SMALL_MAX))
        p("     stored: %s B = squashfs %+.2f%%" % (" + ".join("%s %d" % (d["row"][3], d["rh"]) for d in pxe),
                                                  100.0 * (pxe_rh / sqfs - 1)))
        if iso:
            both = pxe_rh + sum(d["rh"] for d in iso)
            p("     for scale: ISO + PXE stored together %d B = squashfs %+.2f%%" % (both, 100.0 * (both / sqfs - 1)))
    else:
        check("PXE kernel+initramfs+rootfs: stored", "no root.squashfs found", "squashfs + %g%%" % SMALL_MAX, False)
    check("release savings: bundle (all files) vs downloads", "%.2f%%" % saved, ">= %d%%" % SAVINGS_MIN,
          saved >= SAVINGS_MIN)
    for what, a, b in (("wall", a_rs, a_qs), ("CPU", a_rc, a_qc)):
        r = a / max(b, 0.01)
        check("aws VMDK: rehydrate / qemu-img convert, %s" % what, "%.2f (%.2fs / %.2fs)" % (r, a, b),
              "<= %g" % TIME_RATIO_MAX, r <= TIME_RATIO_MAX)
    if aws("qi_base_cmp") != "identical":
        p("     note: qemu-img's output is not the release's VMDK (%s); see section 3" % aws("qi_base_cmp"))
    p("   %d of %d checks pass" % (sum(verdicts), len(verdicts)))
    print("\n".join(out))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "artifacts":
        for r in cmd_artifacts(*args):
            print("\t".join(map(str, r)))
    elif cmd == "nonzero":
        cmd_nonzero(*args)
    elif cmd == "vmdkcmp":
        cmd_vmdkcmp(*args)
    elif cmd == "report":
        cmd_report(args[0], args[1], args[2], args[3], int(args[4]), int(args[5]))
    else:
        sys.exit("unknown helper command " + cmd)
PYEOF
}
helper() { python3 "$WORK/bench_helper.py" "$@"; }

# ------------------------------------------------------------------- main

main() {
	local t0
	t0=$(date +%s)
	check_tools
	prepare_workdir
	build_binary
	get_release
	cp "$REL/stream.json" "$WORK/stream.json" # the report reads this copy
	metric load_start "$(cut -d' ' -f1-3 /proc/loadavg)"
	ARCH=${ARCH:-$(python3 -c 'import json,sys; a=json.load(open(sys.argv[1]))["architectures"]; print("x86_64" if "x86_64" in a else sorted(a)[0])' "$REL/stream.json")}
	helper artifacts "$REL/stream.json" "$REL" "$ARCH" >"$WORK/artifacts.tsv"
	metric v_zstd "zstd $(zstd -q -V)"
	# sed, not head: head exits early and xdelta3 then dies of SIGPIPE (pipefail)
	local xdv
	xdv=$(xdelta3 -V 2>&1 | sed -n 1p)
	metric v_xdelta3 "${xdv%%,*}"
	metric v_go "$(if [[ -n ${REHYDRATOR:-} ]]; then echo "prebuilt $REHYDRATOR"; else go version; fi)"
	TOOLVERS="$(zstd -q -V) $xdv"

	# The base: the metal raw image, as rehydrated.
	IFS=$'\t' read -r BASE_NAME BASE_SHA < <(awk -F'\t' '$9 == "base" { print $7 "\t" $8 }' "$WORK/artifacts.tsv")

	# Timed rehydrator runs first, before this script starts any peer encode.
	run_dehydrate
	run_rehydrate_all
	throughput metal metal
	throughput qemu qemu
	throughput_qemu_img aws aws

	# xdelta3 -B: the base size rounded up to a power of two, within limits.
	local base_size
	base_size=$(stat -c %s "$ALL/$BASE_NAME")
	XDELTA_B=$XDELTA_MIN_B
	while ((XDELTA_B < base_size && XDELTA_B < XDELTA_MAX_B)); do XDELTA_B=$((XDELTA_B * 2)); done
	((base_size <= XDELTA_MAX_B)) || log "WARNING: the base ($base_size B) exceeds xdelta3's 2 GiB source window"

	log "non-zero block scan"
	helper nonzero "$WORK/artifacts.tsv" "$ALL" >"$WORK/nonzero.tsv"
	run_peers

	metric load_end "$(cut -d' ' -f1-3 /proc/loadavg)"
	helper report "$WORK" "$REL" "$BUNDLE" "$JOBS" "$XDELTA_B" "$base_size" >"$WORK/report.txt"
	printf '\n   bench.sh ran %ss; work dir %s\n' "$(($(date +%s) - t0))" "$WORK" >>"$WORK/report.txt"
	cat "$WORK/report.txt"
}

main "$@"
