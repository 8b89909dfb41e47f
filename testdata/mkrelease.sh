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

TOOLS=(bash python3 sha256sum truncate dd cp find sort touch cmp iconv
	sgdisk mkfs.ext4 debugfs mkfs.fat mcopy qemu-img xz gzip zip tar cpio
	mksquashfs xorriso umoci)

# The release's identity, the determinism tricks and the helpers shared
# with mkmini.sh.
TESTDATA=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/release-lib.sh
. "$TESTDATA/release-lib.sh"

# ------------------------------------------------------------------- args
tool_modes "${1:-}"
case "${1:-}" in
"" | -h | --help) sed -n '2,8s/^# \{0,1\}//p' "$0"; exit 2 ;;
esac
require_tools
release_setup x86_64 "$1"

# ---------------------------------------------------------------- constants
# mksquashfs: FCOS uses zstd at its default level (15); level 9 is ~8x faster.
SQUASHFS_COMP=(-comp zstd -Xcompression-level 9)

# Disk layout (MiB): FCOS order, smaller sizes. Root ends 1 MiB before the end
# so the 512 and 4096-byte sector disks hold byte-identical partitions.
DISK_MIB=448
BIOS_START=1 BIOS_MIB=1
EFI_START=2 EFI_MIB=32
BOOT_START=34 BOOT_MIB=64
ROOT_START=98 ROOT_MIB=349
TYPE_BIOS=21686148-6449-6E6F-744E-656564454649
PARTS=(
	"1:$BIOS_START:$BIOS_MIB:$TYPE_BIOS:BIOS-BOOT"
	"2:$EFI_START:$EFI_MIB:$TYPE_ESP:EFI-SYSTEM"
	"3:$BOOT_START:$BOOT_MIB:$TYPE_LINUX:boot"
	"4:$ROOT_START:$ROOT_MIB:$TYPE_LINUX:root"
)
GUIDTAG=00 # partition GUIDs 7b1b8a2c-71ac-4b1f-8c3a-9e6d1f00000N
EFIBOOT_VOLID=1F3A0C42

# Every platform gets its own boot filesystem (only the BLS `options` line
# differs); metal4k reuses metal's.
PLATFORMS=(metal qemu openstack aliyun ibmcloud exoscale oraclecloud proxmoxve
	digitalocean nutanix aws vmware virtualbox azure azurestack hyperv gcp vultr
	hetzner applehv kubevirt)

COMMIT=$(printf '%s' "$PREFIX ostree commit" | sha256sum | cut -c1-64)
BOOTCSUM=$(printf '%s' "$PREFIX boot checksum" | sha256sum | cut -c1-64)
DEPLOY=ostree/deploy/$NAME/deploy/$COMMIT.0

# The seed of a platform's pinned VMDK CID (release-helpers.py fix-vmdk).
vmdk_seed() { printf '%s' "$PREFIX-$1 vmdk"; }

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
	mkbootfs "$1" "$W/boot.$1"
	rm -rf "$W/boot.$1"
}
FSJOBS=("root.ext4|mkroot")
for p in "${PLATFORMS[@]}"; do FSJOBS+=("boot-$p.ext4|mkboot $p"); done
run_parallel "${FSJOBS[@]}"

# ------------------------------------------------------------------ disks
log "disks"
fill_disk() { # disk boot-fs   (the disk is still all zeros: write sparsely)
	put "$P/core.img" "$1" "$BIOS_START" sparse
	put "$W/esp.img" "$1" "$EFI_START" sparse
	put "$2" "$1" "$BOOT_START" sparse
	put "$W/root.ext4" "$1" "$ROOT_START" sparse
	dd if="$P/mbr.bin" of="$1" bs=440 count=1 conv=notrunc status=none
}
gpt_disk "$W/disk-metal.raw" 512
fill_disk "$W/disk-metal.raw" "$W/boot-metal.ext4"
gpt_disk "$W/disk-metal4k.raw" 4096
fill_disk "$W/disk-metal4k.raw" "$W/boot-metal.ext4"

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
# (job_raw_xz, job_raw_gz, job_qcow2_xz, job_vmdk_xz: release-lib.sh)
job_qcow2_gz() {
	local f=$PREFIX-$1.$ARCH.qcow2
	mk_qcow2 "$1" "$W/job-$1/$f"
	usha "$W/job-$1/$f" "$f.gz"
	gzip_to "$W/job-$1/$f" "$OUT/$f.gz"
}
job_qcow2_c() { mk_qcow2 "$1" "$OUT/$PREFIX-$1.$ARCH.qcow2" -c; }
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

X=$ARCH
# longest first
JOBS+=("live|job_live")
add metal raw.xz "$PREFIX-metal.$X.raw.xz" 1 job_raw_xz metal
add metal 4k.raw.xz "$PREFIX-metal4k.$X.raw.xz" 1 job_raw_xz metal4k
add azure vhd.xz "$PREFIX-azure.$X.vhd.xz" 1 job_vhd_xz azure
add azurestack vhd.xz "$PREFIX-azurestack.$X.vhd.xz" 1 job_vhd_xz azurestack
add vultr raw.xz "$PREFIX-vultr.$X.raw.xz" 1 job_raw_xz vultr
add hetzner raw.xz "$PREFIX-hetzner.$X.raw.xz" 1 job_raw_xz hetzner
add aws vmdk.xz "$PREFIX-aws.$X.vmdk.xz" 1 job_vmdk_xz aws
for p in qemu openstack aliyun ibmcloud exoscale oraclecloud proxmoxve; do
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
write_stream

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
