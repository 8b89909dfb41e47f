#!/usr/bin/env bash
# mkrelease.sh — build a small but realistic Fedora CoreOS-shaped release.
#
# Usage:
#   testdata/mkrelease.sh OUTDIR      build the release into OUTDIR (flat)
#   testdata/mkrelease.sh --check     report missing tools; exit 3 if any
#   testdata/mkrelease.sh --tools     list the tools this script needs
#
# Every artifact is made with the tools that make real FCOS artifacts
# (sgdisk, mkfs.ext4, mkfs.fat/mtools, qemu-img, xz, gzip, zip, GNU tar,
# GNU cpio, mksquashfs, xorriso, umoci) from a fixed subset of the Go
# toolchain at /usr/local/go, so sizes and compression ratios are realistic.
# Output is deterministic for a given set of tool versions: fixed UUIDs,
# hash seeds, timestamps and owners everywhere, and the few random fields
# qemu-img writes (VMDK CID, VHD footer, VHDX GUIDs) are pinned afterwards.
# See testdata/README.md for the layout, the commands and the deviations
# from real FCOS.
set -euo pipefail
export LC_ALL=C TZ=UTC PATH="$PATH:/usr/sbin:/sbin" # sgdisk, mkfs.* live in sbin
umask 022

TOOLS=(bash python3 sha256sum truncate dd cp find sort touch iconv
	sgdisk mkfs.ext4 debugfs mkfs.fat mcopy qemu-img xz gzip zip tar cpio
	mksquashfs xorriso umoci)

missing_tools() {
	local t
	for t in "${TOOLS[@]}"; do
		command -v "$t" >/dev/null 2>&1 || printf '%s\n' "$t"
	done
	[[ -r $GOROOT_SRC/pkg/tool/linux_amd64/compile ]] || printf '%s\n' "$GOROOT_SRC (Go toolchain, used as file content)"
}

# ---------------------------------------------------------------- constants
GOROOT_SRC=/usr/local/go
NAME=fedora-coreos
PRETTY="Fedora CoreOS"
STREAM=stable
RELEASE=42.20261101.3.0
ARCH=x86_64
GOARCH_DIR=linux_amd64
EPOCH=1793491200                       # 2026-11-01T00:00:00Z, the build date
LAST_MODIFIED=2026-11-04T15:07:23Z     # stream.json metadata
GENERATOR="fedora-coreos-stream-generator v0.4.0"
BASEURL="https://builds.example.invalid/prod/streams/$STREAM/builds/$RELEASE/$ARCH"
KVER=6.17.5-300.fc42.$ARCH
PREFIX="$NAME-$RELEASE"

# xz: FCOS uses `xz -c9 -T<ncpu>`; preset 9 runs at ~1 MB/s per thread and
# would take minutes here, so a fast preset is used (same container format,
# multi-threaded block layout, different LZMA2 parameters).
XZ=(xz -T2 -0)
# mksquashfs: FCOS uses zstd at its default level (15); level 9 is ~8x faster.
SQUASHFS_COMP=(-comp zstd -Xcompression-level 9)

# Disk layout (MiB): FCOS order, smaller sizes. Root ends 1 MiB before the end
# so the 512 and 4096-byte sector disks hold byte-identical partitions.
DISK_MIB=448
BIOS_START=1 BIOS_MIB=1
EFI_START=2 EFI_MIB=32
BOOT_START=34 BOOT_MIB=64
ROOT_START=98 ROOT_MIB=349
DISK_GUID=00000000-0000-4000-a000-000000000001       # as FCOS
BOOTFS_UUID=96d15588-3596-4b3c-adca-a2ff7279ea63     # as FCOS
ROOTFS_UUID=910678ff-f77e-4a7d-8d53-86f2ac47a823     # as FCOS
BOOTFS_HASH_SEED=5f1c0e1b-6a84-4f6e-9d55-0b3c2a7e9d01
ROOTFS_HASH_SEED=0c6f8f0e-2f61-4f0b-a0f7-5d6f3b9a4c02
ESP_VOLID=7B7795E7
EFIBOOT_VOLID=1F3A0C42
PART_BIOS_GUID=7b1b8a2c-71ac-4b1f-8c3a-9e6d1f000001
PART_EFI_GUID=7b1b8a2c-71ac-4b1f-8c3a-9e6d1f000002
PART_BOOT_GUID=7b1b8a2c-71ac-4b1f-8c3a-9e6d1f000003
PART_ROOT_GUID=7b1b8a2c-71ac-4b1f-8c3a-9e6d1f000004
TYPE_BIOS=21686148-6449-6E6F-744E-656564454649
TYPE_ESP=C12A7328-F81F-11D2-BA4B-00A0C93EC93B
TYPE_LINUX=0FC63DAF-8483-4772-8E79-3D69D8477DE4

# Every platform gets its own boot filesystem (only the BLS `options` line
# differs); metal4k reuses metal's.
PLATFORMS=(metal qemu openstack aliyun ibmcloud exoscale digitalocean nutanix
	aws vmware virtualbox azure hyperv gcp vultr hetzner applehv kubevirt)

# ------------------------------------------------------------------- args
case "${1:-}" in
--tools) printf '%s\n' "${TOOLS[@]}"; exit 0 ;;
--check)
	m=$(missing_tools)
	if [[ -n $m ]]; then printf '%s\n' "$m" | sed 's/^/missing: /' >&2; exit 3; fi
	exit 0 ;;
"" | -h | --help) sed -n '2,8s/^# \{0,1\}//p' "$0"; exit 2 ;;
esac
m=$(missing_tools)
if [[ -n $m ]]; then
	printf 'mkrelease.sh: missing required tools:\n' >&2
	printf '%s\n' "$m" | sed 's/^/  /' >&2
	exit 3
fi

START_NS=$(date +%s%N)
OUT=$1
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
W=$(mktemp -d "${TMPDIR:-/tmp}/mkrelease.XXXXXX")
cleanup() { rm -rf "$W"; }
trap cleanup EXIT
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

