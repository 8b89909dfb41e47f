#!/usr/bin/env bash
# mkmini.sh — build a small Fedora CoreOS-shaped release for one non-x86_64
# architecture, in seconds: the second architecture of multi-arch tests.
#
# Usage:
#   testdata/mkmini.sh ARCH OUTDIR   build ARCH's release into OUTDIR (flat)
#   testdata/mkmini.sh --check       report missing tools; exit 3 if any
#   testdata/mkmini.sh --tools       list the tools this script needs
#
# ARCH is aarch64, ppc64le or s390x. The disk is a 72 MiB GPT disk with the
# architecture's FCOS partition layout (aarch64: reserved, ESP, boot, root;
# ppc64le: PReP, reserved, boot, root; s390x: boot and root as partitions 3
# and 4), ext4 filesystems holding an arch-specific subset of the Go
# toolchain at /usr/local/go. Artifacts, made with the real tools (sgdisk,
# mkfs.ext4, mkfs.fat/mtools, qemu-img, xz, gzip, tar via python's tarfile
# as coreos-assembler, zstd):
#   every ARCH  metal raw.xz, metal 4k.raw.xz, qemu qcow2.xz, openstack qcow2.xz
#   aarch64     aws vmdk.xz (streamOptimized), applehv raw.gz
#   ppc64le     powervs ova.gz (tar of disk.raw, coreos.ovf, coreos.meta; gzip)
#   s390x       qemu-secex qcow2.xz
#   every ARCH  newcloud raw.zst: a platform and a compression rehydrator does
#               not know (zstd -3), to exercise the generic path
# plus stream.json (stream stable, release 42.20261101.3.0, sha256 and
# uncompressed-sha256, locations under https://builds.example.invalid/).
# Output is deterministic for a given set of tool versions, as mkrelease.sh's
# (see testdata/README.md).
set -euo pipefail

TOOLS=(bash python3 sha256sum truncate dd cp find sort touch cmp
	sgdisk mkfs.ext4 debugfs mkfs.fat mcopy cpio qemu-img xz gzip zstd)

# The release's identity, the determinism tricks and the helpers shared
# with mkrelease.sh.
TESTDATA=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/release-lib.sh
. "$TESTDATA/release-lib.sh"

tool_modes "${1:-}"
case "${1:-}" in
aarch64 | ppc64le | s390x) ;;
"" | -h | --help) sed -n '2,9s/^# \{0,1\}//p' "$0"; exit 2 ;;
*) echo "mkmini.sh: unknown architecture ${1@Q} (want aarch64, ppc64le or s390x)" >&2; exit 2 ;;
esac
[[ $# == 2 ]] || { sed -n '2,9s/^# \{0,1\}//p' "$0"; exit 2; }
require_tools
release_setup "$1" "$2"

# ---------------------------------------------------------------- constants
DISK_MIB=72
TYPE_RESERVED=8DA63339-0007-60C0-C436-083AC8230908
TYPE_PREP=9E1A2D38-C612-4316-AA26-8B49521E5A8B
TYPE_XBOOTLDR=BC13C2FF-59E6-4262-A352-B275FD6F7172
# Per architecture: partitions (PARTS, see release-lib.sh), the Go files
# that make the root filesystem's content (different per architecture, as
# binaries are), and the extra platforms.
case $ARCH in
aarch64)
	PARTS=("1:1:1:$TYPE_RESERVED:reserved" "2:2:8:$TYPE_ESP:EFI-SYSTEM"
		"3:10:16:$TYPE_XBOOTLDR:boot" "4:26:45:B921B045-1DF0-41C3-AF44-4C6F280D3FAE:root")
	BINS=(asm) SRCS=(net compress image)
	PLATFORMS=(metal qemu openstack aws applehv newcloud) GUIDTAG=a1 ;;
ppc64le)
	PARTS=("1:1:4:$TYPE_PREP:PowerPC-PReP-boot" "2:5:1:$TYPE_RESERVED:reserved"
		"3:6:16:$TYPE_LINUX:boot" "4:22:49:$TYPE_LINUX:root")
	BINS=(link) SRCS=(encoding os math)
	PLATFORMS=(metal qemu openstack powervs newcloud) GUIDTAG=b1 ;;
