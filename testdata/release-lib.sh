# shellcheck shell=bash disable=SC2034,SC2153
# (SC2034, SC2153: the constants are used, and PARTS set, by the scripts)
# release-lib.sh — what mkrelease.sh and mkmini.sh share: the release's
# identity (names, dates, UUIDs, hash seeds), the determinism tricks (a
# self-contained mke2fs profile, pinned times and owners, a GPT writer
# checked against sgdisk, pinned VMDK CIDs), the disk and artifact helpers
# and the stream.json writer. Its python half is release-helpers.py.
#
# Sourced, not run, right after `set -euo pipefail` and TOOLS=(...):
#   TESTDATA=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
#   . "$TESTDATA/release-lib.sh"
# internal/testrelease keys its caches on the script and on every file the
# script and this library name as "$TESTDATA/NAME" (this one and
# release-helpers.py): a change here rebuilds every release.
#
# The script then sets, before the functions that use them:
#   ARCH, OUT, W, ...   by calling release_setup ARCH OUTDIR
#   DISK_MIB            the disk's size
#   PARTS, GUIDTAG      its partition table (see gpt_disk); boot is
#                       partition 3 and root partition 4, as in FCOS on
#                       every architecture
#   R                   the root filesystem's tree (mkroot)
#   vmdk_seed()         the seed of a platform's VMDK CID (mk_vmdk)
export LC_ALL=C TZ=UTC PATH="$PATH:/usr/sbin:/sbin" # sgdisk, mkfs.* live in sbin
umask 022

# ---------------------------------------------------------------- constants
GOROOT_SRC=/usr/local/go
G=$GOROOT_SRC
T=$G/pkg/tool/linux_amd64 # the host's tools: only file content, on every ARCH
NAME=fedora-coreos
PRETTY="Fedora CoreOS"
STREAM=stable
RELEASE=42.20261101.3.0
PREFIX="$NAME-$RELEASE"
EPOCH=1793491200                       # 2026-11-01T00:00:00Z, the build date
LAST_MODIFIED=2026-11-04T15:07:23Z     # stream.json metadata
GENERATOR="fedora-coreos-stream-generator v0.4.0"

# xz: FCOS uses `xz -c9 -T<ncpu>`; preset 9 runs at ~1 MB/s per thread and
# would take minutes here, so a fast preset is used (same container format,
# multi-threaded block layout, different LZMA2 parameters).
XZ=(xz -T2 -0)

DISK_GUID=00000000-0000-4000-a000-000000000001       # as FCOS
BOOTFS_UUID=96d15588-3596-4b3c-adca-a2ff7279ea63     # as FCOS
ROOTFS_UUID=910678ff-f77e-4a7d-8d53-86f2ac47a823     # as FCOS
BOOTFS_HASH_SEED=5f1c0e1b-6a84-4f6e-9d55-0b3c2a7e9d01
ROOTFS_HASH_SEED=0c6f8f0e-2f61-4f0b-a0f7-5d6f3b9a4c02
ESP_VOLID=7B7795E7
TYPE_ESP=C12A7328-F81F-11D2-BA4B-00A0C93EC93B
TYPE_LINUX=0FC63DAF-8483-4772-8E79-3D69D8477DE4
M=$((1 << 20))

# -------------------------------------------------------------------- tools
missing_tools() {
	local t
	for t in "${TOOLS[@]}"; do
		command -v "$t" >/dev/null 2>&1 || printf '%s\n' "$t"
	done
	[[ -r $T/compile ]] || printf '%s\n' "$GOROOT_SRC (Go toolchain, used as file content)"
}

# tool_modes "$1": the --tools and --check modes (which exit); else nothing.
tool_modes() {
	local m
	case $1 in
	--tools) printf '%s\n' "${TOOLS[@]}"; exit 0 ;;
	--check)
		m=$(missing_tools)
		if [[ -n $m ]]; then printf '%s\n' "$m" | sed 's/^/missing: /' >&2; exit 3; fi
		exit 0 ;;
	esac
}

# require_tools: before a build, exit 3 (what internal/testrelease skips
# on) if a tool is missing.
require_tools() {
	local m
	m=$(missing_tools)
	if [[ -n $m ]]; then
		printf '%s: missing required tools:\n' "${0##*/}" >&2
		printf '%s\n' "$m" | sed 's/^/  /' >&2
		exit 3
	fi
}