log() {
	local now
	now=$(date +%s%N)
	printf '[%4ds] %s\n' $(((now - START_NS) / 1000000000)) "$*" >&2
}

G=$GOROOT_SRC
T=$G/pkg/tool/$GOARCH_DIR
COMMIT=$(printf '%s' "$PREFIX ostree commit" | sha256sum | cut -c1-64)
BOOTCSUM=$(printf '%s' "$PREFIX boot checksum" | sha256sum | cut -c1-64)
DEPLOY=ostree/deploy/$NAME/deploy/$COMMIT.0

# ----------------------------------------------------------- python helpers
cat >"$W/helpers.py" <<'PYEOF'
import hashlib, json, os, struct, sys, uuid, zlib

def gb(s):
    return uuid.UUID(s).bytes_le

def chs(lba, heads=255, spt=63):
    # the LBA->CHS mapping GPT fdisk uses for the protective MBR
    if lba >= heads * spt * 1024:
        return b'\xfe\xff\xff'
    c, r = divmod(lba, heads * spt)
    h, s = divmod(r, spt)
    return bytes([h, ((c >> 8) << 6) | (s + 1), c & 0xff])

def gpt(path, ss, disk_guid, *parts):
    """Write protective MBR + primary/backup GPT exactly as sgdisk would,
    for any logical sector size. parts: start:size:type:guid:name (bytes)."""
    ss = int(ss)
    with open(path, 'r+b') as f:
        f.seek(0, 2)
        total = f.tell() // ss
        nent, esz = 128, 128
        es = (nent * esz + ss - 1) // ss
        first, last = 2 + es, total - 2 - es
        ent = bytearray(es * ss)
        for i, p in enumerate(parts):
            start, length, typ, pu, name = p.split(':')
            start, length = int(start), int(length)
            assert start % ss == 0 and length % ss == 0, p
            s, e = start // ss, (start + length) // ss - 1
            assert first <= s <= e <= last, p
            ent[i*esz:(i+1)*esz] = struct.pack('<16s16sQQQ72s', gb(typ), gb(pu), s, e, 0,
                                               name.encode('utf-16-le'))
        ecrc = zlib.crc32(ent[:nent*esz])
        def hdr(cur, alt, elba):
            h = bytearray(struct.pack('<8sIIIIQQQQ16sQIII', b'EFI PART', 0x10000, 92, 0, 0,
                                      cur, alt, first, last, gb(disk_guid), elba, nent, esz, ecrc))
            struct.pack_into('<I', h, 16, zlib.crc32(h))
            return bytes(h) + bytes(ss - len(h))
        f.seek(440)
        f.write(bytes(6) + struct.pack('<B3sB3sII', 0, chs(1), 0xEE, chs(total - 1), 1,
                                       min(total - 1, 0xffffffff)) + bytes(48) + b'\x55\xaa')
        f.seek(ss); f.write(hdr(1, total - 1, 2))
        f.seek(2 * ss); f.write(ent)
        f.seek((total - 1 - es) * ss); f.write(ent)
        f.seek((total - 1) * ss); f.write(hdr(total - 1, 1, total - 1 - es))

def seeded(seed, n):
    return hashlib.sha256(seed.encode()).digest()[:n]

def fix_vmdk(path, seed):
    """qemu-img puts a random CID ("%x", so of random length) in the
    embedded descriptor; rewrite the descriptor with a pinned one."""
    with open(path, 'r+b') as f:
        hdr = f.read(512)
        assert hdr[:4] == b'KDMV', 'not a sparse VMDK extent'
        off, size = struct.unpack_from('<QQ', hdr, 28)
        f.seek(off * 512)
        desc = f.read(size * 512)
        text = desc.rstrip(b'\0')
        lines = text.split(b'\n')
        n = [i for i, l in enumerate(lines) if l.startswith(b'CID=')]
        assert len(n) == 1, 'no CID line'
        lines[n[0]] = b'CID=' + seeded(seed, 4).hex().encode()
        text = b'\n'.join(lines)
        assert len(text) <= len(desc)
        f.seek(off * 512)
        f.write(text + bytes(len(desc) - len(text)))

def fix_vhd(path, seed, epoch):
    """Fixed VHD footer: pin timestamp and UUID, recompute the checksum."""
    with open(path, 'r+b') as f:
        f.seek(-512, 2); pos = f.tell()
        ft = bytearray(f.read(512))
        assert ft[:8] == b'conectix', 'no VHD footer'
        struct.pack_into('>I', ft, 24, int(epoch) - 946684800)
        ft[68:84] = seeded(seed, 16)
        struct.pack_into('>I', ft, 64, 0)
        struct.pack_into('>I', ft, 64, (~sum(ft)) & 0xffffffff)
        f.seek(pos); f.write(ft)

_crc32c_table = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _crc32c_table.append(_c)

def crc32c(b):
    c = 0xffffffff
    t = _crc32c_table
    for x in b:
        c = t[(c ^ x) & 0xff] ^ (c >> 8)
    return c ^ 0xffffffff