s390x)
	PARTS=("3:1:16:$TYPE_XBOOTLDR:boot" "4:17:54:5EEAD9A9-FE09-4A1E-A1D7-520D00531306:root")
	BINS=(cover) SRCS=(go text html archive)
	PLATFORMS=(metal qemu openstack qemu-secex newcloud) GUIDTAG=c1 ;;
esac

COMMIT=$(printf '%s' "$PREFIX $ARCH ostree commit" | sha256sum | cut -c1-64)
BOOTCSUM=$(printf '%s' "$PREFIX $ARCH boot checksum" | sha256sum | cut -c1-64)
DEPLOY=ostree/deploy/$NAME/deploy/$COMMIT.0

# The seed of a platform's pinned VMDK CID (release-helpers.py fix-vmdk):
# the CID mkmini.sh has always written, sha256("SEED/0")'s first bytes.
vmdk_seed() { printf '%s' "$PREFIX-$1.$ARCH vmdk/0"; }

# ------------------------------------------------------------- trees
log "$ARCH: trees"
P=$W/payload
mkdir -p "$P"
{ head -c 17408 "$T/vet"; head -c 2097152 "$T/${BINS[0]}"; } >"$P/vmlinuz"
head -c 262144 "$G/bin/gofmt" >"$P/prep.img"
R=$W/root
mkdir -p "$R/$DEPLOY/usr/bin" "$R/$DEPLOY/usr/lib/golang/src" "$R/$DEPLOY/etc" \
	"$R/ostree/repo/refs/heads" "$R/ostree/boot.1/$NAME/$BOOTCSUM" "$R/boot"
for b in "${BINS[@]}"; do cp "$T/$b" "$R/$DEPLOY/usr/bin/"; done
for s in "${SRCS[@]}"; do cp -R "$G/src/$s" "$R/$DEPLOY/usr/lib/golang/src/"; done
ln -s usr/bin "$R/$DEPLOY/bin"
ln -s "../../../deploy/$NAME/deploy/$COMMIT.0" "$R/ostree/boot.1/$NAME/$BOOTCSUM/0"
printf 'NAME="Fedora Linux"\nVERSION="%s (CoreOS)"\nID=fedora\nVERSION_ID=42\nVARIANT_ID=coreos\nOSTREE_VERSION=%s\n' \
	"$RELEASE" "$RELEASE" >"$R/$DEPLOY/etc/os-release"
printf '[core]\nrepo_version=1\nmode=bare\n' >"$R/ostree/repo/config"
printf '%s\n' "$COMMIT" >"$R/ostree/repo/refs/heads/$NAME"
printf '{"build": "%s", "imgid": "%s-qemu.%s.qcow2", "ostree-commit": "%s"}\n' \
	"$RELEASE" "$PREFIX" "$ARCH" "$COMMIT" >"$R/.coreos-aleph-version.json"
pin_times "$R"

I=$W/initrd
mkdir -p "$I/usr/bin" "$I/etc" "$I/sysroot"
head -c 1048576 "$T/cover" >"$I/usr/bin/ignition"
printf 'NAME="Fedora Linux"\nVERSION="42 (CoreOS) dracut-105-4.fc42"\n' >"$I/etc/initrd-release"
pin_times "$I"
mkcpio "$I" | gzip -6 -n >"$P/initramfs.img"