# ------------------------------------------------------------------- setup
# release_setup ARCH OUTDIR: the architecture's constants, OUT (absolute),
# the work dir W (removed on exit), META, the stream.json TABLE and JOBS,
# and the environment that pins what e2fsprogs and friends write.
release_setup() {
	ARCH=$1
	BASEURL="https://builds.example.invalid/prod/streams/$STREAM/builds/$RELEASE/$ARCH"
	KVER=6.17.5-300.fc42.$ARCH
	START_NS=$(date +%s%N)
	OUT=$2
	mkdir -p "$OUT"
	OUT=$(cd "$OUT" && pwd)
	W=$(mktemp -d "${TMPDIR:-/tmp}/$(basename "$0" .sh).XXXXXX")
	trap 'rm -rf "$W"' EXIT
	META=$W/meta
	mkdir -p "$META"
	export E2FSPROGS_FAKE_TIME=$EPOCH SOURCE_DATE_EPOCH=$EPOCH
	export MKE2FS_CONFIG=$W/mke2fs.conf
	# Self-contained mke2fs profile: output must not depend on /etc/mke2fs.conf.
	cat >"$MKE2FS_CONFIG" <<'EOF'
[defaults]
	base_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr
	default_mntopts = acl,user_xattr
	enable_periodic_fsck = 0
	blocksize = 4096
	inode_size = 256
	inode_ratio = 16384
[fs_types]
	ext4 = {
		features = has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize
	}
	small = {
		inode_ratio = 16384
	}
	floppy = {
		inode_ratio = 16384
	}
EOF
	# Table for stream.json: platform format role file uncompressed-sha
	# (- = none, @FILE = $META/FILE.usha), one line a file.
	TABLE=$W/table
	: >"$TABLE"
	JOBS=()
}

log() {
	local now
	now=$(date +%s%N)
	printf '[%4ds] %s\n' $(((now - START_NS) / 1000000000)) "$*" >&2
}

py() { python3 "$TESTDATA/release-helpers.py" "$@"; }

# run_parallel "name|cmd args..." ...: run the commands two at a time (each
# is a function of the script, run in a subshell); on failure print its log.
# MKRELEASE_VERBOSE=1 prints their timings.
MAXJOBS=2
run_parallel() {
	local j name pids=() names=() i fail=0
	local -a argv
	for j in "$@"; do
		while (($(jobs -rp | wc -l) >= MAXJOBS)); do wait -n || true; done
		name=${j%%|*}
		read -r -a argv <<<"${j#*|}"
		(
			TIMEFORMAT="job %1Rs wall %1Us user %1Ss sys  $name"
			time "${argv[@]}"
		) >"$W/log.$name" 2>&1 &
		pids+=($!) names+=("$name")
	done
	for i in "${!pids[@]}"; do
		if ! wait "${pids[$i]}"; then
			echo "${0##*/}: step ${names[$i]} failed:" >&2
			sed 's/^/  /' "$W/log.${names[$i]}" >&2
			fail=1
		fi
	done
	((fail == 0)) || exit 1
	[[ -z ${MKRELEASE_VERBOSE:-} ]] || grep -h '^job ' "${names[@]/#/$W/log.}" >&2
	return 0
}

# ------------------------------------------------------------- filesystems
# Pin mtimes (and, via debugfs below, ctimes/atimes/owners) of a tree.
pin_times() { find "$1" -exec touch -h -d "@$EPOCH" {} +; }