def fix_vhdx(path, seed):
    """qemu-img writes random GUIDs and a random header sequence number into
    a new VHDX; replace them with seeded values and recompute the CRC-32Cs."""
    with open(path, 'r+b') as f:
        data = bytearray(f.read(4 << 20))
        guids = {}
        def new(old):
            if old == bytes(16):
                return old
            return guids.setdefault(bytes(old), seeded(seed + 'guid%d' % len(guids), 16))
        hs = [64 << 10, 128 << 10]
        seqs = [struct.unpack_from('<Q', data, o + 8)[0] for o in hs]
        base = min(seqs)
        for o, sq in zip(hs, seqs):
            assert data[o:o+4] == b'head'
            struct.pack_into('<Q', data, o + 8, 1 + sq - base)
            for off in (16, 32, 48):
                data[o+off:o+off+16] = new(data[o+off:o+off+16])
            log_len, log_off = struct.unpack_from('<IQ', data, o + 68)
            struct.pack_into('<I', data, o + 4, 0)
            struct.pack_into('<I', data, o + 4, crc32c(data[o:o+4096]))
        # log entries
        for o in range(log_off, log_off + log_len, 4096):
            if data[o:o+4] != b'loge':
                continue
            elen = struct.unpack_from('<I', data, o + 8)[0]
            data[o+32:o+48] = new(data[o+32:o+48])
            struct.pack_into('<I', data, o + 4, 0)
            struct.pack_into('<I', data, o + 4, crc32c(data[o:o+elen]))
        # Page83Data (virtual disk id) in the metadata region
        rt = 192 << 10
        assert data[rt:rt+4] == b'regi'
        n = struct.unpack_from('<I', data, rt + 8)[0]
        md = None
        for k in range(n):
            e = rt + 16 + 32 * k
            if bytes(data[e:e+16]) == gb('8B7CA206-4790-4B9A-B8FE-575F050F886E'):
                md = struct.unpack_from('<Q', data, e + 16)[0]
        assert md is not None and data[md:md+8] == b'metadata'
        cnt = struct.unpack_from('<H', data, md + 10)[0]
        for k in range(cnt):
            e = md + 32 + 32 * k
            if bytes(data[e:e+16]) == gb('BECA12AB-B2E6-4523-93EF-C309E000C746'):
                off = md + struct.unpack_from('<I', data, e + 16)[0]
                data[off:off+16] = new(data[off:off+16])
        f.seek(0); f.write(data)

def sha256(path):
    print(_sha(path))

def _sha(p):
    h = hashlib.sha256()
    with open(p, 'rb') as f:
        for b in iter(lambda: f.read(1 << 20), b''):
            h.update(b)
    return h.hexdigest()

def stream(outdir, table, stream, release, arch, baseurl, last_modified, generator):
    """table lines: platform format role filename uncompressed-sha256|-"""
    arts = {}
    for line in open(table):
        plat, fmt, role, fn, usha = line.split()
        d = {'location': baseurl + '/' + fn, 'signature': baseurl + '/' + fn + '.sig',
             'sha256': _sha(os.path.join(outdir, fn))}
        if usha != '-':
            d['uncompressed-sha256'] = usha
        p = arts.setdefault(plat, {'release': release, 'formats': {}})
        p['formats'].setdefault(fmt, {})[role] = d
    doc = {'stream': stream,
           'metadata': {'last-modified': last_modified, 'generator': generator},
           'architectures': {arch: {'artifacts': arts, 'images': {}}}}
    with open(os.path.join(outdir, 'stream.json'), 'w') as f:
        json.dump(doc, f, indent=2, sort_keys=True)
        f.write('\n')

if __name__ == '__main__':
    globals()[sys.argv[1].replace('-', '_')](*sys.argv[2:])
PYEOF
py() { python3 "$W/helpers.py" "$@"; }

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

# run_parallel "name|cmd args..." ...: run the commands two at a time (each
# is a function of this script, run in a subshell); on failure print its log.
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
			echo "mkrelease.sh: step ${names[$i]} failed:" >&2
			sed 's/^/  /' "$W/log.${names[$i]}" >&2
			fail=1
		fi
	done
	((fail == 0)) || exit 1
	[[ -z ${MKRELEASE_VERBOSE:-} ]] || grep -h '^job ' "${names[@]/#/$W/log.}" >&2
	return 0
}

# --------------------------------------------------------- source payloads
log "payloads"
P=$W/payload
mkdir -p "$P"
# "vmlinuz": a 17 KiB "setup" header followed by a real ELF binary (~4.4 MiB).
{ head -c 17408 "$T/vet"; cat "$T/cgo"; } >"$P/vmlinuz"
head -c 946176 "$T/preprofile" >"$P/shimx64.efi"
head -c 2621440 "$G/bin/gofmt" >"$P/grubx64.efi"
head -c 86016 "$T/fix" >"$P/fbx64.efi"
head -c 65536 "$G/bin/gofmt" | tail -c 61440 >"$P/core.img"   # BIOS-BOOT payload
dd if="$G/bin/gofmt" bs=1 skip=4096 count=440 status=none >"$P/mbr.bin"

# ------------------------------------------------------------- root tree
log "root tree"
R=$W/root
mkdir -p "$R/$DEPLOY/usr/bin" "$R/$DEPLOY/usr/lib/golang/src" "$R/$DEPLOY/etc" \
	"$R/$DEPLOY/var" "$R/ostree/deploy/$NAME/var/lib" "$R/ostree/repo/objects" \
	"$R/ostree/repo/refs/heads" "$R/ostree/boot.1/$NAME/$BOOTCSUM" "$R/boot"