B=$W/boot
mkdir -p "$B/loader/entries" "$B/ostree/$NAME-$BOOTCSUM"
cp "$P/vmlinuz" "$B/ostree/$NAME-$BOOTCSUM/vmlinuz-$KVER"
cp "$P/initramfs.img" "$B/ostree/$NAME-$BOOTCSUM/initramfs-$KVER.img"
printf '# Remove this file to disable Ignition on next boot\n' >"$B/ignition.firstboot"
if [[ $ARCH != s390x ]]; then
	mkdir -p "$B/grub2"
	printf 'set BOOT_UUID="%s"\n' "$BOOTFS_UUID" >"$B/grub2/bootuuid.cfg"
	printf 'set timeout=1\nblscfg\n' >"$B/grub2/grub.cfg"
fi

# ----------------------------------------------------------- filesystems
log "$ARCH: filesystems"
mkboot() { # platform
	local d=$W/boot.$1 id=$1
	cp -a "$B" "$d"
	if [[ $1 == qemu-secex ]]; then
		# Secure Execution: the boot partition holds an encrypted boot image.
		id=qemu
		py noise "$d/sdboot" "$PREFIX $ARCH se" 524288
	fi
	cat >"$d/loader/entries/ostree-1.conf" <<EOF
title $PRETTY $RELEASE (ostree:0)
version 1
options ignition.platform.id=$id \$ignition_firstboot ostree=/ostree/boot.1/$NAME/$BOOTCSUM/0 root=UUID=$ROOTFS_UUID rw boot=UUID=$BOOTFS_UUID
linux /ostree/$NAME-$BOOTCSUM/vmlinuz-$KVER
initrd /ostree/$NAME-$BOOTCSUM/initramfs-$KVER.img
EOF
	pin_times "$d"
	mkbootfs "$1" "$d"
	rm -rf "$d"
}
FSJOBS=("root|mkroot")
for p in "${PLATFORMS[@]}"; do FSJOBS+=("boot-$p|mkboot $p"); done
run_parallel "${FSJOBS[@]}"
if [[ $ARCH == aarch64 ]]; then
	E=$W/esp
	mkdir -p "$E/EFI/BOOT" "$E/EFI/fedora"
	head -c 946176 "$T/preprofile" >"$E/EFI/BOOT/BOOTAA64.EFI"
	cp "$E/EFI/BOOT/BOOTAA64.EFI" "$E/EFI/fedora/shimaa64.efi"
	head -c 1048576 "$G/bin/gofmt" >"$E/EFI/fedora/grubaa64.efi"
	printf 'set BOOT_UUID="%s"\n' "$BOOTFS_UUID" >"$E/EFI/fedora/bootuuid.cfg"
	pin_times "$E"
	mkvfat "$W/esp.img" $(($(part_mib 2) * 1024)) "$ESP_VOLID" EFI-SYSTEM "$E"
fi

# ------------------------------------------------------------------ disks
log "$ARCH: disks"
fill_disk() { # disk boot-fs
	case $ARCH in
	aarch64) put "$W/esp.img" "$1" "$(part_start 2)" sparse ;;
	ppc64le) put "$P/prep.img" "$1" "$(part_start 1)" sparse ;; # PReP: grub's core.elf
	esac
	put "$2" "$1" "$(part_start 3)" sparse
	put "$W/root.ext4" "$1" "$(part_start 4)" sparse
}
gpt_disk "$W/disk-metal.raw" 512
fill_disk "$W/disk-metal.raw" "$W/boot-metal.ext4"
gpt_disk "$W/disk-metal4k.raw" 4096
fill_disk "$W/disk-metal4k.raw" "$W/boot-metal.ext4"