# mkfs.ext4 -d copies atime/ctime/uid/gid from the source inodes; ctime
# cannot be set from userspace, so fix all of them afterwards with debugfs.
mkext4() { # image size_mib label uuid hash_seed srcdir
	local img=$1 mib=$2 label=$3 fsuuid=$4 seed=$5 src=$6
	rm -f "$img"
	truncate -s "${mib}M" "$img"
	mkfs.ext4 -q -t ext4 -b 4096 -L "$label" -U "$fsuuid" \
		-E "hash_seed=$seed,root_owner=0:0" -d "$src" "$img"
	(cd "$src" && find . | sort) | sed -e 's|^\.||' -e 's|^$|/|' | while IFS= read -r p; do
		[[ $p != *[[:space:]\"]* ]] || { echo "unsupported path: $p" >&2; exit 1; }
		printf 'sif "%s" ctime @%s\nsif "%s" atime @%s\nsif "%s" uid 0\nsif "%s" gid 0\n' \
			"$p" "$EPOCH" "$p" "$EPOCH" "$p" "$p"
	done >"$img.debugfs"
	debugfs -w -f "$img.debugfs" "$img" >/dev/null 2>"$img.debugfs.err"
	if grep -v '^debugfs ' "$img.debugfs.err" >&2; then
		echo "debugfs reported errors for $img" >&2
		exit 1
	fi
	rm -f "$img.debugfs" "$img.debugfs.err"
}

# The filesystems of the partitions every layout has: root (4) from the tree
# $R, and a platform's boot (3) from a tree.
mkroot() { mkext4 "$W/root.ext4" "$(part_mib 4)" root "$ROOTFS_UUID" "$ROOTFS_HASH_SEED" "$R"; }
mkbootfs() { # platform srcdir -> $W/boot-PLATFORM.ext4
	mkext4 "$W/boot-$1.ext4" "$(part_mib 3)" boot "$BOOTFS_UUID" "$BOOTFS_HASH_SEED" "$2"
}

mkvfat() { # image size_kib volid label srcdir
	rm -f "$1"
	mkfs.fat --invariant -C -i "$3" -n "$4" "$1" "$2" >/dev/null
	mcopy -s -m -Q -i "$1" "$5"/* ::/
}

mkcpio() { # srcdir -> stdout (newc, reproducible)
	(cd "$1" && find . -mindepth 1 | sort | cpio -o -H newc -R 0:0 --reproducible --quiet)
}

# ------------------------------------------------------------------- disks
# PARTS: the partition table, "number:start MiB:size MiB:type GUID:name"
# each; partition N's GUID is 7b1b8a2c-71ac-4b1f-8c3a-9e6d1f00<GUIDTAG>0N.
# The last partition ends 1 MiB before the end of the disk, so that the 512
# and 4096-byte sector disks hold byte-identical partitions.
part_field() { local p; for p in "${PARTS[@]}"; do [[ ${p%%:*} == "$1" ]] && { cut -d: -f"$2" <<<"$p"; return; }; done; }
part_start() { part_field "$1" 2; }
part_mib() { part_field "$1" 3; }

# gpt_disk DEST SECTOR_SIZE: a DISK_MIB disk, all zeros but its GPT (and
# protective MBR). At 512-byte sectors sgdisk writes it; at 4096
# release-helpers.py does (sgdisk cannot be told the sector size of an
# image file), which is proved to match sgdisk at 512 first.
gpt_disk() {
	local p num start mib typ name guid parts=() sg=(-U "$DISK_GUID")
	for p in "${PARTS[@]}"; do
		IFS=: read -r num start mib typ name <<<"$p"
		guid=7b1b8a2c-71ac-4b1f-8c3a-9e6d1f00${GUIDTAG}0$num
		parts+=("$num:$((start * M)):$((mib * M)):$typ:$guid:$name")
		sg+=(-n "$num:$((start * M / 512)):$(((start + mib) * M / 512 - 1))" -c "$num:$name" -t "$num:$typ" -u "$num:$guid")
	done
	truncate -s "${DISK_MIB}M" "$1"
	if [[ $2 == 512 ]]; then
		sgdisk "${sg[@]}" "$1" >/dev/null
		truncate -s "${DISK_MIB}M" "$1.gptcheck"
		py gpt "$1.gptcheck" 512 "$DISK_GUID" "${parts[@]}"
		cmp -s "$1" "$1.gptcheck" || { echo "release-helpers.py gpt differs from sgdisk" >&2; exit 1; }
		rm -f "$1.gptcheck"
	else
		py gpt "$1" "$2" "$DISK_GUID" "${parts[@]}"
	fi
}

put() { dd if="$1" of="$2" bs=1M seek="$3" conv=notrunc${4:+,$4} status=none; }

# A platform's raw disk: metal's disk with that platform's boot fs spliced in.
variant_raw() { # platform dest
	cp --sparse=always "$W/disk-metal.raw" "$2"
	put "$W/boot-$1.ext4" "$2" "$(part_start 3)"
}

# --------------------------------------------------------------- artifacts
# Each job writes $OUT/<file> and, for compressed files, $META/<file>.usha.
# (python's hashlib uses the CPU's SHA extensions; sha256sum is ~6x slower)
usha() { py sha256 "$1" >"$META/$2.usha"; }
xz_to() { "${XZ[@]}" -c "$1" >"$2.tmp" && mv "$2.tmp" "$2"; }
# cosa compresses with `gzip -6 -c FILE`, which records FILE's name and mtime.
gzip_to() { touch -d "@$EPOCH" "$1" && (cd "$(dirname "$1")" && gzip -6 -c "$(basename "$1")") >"$2"; }

job_raw_xz() { # platform (metal and metal4k: $W/disk-PLATFORM.raw as it is)
	local f=$PREFIX-$1.$ARCH.raw src=$W/job-$1/$PREFIX-$1.$ARCH.raw
	mkdir -p "$W/job-$1"
	if [[ $1 == metal4k ]]; then src=$W/disk-metal4k.raw; elif [[ $1 == metal ]]; then src=$W/disk-metal.raw; else variant_raw "$1" "$src"; fi
	usha "$src" "$f.xz"
	xz_to "$src" "$OUT/$f.xz"
}
job_raw_gz() {
	local d=$W/job-$1 f=$PREFIX-$1.$ARCH.raw
	mkdir -p "$d"
	variant_raw "$1" "$d/$f"
	usha "$d/$f" "$f.gz"
	gzip_to "$d/$f" "$OUT/$f.gz"
}
mk_qcow2() { # platform dest [extra qemu-img args]
	local d=$W/job-$1 p=$1 dst=$2
	shift 2
	mkdir -p "$d"
	variant_raw "$p" "$d/disk.raw"
	qemu-img convert -f raw -O qcow2 "$@" "$d/disk.raw" "$dst"
	rm -f "$d/disk.raw"
}
job_qcow2_xz() {
	local f=$PREFIX-$1.$ARCH.qcow2
	mk_qcow2 "$1" "$W/job-$1/$f"
	usha "$W/job-$1/$f" "$f.xz"
	xz_to "$W/job-$1/$f" "$OUT/$f.xz"
}
mk_vmdk() { # platform dest options
	local d=$W/job-$1
	mkdir -p "$d"
	variant_raw "$1" "$d/disk.raw"
	qemu-img convert -f raw -O vmdk -o "$3" "$d/disk.raw" "$2"
	rm -f "$d/disk.raw"
	py fix-vmdk "$2" "$(vmdk_seed "$1")"
}
job_vmdk_xz() {
	local f=$PREFIX-$1.$ARCH.vmdk
	mk_vmdk "$1" "$W/job-$1/$f" adapter_type=lsilogic,subformat=streamOptimized,compat6
	usha "$W/job-$1/$f" "$f.xz"
	xz_to "$W/job-$1/$f" "$OUT/$f.xz"
}

# ------------------------------------------------------------ stream.json
row() { printf '%s %s %s %s %s\n' "$@" >>"$TABLE"; }
# add: a disk artifact, made by a job (named after its file) of run_parallel.
add() { # platform format file compressed(0|1) job args...
	local plat=$1 fmt=$2 file=$3 comp=$4
	shift 4
	JOBS+=("$file|$*")
	if [[ $comp == 1 ]]; then row "$plat" "$fmt" disk "$file" "@$file"; else row "$plat" "$fmt" disk "$file" -; fi
}

# write_stream: $OUT/stream.json from the table, once every job is done;
# every file of $OUT gets the build's mtime.
write_stream() {
	local plat fmt role file u f
	while read -r plat fmt role file u; do
		if [[ $u == @* ]]; then u=$(cat "$META/${u#@}.usha"); fi
		printf '%s %s %s %s %s\n' "$plat" "$fmt" "$role" "$file" "$u"
	done <"$TABLE" >"$TABLE.resolved"
	py stream "$OUT" "$TABLE.resolved" "$STREAM" "$RELEASE" "$ARCH" "$BASEURL" "$LAST_MODIFIED" "$GENERATOR"
	for f in "$OUT"/*; do touch -d "@$EPOCH" "$f"; done
}