cp "$T/compile" "$T/link" "$T/asm" "$R/$DEPLOY/usr/bin/"
# What dracut copies into the initramfs comes from the OS tree, as in FCOS:
# Ignition's dracut module, coreos-installer, the kernel's module list.
mkdir -p "$R/$DEPLOY/usr/lib/dracut/modules.d/30ignition" "$R/$DEPLOY/usr/lib/modules/$KVER"
cp "$T/cover" "$R/$DEPLOY/usr/lib/dracut/modules.d/30ignition/ignition"
cp "$T/preprofile" "$R/$DEPLOY/usr/bin/coreos-installer"
cp "$G/src/cmd/go/alldocs.go" "$R/$DEPLOY/usr/lib/modules/$KVER/modules.txt"
cp -R "$G/src/runtime" "$G/src/crypto" "$R/$DEPLOY/usr/lib/golang/src/"
ln -s usr/bin "$R/$DEPLOY/bin"
ln -s usr/lib "$R/$DEPLOY/lib"
ln -s "../../../deploy/$NAME/deploy/$COMMIT.0" "$R/ostree/boot.1/$NAME/$BOOTCSUM/0"
ln -s boot.1 "$R/ostree/boot.1.1"
cat >"$R/$DEPLOY/usr/lib/os-release" <<EOF
NAME="Fedora Linux"
VERSION="$RELEASE (CoreOS)"
RELEASE_TYPE=stable
ID=fedora
VERSION_ID=42
VERSION_CODENAME=""
PLATFORM_ID="platform:f42"
PRETTY_NAME="Fedora CoreOS $RELEASE"
ANSI_COLOR="0;38;2;60;110;180"
LOGO=fedora-logo-icon
CPE_NAME="cpe:/o:fedoraproject:fedora:42"
HOME_URL="https://getfedora.org/coreos/"
DOCUMENTATION_URL="https://docs.fedoraproject.org/en-US/fedora-coreos/"
SUPPORT_URL="https://github.com/coreos/fedora-coreos-tracker/"
BUG_REPORT_URL="https://github.com/coreos/fedora-coreos-tracker/"
REDHAT_BUGZILLA_PRODUCT="Fedora"
REDHAT_BUGZILLA_PRODUCT_VERSION=42
REDHAT_SUPPORT_PRODUCT="Fedora"
REDHAT_SUPPORT_PRODUCT_VERSION=42
SUPPORT_END=2026-05-13
VARIANT="CoreOS"
VARIANT_ID=coreos
OSTREE_VERSION='$RELEASE'
EOF
ln -s ../usr/lib/os-release "$R/$DEPLOY/etc/os-release"
printf '[core]\nrepo_version=1\nmode=bare\n\n[sysroot]\nreadonly=true\nbootloader=none\n' >"$R/ostree/repo/config"
printf '%s\n' "$COMMIT" >"$R/ostree/repo/refs/heads/$NAME"
cat >"$R/.coreos-aleph-version.json" <<EOF
{
    "build": "$RELEASE",
    "imgid": "$PREFIX-qemu.$ARCH.qcow2",
    "ostree-commit": "$COMMIT",
    "ref": "",
    "container-image": {
        "image-name": "quay.io/fedora/fedora-coreos:$STREAM",
        "image-digest": "sha256:$(printf '%s' "$PREFIX image" | sha256sum | cut -c1-64)",
        "container-imgref": "ostree-remote-registry:fedora:quay.io/fedora/fedora-coreos:$STREAM"
    }
}
EOF
pin_times "$R"

# ------------------------------------------------------------- initramfs
log "initramfs"
mkcpio() { # srcdir -> stdout (newc, reproducible)
	(cd "$1" && find . -mindepth 1 | sort | cpio -o -H newc -R 0:0 --reproducible --quiet)
}
I=$W/initrd
mkdir -p "$I/usr/bin" "$I/usr/lib/dracut" "$I/etc" "$I/usr/lib/systemd" "$I/sysroot" "$I/proc" "$I/sys" "$I/dev" "$I/run"
cp "$T/cover" "$I/usr/bin/ignition"
cp "$G/src/cmd/go/alldocs.go" "$I/usr/lib/dracut/modules.txt"
printf 'NAME="Fedora Linux"\nVERSION="42 (CoreOS) dracut-105-4.fc42"\nID=fedora\nVERSION_ID=42\n' >"$I/etc/initrd-release"
printf '#!/bin/sh\nexec /usr/lib/systemd/systemd "$@"\n' >"$I/init"
chmod 0755 "$I/init"
ln -s ../../bin/ignition "$I/usr/lib/systemd/systemd"
pin_times "$I"
mkcpio "$I" | gzip -6 -n >"$P/initramfs-disk.img"
# The live initramfs is the disk one plus the live-boot bits.
mkdir -p "$I/usr/lib/coreos" "$I/etc/coreos-live"
cp "$T/preprofile" "$I/usr/bin/coreos-installer"
printf '[Unit]\nDescription=Acquire live PXE rootfs image\n[Service]\nType=oneshot\nExecStart=/usr/sbin/coreos-livepxe-rootfs\n' >"$I/usr/lib/coreos/coreos-livepxe-rootfs.service"
printf 'live\n' >"$I/etc/coreos-live/initramfs"
pin_times "$I"
mkcpio "$I" | gzip -6 -n >"$OUT/$PREFIX-live-initramfs.$ARCH.img"
cp "$P/vmlinuz" "$OUT/$PREFIX-live-kernel.$ARCH"

# -------------------------------------------------------------- EFI / boot
log "filesystems"
E=$W/esp
mkdir -p "$E/EFI/BOOT" "$E/EFI/fedora"
cp "$P/shimx64.efi" "$E/EFI/BOOT/BOOTX64.EFI"
cp "$P/fbx64.efi" "$E/EFI/BOOT/fbx64.efi"
cp "$P/shimx64.efi" "$E/EFI/fedora/shimx64.efi"
cp "$P/grubx64.efi" "$E/EFI/fedora/grubx64.efi"
{ printf '\xff\xfe'; printf 'shimx64.efi,Fedora,,This is the boot entry for Fedora\n' | iconv -f ASCII -t UTF-16LE; } >"$E/EFI/fedora/BOOTX64.CSV"
cat >"$E/EFI/fedora/grub.cfg" <<'EOF'
if [ -e (md/md-boot) ]; then
  set prefix=md/md-boot
else
  if [ -f ${config_directory}/bootuuid.cfg ]; then
    source ${config_directory}/bootuuid.cfg
  fi
  if [ -n "${BOOT_UUID}" ]; then
    search --fs-uuid "${BOOT_UUID}" --set prefix --no-floppy
  else
    search --label boot --set prefix --no-floppy
  fi
fi
if [ -d ($prefix)/grub2 ]; then
  set prefix=($prefix)/grub2
  configfile $prefix/grub.cfg
else
  set prefix=($prefix)/boot/grub2
  configfile $prefix/grub.cfg