# ------------------------------------------------------------- artifacts
# (job_raw_xz, job_raw_gz, job_qcow2_xz, job_vmdk_xz: release-lib.sh)
job_raw_zst() {
	local d=$W/job-$1 f=$PREFIX-$1.$ARCH.raw
	mkdir -p "$d"
	variant_raw "$1" "$d/$f"
	usha "$d/$f" "$f.zst"
	zstd -q -3 -T1 --no-progress -c "$d/$f" >"$OUT/$f.zst"
}
job_powervs() { # cosa: raw disk + OVF + meta in a tar, then `gzip -c`
	local d=$W/job-$1 f=$PREFIX-$1.$ARCH.ova size
	mkdir -p "$d"
	variant_raw "$1" "$d/disk.raw"
	size=$(stat -c %s "$d/disk.raw")
	cat >"$d/coreos.ovf" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<ovf:Envelope xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <ovf:References>
    <ovf:File href="disk.raw" id="file1" size="$size"/>
  </ovf:References>
  <ovf:DiskSection>
    <ovf:Info>Disk Section</ovf:Info>
    <ovf:Disk capacity="$size" capacityAllocationUnits="byte" diskId="disk1" fileRef="file1"/>
  </ovf:DiskSection>
  <ovf:VirtualSystemCollection>
    <ovf:VirtualSystem ovf:id="vs0">
      <ovf:Name>$PREFIX</ovf:Name>
      <ovf:OperatingSystemSection ovf:id="79">
        <ovf:Description>$NAME $PRETTY $RELEASE</ovf:Description>
        <ns0:architecture xmlns:ns0="ibmpvc">$ARCH</ns0:architecture>
      </ovf:OperatingSystemSection>
      <ovf:VirtualHardwareSection>
        <ovf:Info>Storage resources</ovf:Info>
        <ovf:Item>
          <rasd:ElementName>disk.raw</rasd:ElementName>
          <rasd:HostResource>ovf:/disk/disk1</rasd:HostResource>
          <rasd:InstanceID>1</rasd:InstanceID>
          <rasd:ResourceType>17</rasd:ResourceType>
          <ns1:boot xmlns:ns1="ibmpvc">True</ns1:boot>
        </ovf:Item>
      </ovf:VirtualHardwareSection>
    </ovf:VirtualSystem>
  </ovf:VirtualSystemCollection>
</ovf:Envelope>
EOF
	printf 'os-type = %s\narchitecture = %s\nvol1-file = %s\nvol1-type = boot' "$NAME" "$ARCH" "$PREFIX" >"$d/coreos.meta"
	py ova "$d/$f" "$EPOCH" "disk.raw=$d/disk.raw" "coreos.ovf=$d/coreos.ovf" "coreos.meta=$d/coreos.meta"
	rm -f "$d/disk.raw"
	usha "$d/$f" "$f.gz"
	gzip_to "$d/$f" "$OUT/$f.gz"
}

add metal raw.xz "$PREFIX-metal.$ARCH.raw.xz" 1 job_raw_xz metal
add metal 4k.raw.xz "$PREFIX-metal4k.$ARCH.raw.xz" 1 job_raw_xz metal4k
case $ARCH in
aarch64)
	add aws vmdk.xz "$PREFIX-aws.$ARCH.vmdk.xz" 1 job_vmdk_xz aws
	add applehv raw.gz "$PREFIX-applehv.$ARCH.raw.gz" 1 job_raw_gz applehv ;;
ppc64le)
	add powervs ova.gz "$PREFIX-powervs.$ARCH.ova.gz" 1 job_powervs powervs ;;
s390x)
	add qemu-secex qcow2.xz "$PREFIX-qemu-secex.$ARCH.qcow2.xz" 1 job_qcow2_xz qemu-secex ;;
esac
add qemu qcow2.xz "$PREFIX-qemu.$ARCH.qcow2.xz" 1 job_qcow2_xz qemu
add openstack qcow2.xz "$PREFIX-openstack.$ARCH.qcow2.xz" 1 job_qcow2_xz openstack
add newcloud raw.zst "$PREFIX-newcloud.$ARCH.raw.zst" 1 job_raw_zst newcloud

log "$ARCH: artifacts (${#JOBS[@]} jobs, 2 at a time)"
run_parallel "${JOBS[@]}"
rm -rf "$W"/job-*

# ------------------------------------------------------------ stream.json
write_stream
log "$ARCH: done: $OUT ($(du -sh --apparent-size "$OUT" | cut -f1))"
