package stream

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// sampleRelease is the release of every artifact in the sample stream.
const sampleRelease = "42.20251012.3.0"

// sampleEntry describes one artifact of the sample stream and what the
// package should say about it.
type sampleEntry struct {
	arch, platform, format, role string
	// stem and ext make the file name:
	// fedora-coreos-RELEASE-STEM.ARCH EXT.
	stem, ext string
	// uncompressed says whether the stream gives uncompressed-sha256.
	uncompressed bool
	// What Selector, OutputName's extension and Compression should return.
	selector, outExt, compression string
}

// sampleEntries is a realistic stable stream: every x86_64 platform Fedora
// CoreOS publishes and a few aarch64 ones, grouped as the JSON is written
// (by arch, platform, format, role, in the upstream order, which is not
// sorted).
var sampleEntries = func() []sampleEntry {
	var es []sampleEntry
	disk := func(arch, platform, format, stem, ext string, unc bool, sel, outExt, comp string) {
		es = append(es, sampleEntry{arch, platform, format, "disk", stem, ext, unc, sel, outExt, comp})
	}
	for _, arch := range []string{"x86_64", "aarch64"} {
		x86 := arch == "x86_64"
		if x86 {
			disk(arch, "aliyun", "qcow2.xz", "aliyun", ".qcow2.xz", true, "aliyun", ".qcow2", "xz")
		}
		disk(arch, "applehv", "raw.gz", "applehv", ".raw.gz", true, "applehv", ".raw", "gz")
		disk(arch, "aws", "vmdk.xz", "aws", ".vmdk.xz", true, "aws", ".vmdk", "xz")
		disk(arch, "azure", "vhd.xz", "azure", ".vhd.xz", true, "azure", ".vhd", "xz")
		if x86 {
			disk(arch, "azurestack", "vhd.xz", "azurestack", ".vhd.xz", true, "azurestack", ".vhd", "xz")
			disk(arch, "digitalocean", "qcow2.gz", "digitalocean", ".qcow2.gz", true, "digitalocean", ".qcow2", "gz")
			disk(arch, "exoscale", "qcow2.xz", "exoscale", ".qcow2.xz", true, "exoscale", ".qcow2", "xz")
		}
		disk(arch, "gcp", "tar.gz", "gcp", ".tar.gz", false, "gcp", ".tar", "gz")
		if x86 {
			disk(arch, "hetzner", "raw.xz", "hetzner", ".raw.xz", true, "hetzner", ".raw", "xz")
			disk(arch, "hyperv", "vhdx.zip", "hyperv", ".vhdx.zip", true, "hyperv", ".vhdx", "zip")
			disk(arch, "ibmcloud", "qcow2.xz", "ibmcloud", ".qcow2.xz", true, "ibmcloud", ".qcow2", "xz")
			disk(arch, "kubevirt", "ociarchive", "kubevirt", ".ociarchive", false, "kubevirt", ".ociarchive", "")
		}
		disk(arch, "metal", "raw.xz", "metal", ".raw.xz", true, "metal", ".raw", "xz")
		disk(arch, "metal", "4k.raw.xz", "metal4k", ".raw.xz", true, "metal4k", ".raw", "xz")
		disk(arch, "metal", "iso", "live-iso", ".iso", false, "iso", ".iso", "")
		es = append(es,
			sampleEntry{arch, "metal", "pxe", "kernel", "live-kernel", "", false, "pxe", "", ""},
			sampleEntry{arch, "metal", "pxe", "initramfs", "live-initramfs", ".img", false, "pxe", ".img", ""},
			sampleEntry{arch, "metal", "pxe", "rootfs", "live-rootfs", ".img", false, "pxe", ".img", ""},
		)
		if x86 {
			disk(arch, "nutanix", "qcow2", "nutanix", ".qcow2", false, "nutanix", ".qcow2", "")
		}
		disk(arch, "openstack", "qcow2.xz", "openstack", ".qcow2.xz", true, "openstack", ".qcow2", "xz")
		if x86 {
			disk(arch, "oraclecloud", "qcow2.xz", "oraclecloud", ".qcow2.xz", true, "oraclecloud", ".qcow2", "xz")
			disk(arch, "proxmoxve", "qcow2.xz", "proxmoxve", ".qcow2.xz", true, "proxmoxve", ".qcow2", "xz")
		}
		disk(arch, "qemu", "qcow2.xz", "qemu", ".qcow2.xz", true, "qemu", ".qcow2", "xz")
		if x86 {
			disk(arch, "virtualbox", "ova", "virtualbox", ".ova", false, "virtualbox", ".ova", "")
			disk(arch, "vmware", "ova", "vmware", ".ova", false, "vmware", ".ova", "")
			disk(arch, "vultr", "raw.xz", "vultr", ".raw.xz", true, "vultr", ".raw", "xz")
		}
	}
	return es
}()

func (e sampleEntry) name() string {
	return "fedora-coreos-" + sampleRelease + "-" + e.stem + "." + e.arch + e.ext
}

func (e sampleEntry) location() string {
	return "https://builds.coreos.fedoraproject.org/prod/streams/stable/builds/" +
		sampleRelease + "/" + e.arch + "/" + e.name()
}