fi
boot
EOF
printf 'set BOOT_UUID="%s"\n' "$BOOTFS_UUID" >"$E/EFI/fedora/bootuuid.cfg"
pin_times "$E"
mkvfat() { # image size_kib volid label srcdir
	rm -f "$1"
	mkfs.fat --invariant -C -i "$3" -n "$4" "$1" "$2" >/dev/null
	mcopy -s -m -Q -i "$1" "$5"/* ::/
}
mkvfat "$W/esp.img" $((EFI_MIB * 1024)) "$ESP_VOLID" EFI-SYSTEM "$E"

B=$W/boot
mkdir -p "$B/loader/entries" "$B/ostree/$NAME-$BOOTCSUM" "$B/grub2" "$B/coreos"
cp "$P/vmlinuz" "$B/ostree/$NAME-$BOOTCSUM/vmlinuz-$KVER"
cp "$P/initramfs-disk.img" "$B/ostree/$NAME-$BOOTCSUM/initramfs-$KVER.img"
printf 'set BOOT_UUID="%s"\n' "$BOOTFS_UUID" >"$B/grub2/bootuuid.cfg"
cat >"$B/grub2/grub.cfg" <<'EOF'
# This file is generated by coreos-assembler; do not edit.
set pager=1
if [ -f ${config_directory}/grubenv ]; then
  load_env -f ${config_directory}/grubenv
elif [ -s $prefix/grubenv ]; then
  load_env
fi
if [ x"${feature_menuentry_id}" = xy ]; then
  menuentry_id_option="--id"
else
  menuentry_id_option=""
fi
serial --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=1
set ignition_firstboot=""
if [ -f "/ignition.firstboot" ]; then
    set ignition_network_kcmdline=""
    if [ -f "/ignition.firstboot" ]; then
        source "/ignition.firstboot"
    fi
    set ignition_firstboot="ignition.firstboot ${ignition_network_kcmdline}"
fi
blscfg
EOF
printf '# Remove this file to disable Ignition on next boot\n' >"$B/ignition.firstboot"
cat >"$B/coreos/platforms.json" <<'EOF'
{
  "aliyun": {"grub_commands": ["serial --speed=115200", "terminal_input serial console", "terminal_output serial console"], "kernel_arguments": ["console=tty0", "console=ttyS0,115200n8"]},
  "aws": {"grub_commands": ["serial --speed=115200", "terminal_input serial console", "terminal_output serial console"], "kernel_arguments": ["console=tty0", "console=ttyS0,115200n8"]},
  "azure": {"grub_commands": ["serial --speed=115200", "terminal_input serial console", "terminal_output serial console"], "kernel_arguments": ["console=tty0", "console=ttyS0,115200n8"]},
  "gcp": {"grub_commands": ["serial --speed=115200", "terminal_input serial console", "terminal_output serial console"], "kernel_arguments": ["console=ttyS0,115200n8"]},
  "qemu": {"grub_commands": ["serial --speed=115200", "terminal_input serial console", "terminal_output serial console"], "kernel_arguments": ["console=tty0", "console=ttyS0,115200n8"]}
}
EOF
bls_entry() { # platform
	cat <<EOF
title $PRETTY $RELEASE (ostree:0)
version 1
options mitigations=auto,nosmt ignition.platform.id=$1 \$ignition_firstboot ostree=/ostree/boot.1/$NAME/$BOOTCSUM/0 root=UUID=$ROOTFS_UUID rw rootflags=prjquota boot=UUID=$BOOTFS_UUID
linux /ostree/$NAME-$BOOTCSUM/vmlinuz-$KVER
initrd /ostree/$NAME-$BOOTCSUM/initramfs-$KVER.img
EOF
}
mkboot() { # platform
	cp -a "$B" "$W/boot.$1"
	bls_entry "$1" >"$W/boot.$1/loader/entries/ostree-1.conf"
	pin_times "$W/boot.$1"
	mkext4 "$W/boot-$1.ext4" "$BOOT_MIB" boot "$BOOTFS_UUID" "$BOOTFS_HASH_SEED" "$W/boot.$1"
	rm -rf "$W/boot.$1"
}
mkroot() { mkext4 "$W/root.ext4" "$ROOT_MIB" root "$ROOTFS_UUID" "$ROOTFS_HASH_SEED" "$R"; }
FSJOBS=("root.ext4|mkroot")
for p in "${PLATFORMS[@]}"; do FSJOBS+=("boot-$p.ext4|mkboot $p"); done
run_parallel "${FSJOBS[@]}"

# ------------------------------------------------------------------ disks
log "disks"
M=$((1 << 20))
PARTS=(
	"$((BIOS_START * M)):$((BIOS_MIB * M)):$TYPE_BIOS:$PART_BIOS_GUID:BIOS-BOOT"
	"$((EFI_START * M)):$((EFI_MIB * M)):$TYPE_ESP:$PART_EFI_GUID:EFI-SYSTEM"
	"$((BOOT_START * M)):$((BOOT_MIB * M)):$TYPE_LINUX:$PART_BOOT_GUID:boot"
	"$((ROOT_START * M)):$((ROOT_MIB * M)):$TYPE_LINUX:$PART_ROOT_GUID:root"
)
put() { dd if="$1" of="$2" bs=1M seek="$3" conv=notrunc${4:+,$4} status=none; }
fill_disk() { # disk boot-fs   (the disk is still all zeros: write sparsely)
	put "$P/core.img" "$1" "$BIOS_START" sparse
	put "$W/esp.img" "$1" "$EFI_START" sparse
	put "$2" "$1" "$BOOT_START" sparse
	put "$W/root.ext4" "$1" "$ROOT_START" sparse
	dd if="$P/mbr.bin" of="$1" bs=440 count=1 conv=notrunc status=none
}
s() { echo $(($1 * M / 512)); }
e() { echo $((($1 + $2) * M / 512 - 1)); }
truncate -s "${DISK_MIB}M" "$W/disk.raw"
sgdisk -U "$DISK_GUID" \
	-n "1:$(s $BIOS_START):$(e $BIOS_START $BIOS_MIB)" -c 1:BIOS-BOOT -t "1:$TYPE_BIOS" -u "1:$PART_BIOS_GUID" \
	-n "2:$(s $EFI_START):$(e $EFI_START $EFI_MIB)" -c 2:EFI-SYSTEM -t "2:$TYPE_ESP" -u "2:$PART_EFI_GUID" \
	-n "3:$(s $BOOT_START):$(e $BOOT_START $BOOT_MIB)" -c 3:boot -t "3:$TYPE_LINUX" -u "3:$PART_BOOT_GUID" \
	-n "4:$(s $ROOT_START):$(e $ROOT_START $ROOT_MIB)" -c 4:root -t "4:$TYPE_LINUX" -u "4:$PART_ROOT_GUID" \
	"$W/disk.raw" >/dev/null
# The 4K-sector GPT is written by helpers.py (sgdisk cannot be told the
# sector size of an image file). Prove the writer matches sgdisk at 512.
truncate -s "${DISK_MIB}M" "$W/gptcheck.raw"
py gpt "$W/gptcheck.raw" 512 "$DISK_GUID" "${PARTS[@]}"
cmp -s "$W/disk.raw" "$W/gptcheck.raw" || { echo "helpers.py gpt differs from sgdisk" >&2; exit 1; }
rm -f "$W/gptcheck.raw"
fill_disk "$W/disk.raw" "$W/boot-metal.ext4"
mv "$W/disk.raw" "$W/disk-metal.raw"

truncate -s "${DISK_MIB}M" "$W/disk-metal4k.raw"
py gpt "$W/disk-metal4k.raw" 4096 "$DISK_GUID" "${PARTS[@]}"
fill_disk "$W/disk-metal4k.raw" "$W/boot-metal.ext4"

# A platform's raw disk: metal's disk with that platform's boot fs spliced in.
variant_raw() { # platform dest
	cp --sparse=always "$W/disk-metal.raw" "$2"
	put "$W/boot-$1.ext4" "$2" "$BOOT_START"
}

# ----------------------------------------------------- live ISO / PXE rootfs
job_live() {
	# live rootfs: newc cpio holding root.squashfs of the same tree as the disk.
	L=$W/liverootfs
	mkdir -p "$L"
	env -u SOURCE_DATE_EPOCH mksquashfs "$R" "$L/root.squashfs" "${SQUASHFS_COMP[@]}" -noappend -no-progress -quiet \
		-processors 2 -all-root -no-xattrs -reproducible -mkfs-time "$EPOCH" -all-time "$EPOCH" >/dev/null
	pin_times "$L"
	mkcpio "$L" >"$OUT/$PREFIX-live-rootfs.$ARCH.img"
	rm -rf "$L"

	ISO=$W/iso
	mkdir -p "$ISO/images/pxeboot" "$ISO/EFI/BOOT" "$ISO/EFI/fedora" "$ISO/coreos"
	cp "$OUT/$PREFIX-live-kernel.$ARCH" "$ISO/images/pxeboot/vmlinuz"
	cp "$OUT/$PREFIX-live-initramfs.$ARCH.img" "$ISO/images/pxeboot/initrd.img"
	cp "$OUT/$PREFIX-live-rootfs.$ARCH.img" "$ISO/images/pxeboot/rootfs.img"
	head -c 262144 /dev/zero >"$ISO/images/ignition.img"
	cp "$P/shimx64.efi" "$ISO/EFI/BOOT/BOOTX64.EFI"
	cp "$P/grubx64.efi" "$ISO/EFI/BOOT/grubx64.efi"
	LIVE_KARGS="coreos.liveiso=$PREFIX ignition.firstboot ignition.platform.id=metal"
	{
		printf 'set timeout=5\n'
		printf "menuentry '%s (Live) %s' --class fedora --class gnu-linux --class gnu --class os {\n" "$PRETTY" "$RELEASE"
		printf '\tlinux /images/pxeboot/vmlinuz mitigations=auto,nosmt %s\n' "$LIVE_KARGS"
		printf '\tinitrd /images/pxeboot/initrd.img /images/ignition.img\n}\n'
	} >"$ISO/EFI/fedora/grub.cfg"
	cp "$ISO/EFI/fedora/grub.cfg" "$ISO/EFI/BOOT/grub.cfg"
	printf '{\n  "installer-config": true,\n  "installer-config-directives": {"append-karg": true, "architecture": true},\n  "live-initrd-network": true\n}\n' >"$ISO/coreos/features.json"
	printf '{"file": "images/ignition.img"}\n' >"$ISO/coreos/igninfo.json"
	printf '{"default": " mitigations=auto,nosmt %s", "files": [{"path": "EFI/fedora/grub.cfg"}], "size": 1138}\n' "$LIVE_KARGS" >"$ISO/coreos/kargs.json"
	EB=$W/efiboot
	mkdir -p "$EB/EFI/BOOT" "$EB/EFI/fedora"
	cp "$ISO/EFI/BOOT/BOOTX64.EFI" "$ISO/EFI/BOOT/grubx64.efi" "$EB/EFI/BOOT/"
	cp "$ISO/EFI/fedora/grub.cfg" "$EB/EFI/fedora/"
	pin_times "$EB"
	mkvfat "$ISO/images/efiboot.img" 8192 "$EFIBOOT_VOLID" EFIBOOT "$EB"
	pin_times "$ISO"
	head -c 432 /dev/zero >"$W/isohybrid-mbr.bin" # no syslinux: zero boot code
	xorriso -as mkisofs -quiet -o "$OUT/$PREFIX-live-iso.$ARCH.iso" \
		-V "$PREFIX" -volset "$PREFIX" -r -J -joliet-long \
		-isohybrid-mbr "$W/isohybrid-mbr.bin" \
		-e images/efiboot.img -no-emul-boot -isohybrid-gpt-basdat \
		"$ISO" 2>"$W/xorriso.log" || { cat "$W/xorriso.log" >&2; exit 1; }
	rm -rf "$ISO"
}

# ------------------------------------------------------------- artifacts
# Each job writes $OUT/<file> and, for compressed files, $META/<file>.usha.
# (python's hashlib uses the CPU's SHA extensions; sha256sum is ~6x slower)
usha() { py sha256 "$1" >"$META/$2.usha"; }
xz_to() { "${XZ[@]}" -c "$1" >"$2.tmp" && mv "$2.tmp" "$2"; }
# cosa compresses with `gzip -6 -c FILE`, which records FILE's name and mtime.
gzip_to() { touch -d "@$EPOCH" "$1" && (cd "$(dirname "$1")" && gzip -6 -c "$(basename "$1")") >"$2"; }

job_raw_xz() { # platform format-suffix
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
job_qcow2_gz() {
	local f=$PREFIX-$1.$ARCH.qcow2
	mk_qcow2 "$1" "$W/job-$1/$f"
	usha "$W/job-$1/$f" "$f.gz"
	gzip_to "$W/job-$1/$f" "$OUT/$f.gz"
}
job_qcow2_c() { mk_qcow2 "$1" "$OUT/$PREFIX-$1.$ARCH.qcow2" -c; }
mk_vmdk() { # platform dest options
	local d=$W/job-$1
	mkdir -p "$d"
	variant_raw "$1" "$d/disk.raw"
	qemu-img convert -f raw -O vmdk -o "$3" "$d/disk.raw" "$2"
	rm -f "$d/disk.raw"
	py fix-vmdk "$2" "$PREFIX-$1 vmdk"
}
job_vmdk_xz() {
	local f=$PREFIX-$1.$ARCH.vmdk
	mk_vmdk "$1" "$W/job-$1/$f" adapter_type=lsilogic,subformat=streamOptimized,compat6
	usha "$W/job-$1/$f" "$f.xz"
	xz_to "$W/job-$1/$f" "$OUT/$f.xz"
}
job_ova() { # platform vmdk-options
	local d=$W/job-$1 f=$PREFIX-$1.$ARCH
	mk_vmdk "$1" "$d/$f.vmdk" "$2"
	local vsize cap
	vsize=$(stat -c %s "$d/$f.vmdk")
	cap=$((DISK_MIB * M))
	mkdir -p "$d/ova"
	mv "$d/$f.vmdk" "$d/ova/disk.vmdk"
	ovf "$1" "$vsize" "$cap" >"$d/ova/coreos.ovf"
	touch -d "@$EPOCH" "$d/ova/disk.vmdk" "$d/ova/coreos.ovf"
	chmod 0644 "$d/ova/disk.vmdk" "$d/ova/coreos.ovf"
	tar --format=ustar --owner=0 --group=0 --numeric-owner --mtime="@$EPOCH" \
		-C "$d/ova" -cf "$OUT/$f.ova" coreos.ovf disk.vmdk
}
ovf() { # platform vmdk-size capacity
	local ostype=other5xLinux64Guest systype=vmx-17 net=VmxNet3 scsi=lsilogic
	if [[ $1 == virtualbox ]]; then ostype=Fedora_64 systype=virtualbox-2.2 net=E1000 scsi=lsilogic; fi
	cat <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <References>
    <File ovf:href="disk.vmdk" ovf:id="file1" ovf:size="$2"/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:capacity="$3" ovf:capacityAllocationUnits="byte" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized" ovf:populatedSize="$2"/>
  </DiskSection>
  <NetworkSection>
    <Info>The list of logical networks</Info>
    <Network ovf:name="VM Network">
      <Description>The VM Network network</Description>
    </Network>
  </NetworkSection>
  <VirtualSystem ovf:id="$PREFIX-$1">
    <Info>A virtual machine</Info>
    <Name>$PRETTY $RELEASE</Name>
    <OperatingSystemSection ovf:id="100" vmw:osType="$ostype">
      <Info>The kind of installed guest operating system</Info>
    </OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>$PREFIX-$1</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>$systype</vssd:VirtualSystemType>
      </System>
      <Item>
        <rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits>
        <rasd:Description>Number of Virtual CPUs</rasd:Description>
        <rasd:ElementName>2 virtual CPU(s)</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>2</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>
        <rasd:Description>Memory Size</rasd:Description>
        <rasd:ElementName>4096MB of memory</rasd:ElementName>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>4096</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:Address>0</rasd:Address>
        <rasd:Description>SCSI Controller</rasd:Description>
        <rasd:ElementName>SCSI Controller 0</rasd:ElementName>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceSubType>$scsi</rasd:ResourceSubType>
        <rasd:ResourceType>6</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:ElementName>Hard disk 0</rasd:ElementName>
        <rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource>
        <rasd:InstanceID>4</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>
        <rasd:Connection>VM Network</rasd:Connection>
        <rasd:ElementName>Network adapter 1</rasd:ElementName>
        <rasd:InstanceID>5</rasd:InstanceID>
        <rasd:ResourceSubType>$net</rasd:ResourceSubType>
        <rasd:ResourceType>10</rasd:ResourceType>
      </Item>
    </VirtualHardwareSection>
    <ProductSection>
      <Info>Information about the installed software</Info>
      <Product>$PRETTY</Product>
      <Vendor>$NAME</Vendor>
      <Version>$RELEASE</Version>
    </ProductSection>
  </VirtualSystem>
</Envelope>
EOF
}
job_vhd_xz() {
	local d=$W/job-$1 f=$PREFIX-$1.$ARCH.vhd
	mkdir -p "$d"
	variant_raw "$1" "$d/disk.raw"
	qemu-img convert -f raw -O vpc -o subformat=fixed,force_size=on "$d/disk.raw" "$d/$f"
	rm -f "$d/disk.raw"
	py fix-vhd "$d/$f" "$PREFIX-$1 vhd" "$EPOCH"
	usha "$d/$f" "$f.xz"
	xz_to "$d/$f" "$OUT/$f.xz"
}
job_vhdx_zip() {
	local d=$W/job-$1 f=$PREFIX-$1.$ARCH.vhdx
	mkdir -p "$d"
	variant_raw "$1" "$d/disk.raw"
	qemu-img convert -f raw -O vhdx "$d/disk.raw" "$d/$f"
	rm -f "$d/disk.raw"
	py fix-vhdx "$d/$f" "$PREFIX-$1 vhdx"
	usha "$d/$f" "$f.zip"
	touch -d "@$EPOCH" "$d/$f"
	(cd "$d" && zip -q -X -j "$OUT/$f.zip.tmp" "$f")
	mv "$OUT/$f.zip.tmp" "$OUT/$f.zip"
}
job_gcp() {
	local d=$W/job-$1
	mkdir -p "$d/tar"
	variant_raw "$1" "$d/tar/disk.raw"
	touch -d "@$EPOCH" "$d/tar/disk.raw"
	chmod 0644 "$d/tar/disk.raw"
	tar --format=oldgnu -S --hole-detection=raw --owner=0 --group=0 --numeric-owner \
		--mtime="@$EPOCH" -C "$d/tar" -cf - disk.raw | gzip -6 -n >"$OUT/$PREFIX-$1.$ARCH.tar.gz"
}
job_kubevirt() {
	local d=$W/job-$1 f=$PREFIX-$1.$ARCH
	local created
	created=$(date -u -d "@$EPOCH" +%Y-%m-%dT%H:%M:%SZ)
	mkdir -p "$d/src"
	mk_qcow2 "$1" "$d/src/disk.img"
	chmod 0555 "$d/src/disk.img"
	touch -d "@$EPOCH" "$d/src/disk.img"
	local idmap=(--uid-map "0:$(id -u):1" --gid-map "0:$(id -g):1")
	[[ $(id -u) == 0 ]] || idmap+=(--rootless)
	umoci init --layout "$d/oci"
	umoci new --image "$d/oci:latest"
	umoci config --image "$d/oci:latest" --no-history --created "$created" --architecture amd64 --os linux
	umoci insert "${idmap[@]}" --image "$d/oci:latest" --history.created "$created" \
		--history.created_by "coreos-assembler kubevirt containerdisk" "$d/src/disk.img" /disk/disk.img
	umoci gc --layout "$d/oci"
	# skopeo's oci-archive writer stamps the current time on every member,
	# so archive the (deterministic) umoci layout with GNU tar instead.
	find "$d/oci" -type d -exec chmod 0755 {} + -o -type f -exec chmod 0644 {} +
	pin_times "$d/oci"
	tar --format=ustar --sort=name --owner=root:0 --group=root:0 --mtime="@$EPOCH" \
		-C "$d/oci" -cf "$OUT/$f.ociarchive" oci-layout index.json blobs
}

# Table for stream.json: platform format role file uncompressed-sha (- = none)
TABLE=$W/table
: >"$TABLE"
row() { printf '%s %s %s %s %s\n' "$@" >>"$TABLE"; }
# name: job function, args, platform, format key, file
JOBS=()
add() { # platform format file compressed(0|1) job args...
	local plat=$1 fmt=$2 file=$3 comp=$4
	shift 4
	JOBS+=("$file|$*")
	if [[ $comp == 1 ]]; then row "$plat" "$fmt" disk "$file" "@$file"; else row "$plat" "$fmt" disk "$file" -; fi
}
X=$ARCH
# longest first
JOBS+=("live|job_live")
add metal raw.xz "$PREFIX-metal.$X.raw.xz" 1 job_raw_xz metal
add metal 4k.raw.xz "$PREFIX-metal4k.$X.raw.xz" 1 job_raw_xz metal4k
add azure vhd.xz "$PREFIX-azure.$X.vhd.xz" 1 job_vhd_xz azure
add vultr raw.xz "$PREFIX-vultr.$X.raw.xz" 1 job_raw_xz vultr
add hetzner raw.xz "$PREFIX-hetzner.$X.raw.xz" 1 job_raw_xz hetzner
add aws vmdk.xz "$PREFIX-aws.$X.vmdk.xz" 1 job_vmdk_xz aws
for p in qemu openstack aliyun ibmcloud exoscale; do
	add "$p" qcow2.xz "$PREFIX-$p.$X.qcow2.xz" 1 job_qcow2_xz "$p"
done
add hyperv vhdx.zip "$PREFIX-hyperv.$X.vhdx.zip" 1 job_vhdx_zip hyperv
add vmware ova "$PREFIX-vmware.$X.ova" 0 job_ova vmware adapter_type=lsilogic,subformat=streamOptimized,compat6
add virtualbox ova "$PREFIX-virtualbox.$X.ova" 0 job_ova virtualbox subformat=streamOptimized
add digitalocean qcow2.gz "$PREFIX-digitalocean.$X.qcow2.gz" 1 job_qcow2_gz digitalocean
add applehv raw.gz "$PREFIX-applehv.$X.raw.gz" 1 job_raw_gz applehv
add gcp tar.gz "$PREFIX-gcp.$X.tar.gz" 0 job_gcp gcp
add nutanix qcow2 "$PREFIX-nutanix.$X.qcow2" 0 job_qcow2_c nutanix
add kubevirt ociarchive "$PREFIX-kubevirt.$X.ociarchive" 0 job_kubevirt kubevirt
row metal iso disk "$PREFIX-live-iso.$X.iso" -
row metal pxe kernel "$PREFIX-live-kernel.$X" -
row metal pxe initramfs "$PREFIX-live-initramfs.$X.img" -
row metal pxe rootfs "$PREFIX-live-rootfs.$X.img" -

log "artifacts (${#JOBS[@]} jobs, 2 at a time)"
run_parallel "${JOBS[@]}"
rm -rf "$W"/job-*

# ------------------------------------------------------------ stream.json
log "stream.json"
while read -r plat fmt role file u; do
	if [[ $u == @* ]]; then u=$(cat "$META/${u#@}.usha"); fi
	printf '%s %s %s %s %s\n' "$plat" "$fmt" "$role" "$file" "$u"
done <"$TABLE" >"$TABLE.resolved"
py stream "$OUT" "$TABLE.resolved" "$STREAM" "$RELEASE" "$ARCH" "$BASEURL" "$LAST_MODIFIED" "$GENERATOR"
for f in "$OUT"/*; do touch -d "@$EPOCH" "$f"; done

# ---------------------------------------------------------------- summary
total=0
printf '\n%-62s %12s\n' FILE BYTES
while read -r _ _ _ file _; do
	sz=$(stat -c %s "$OUT/$file")
	total=$((total + sz))
	printf '%-62s %12d\n' "$file" "$sz"
done <"$TABLE"
printf '%-62s %12d\n' "total shipped" "$total"
log "done: $OUT"
