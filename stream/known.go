package stream

import (
	"maps"
	"slices"
	"strconv"
)

// knownPlatforms maps every platform that current Fedora CoreOS streams
// publish, on any of their architectures (x86_64, aarch64, ppc64le, s390x),
// to the format keys it is published in. Gathered from coreos-assembler's
// per-architecture image pipelines and compressor, stream-metadata-go's
// release schema and published streams. metal, openstack and qemu exist on
// every architecture; powervs (a gzipped OVA: a tar of disk.raw, coreos.ovf
// and coreos.meta) only on ppc64le and qemu-secex only on s390x; most cloud
// platforms only on x86_64 and aarch64. s390x's DASD and FCP images are its
// metal raw.xz and 4k.raw.xz: no separate "dasd" key is published.
var knownPlatforms = map[string][]string{
	"aliyun":       {"qcow2.xz"},
	"applehv":      {"raw.gz"},
	"aws":          {"vmdk.xz"},
	"azure":        {"vhd.xz"},
	"azurestack":   {"vhd.xz"},
	"digitalocean": {"qcow2.gz"},
	"exoscale":     {"qcow2.xz"},
	"gcp":          {"tar.gz"},
	"hetzner":      {"raw.xz"},
	"hyperv":       {"vhdx.zip"},
	"ibmcloud":     {"qcow2.xz"},
	"kubevirt":     {"ociarchive"},
	"metal":        {"raw.xz", "4k.raw.xz", "iso", "pxe"},
	"nutanix":      {"qcow2"},
	"openstack":    {"qcow2.xz"},
	"oraclecloud":  {"qcow2.xz"},
	"powervs":      {"ova.gz"},
	"proxmoxve":    {"qcow2.xz"},
	"qemu":         {"qcow2.xz"},
	"qemu-secex":   {"qcow2.xz"},
	"virtualbox":   {"ova"},
	"vmware":       {"ova"},
	"vultr":        {"raw.xz"},
}

// knownFormats is every format key of knownPlatforms, plus "4k.raw.gz":
// coreos-assembler's compressor writes .xz or .gz, and RHEL CoreOS streams
// publish the metal images gzipped.
var knownFormats = func() map[string]bool {
	m := map[string]bool{"4k.raw.gz": true}
	for _, keys := range knownPlatforms {
		for _, k := range keys {
			m[k] = true
		}
	}
	return m
}()

// KnownPlatform reports whether name is a platform that current Fedora
// CoreOS streams publish (see [KnownPlatforms]). A platform that is not
// known is still valid stream metadata: rehydrator stores its artifacts the
// generic way and says so.
func KnownPlatform(name string) bool {
	_, ok := knownPlatforms[name]
	return ok
}

// KnownFormat reports whether key is a format key that current Fedora
// CoreOS streams use, for any platform (see [KnownPlatforms]), or one of
// the 4K metal image gzipped ("4k.raw.gz", as RHEL CoreOS publishes it). Like an unknown platform, an unknown format key
// is valid stream metadata.
func KnownFormat(key string) bool {
	return knownFormats[key]
}

// KnownPlatforms returns the platforms [KnownPlatform] accepts, sorted, each
// with the format keys Fedora CoreOS publishes it in. The result is a copy.
//
// The list is the union over x86_64, aarch64, ppc64le and s390x: aliyun,
// applehv, aws, azure, azurestack, digitalocean, exoscale, gcp, hetzner,
// hyperv, ibmcloud, kubevirt, metal (raw.xz, 4k.raw.xz, iso, pxe), nutanix
// (qcow2), openstack, oraclecloud, powervs (ova.gz), proxmoxve, qemu,
// qemu-secex, virtualbox and vmware (ova), vultr.
func KnownPlatforms() map[string][]string {
	m := make(map[string][]string, len(knownPlatforms))
	for p, keys := range knownPlatforms {
		m[p] = slices.Clone(keys)
	}
	return m
}

// KnownFormats returns the format keys [KnownFormat] accepts, sorted.
func KnownFormats() []string {
	return slices.Sorted(maps.Keys(knownFormats))
}

// Unknown returns, when a's platform or format key is not one that
// [KnownPlatform] or [KnownFormat] accepts, a short sentence saying which
// ("platform \"newcloud\" is not one rehydrator knows"); otherwise "".
func (a Artifact) Unknown() string {
	switch {
	case !KnownPlatform(a.Platform):
		return "platform " + strconv.Quote(a.Platform) + " is not one rehydrator knows"
	case !KnownFormat(a.Format):
		return "format " + strconv.Quote(a.Format) + " of platform " + strconv.Quote(a.Platform) + " is not one rehydrator knows"
	}
	return ""
}