func fakeSHA(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func (e sampleEntry) file() File {
	f := File{
		Location:  e.location(),
		Signature: e.location() + ".sig",
		SHA256:    fakeSHA("compressed:" + e.name()),
	}
	if e.uncompressed {
		f.UncompressedSHA256 = fakeSHA("uncompressed:" + e.name())
	}
	return f
}

func (e sampleEntry) artifact() Artifact {
	return Artifact{
		Arch: e.arch, Platform: e.platform, Release: sampleRelease,
		Format: e.format, Role: e.role, File: e.file(),
	}
}

// sampleImages is the "images" object of each architecture, as written in
// the document (indented to sit inside it).
func sampleImages(arch string) string {
	if arch != "x86_64" {
		return `{
                "aws": {
                    "regions": {
                        "us-east-1": {
                            "release": "` + sampleRelease + `",
                            "image": "ami-0a1b2c3d4e5f60718"
                        }
                    }
                },
                "gcp": {
                    "release": "` + sampleRelease + `",
                    "project": "fedora-coreos-cloud",
                    "family": "fedora-coreos-stable-arm64",
                    "name": "fedora-coreos-42-20251012-3-0-gcp-aarch64"
                }
            }`
	}
	return `{
                "aws": {
                    "regions": {
                        "eu-west-1": {
                            "release": "` + sampleRelease + `",
                            "image": "ami-0123456789abcdef0"
                        },
                        "us-east-1": {
                            "release": "` + sampleRelease + `",
                            "image": "ami-0fedcba9876543210"
                        }
                    }
                },
                "gcp": {
                    "release": "` + sampleRelease + `",
                    "project": "fedora-coreos-cloud",
                    "family": "fedora-coreos-stable",
                    "name": "fedora-coreos-42-20251012-3-0-gcp-x86-64"
                },
                "kubevirt": {
                    "release": "` + sampleRelease + `",
                    "image": "quay.io/fedora/fedora-coreos-kubevirt:stable",
                    "digest-ref": "quay.io/fedora/fedora-coreos-kubevirt@sha256:` + fakeSHA("kubevirt") + `"
                }
            }`
}

// sampleJSON renders sampleEntries as a stream document laid out like the
// ones Fedora CoreOS publishes (4-space indentation, upstream key order).
func sampleJSON() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("{\n    \"stream\": \"stable\",\n")
	p("    \"metadata\": {\n        \"last-modified\": \"2026-11-01T00:00:00Z\",\n")
	p("        \"generator\": \"fedora-coreos-stream-generator v0.4.0\"\n    },\n")
	p("    \"architectures\": {\n")
	es := sampleEntries
	for i := 0; i < len(es); {
		arch := es[i].arch
		if i > 0 {
			p(",\n")
		}
		p("        %q: {\n            \"artifacts\": {\n", arch)
		firstPlatform := true
		for i < len(es) && es[i].arch == arch {
			platform := es[i].platform
			if !firstPlatform {
				p(",\n")
			}
			firstPlatform = false
			p("                %q: {\n                    \"release\": %q,\n                    \"formats\": {\n", platform, sampleRelease)
			firstFormat := true
			for i < len(es) && es[i].arch == arch && es[i].platform == platform {
				format := es[i].format
				if !firstFormat {
					p(",\n")
				}
				firstFormat = false
				p("                        %q: {\n", format)
				firstRole := true
				for i < len(es) && es[i].arch == arch && es[i].platform == platform && es[i].format == format {
					e, f := es[i], es[i].file()
					if !firstRole {
						p(",\n")
					}
					firstRole = false
					p("                            %q: {\n", e.role)
					p("                                \"location\": %q,\n", f.Location)
					p("                                \"signature\": %q,\n", f.Signature)
					p("                                \"sha256\": %q", f.SHA256)
					if f.UncompressedSHA256 != "" {
						p(",\n                                \"uncompressed-sha256\": %q", f.UncompressedSHA256)
					}
					p("\n                            }")
					i++
				}
				p("\n                        }")
			}
			p("\n                    }\n                }")
		}
		p("\n            },\n            \"images\": %s\n        }", sampleImages(arch))
	}
	p("\n    }\n}\n")
	return b.String()
}

// oddJSON is a small valid document with unusual but legal layout: tabs,
// CRLF line ends, spaces before colons, escaped characters, unknown keys and
// no final newline.
const oddJSON = "\t{ \"stream\" :\"\\u0073table\" ,\r\n" +
	"  \"unknown\" : [1, 2.5e3, true, null, {\"x\": \"y\"}],\r\n" +
	"\"metadata\":{\"last-modified\":\"2026-11-01T00:00:00Z\",\"generator\":\"hand \\\"made\\\" \\/ \\u00e9\"},\r\n" +
	"   \"architectures\" : { \"x86_64\" : { \"artifacts\" : { \"qemu\" : {\"release\":\"42.20251012.3.0\",\n" +
	"\t\t\"formats\":{\"qcow2.xz\":{\"disk\":{\r\n" +
	"  \"location\"  :  \"https://example.org/builds/x86_64/fedora-coreos-qemu.x86_64.qcow2.xz?sig=1#top\",\n" +
	"  \"signature\":\"https://example.org/builds/x86_64/fedora-coreos-qemu.x86_64.qcow2.xz.sig\",\n" +
	"  \"sha256\":\"0000000000000000000000000000000000000000000000000000000000000000\",\n" +
	"  \"uncompressed-sha256\":\"abcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdef0123\"}}}}},\n" +
	"   \"images\" :   {  \"odd\" :\t[ ] } } } }  \r\n\t "
