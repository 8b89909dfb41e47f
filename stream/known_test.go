package stream

import (
	"slices"
	"testing"
)

// TestKnownSample checks that every platform and format key of the sample
// stream (every platform Fedora CoreOS publishes for x86_64, and aarch64's)
// is known, as are the other architectures' own.
func TestKnownSample(t *testing.T) {
	for _, e := range sampleEntries {
		a := e.artifact()
		if !KnownPlatform(a.Platform) || !KnownFormat(a.Format) || a.Unknown() != "" {
			t.Errorf("%s: not known: %s", a.ID(), a.Unknown())
		}
	}
	for _, pf := range [][2]string{
		{"powervs", "ova.gz"},                                // ppc64le
		{"qemu-secex", "qcow2.xz"}, {"ibmcloud", "qcow2.xz"}, // s390x
		{"metal", "4k.raw.gz"}, // RHEL CoreOS compresses with gzip
	} {
		if a := (Artifact{Platform: pf[0], Format: pf[1]}); a.Unknown() != "" {
			t.Errorf("%s %s: %s", pf[0], pf[1], a.Unknown())
		}
	}
}

func TestKnownPlatforms(t *testing.T) {
	want := []string{"aliyun", "applehv", "aws", "azure", "azurestack", "digitalocean", "exoscale", "gcp",
		"hetzner", "hyperv", "ibmcloud", "kubevirt", "metal", "nutanix", "openstack", "oraclecloud",
		"powervs", "proxmoxve", "qemu", "qemu-secex", "virtualbox", "vmware", "vultr"}
	m := KnownPlatforms()
	var got []string
	for p, keys := range m {
		got = append(got, p)
		for _, k := range keys {
			if !KnownFormat(k) {
				t.Errorf("%s: format %s is not KnownFormat", p, k)
			}
		}
		if !KnownPlatform(p) {
			t.Errorf("%s is listed but not KnownPlatform", p)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("KnownPlatforms() = %v\nwant %v", got, want)
	}
	if got := m["metal"]; !slices.Equal(got, []string{"raw.xz", "4k.raw.xz", "iso", "pxe"}) {
		t.Errorf("metal formats %v", got)
	}
	// The result is a copy.
	m["metal"][0] = "changed"
	delete(m, "qemu")
	if !KnownPlatform("qemu") || KnownPlatforms()["metal"][0] != "raw.xz" {
		t.Error("KnownPlatforms returned the table itself")
	}
	f := KnownFormats()
	if !slices.IsSorted(f) || !slices.Contains(f, "vhdx.zip") || !slices.Contains(f, "ova.gz") || slices.Contains(f, "raw.zst") {
		t.Errorf("KnownFormats() = %v", f)
	}
}

func TestUnknown(t *testing.T) {
	for _, c := range []struct {
		platform, format, want string
	}{
		{"qemu", "qcow2.xz", ""},
		{"newcloud", "img.xz", `platform "newcloud" is not one rehydrator knows`},
		{"newcloud", "raw.zst", `platform "newcloud" is not one rehydrator knows`},
		{"nvidiabluefield", "bfb", `platform "nvidiabluefield" is not one rehydrator knows`},
		{"qemu", "raw.bz2", `format "raw.bz2" of platform "qemu" is not one rehydrator knows`},
		{"metal", "raw.zst", `format "raw.zst" of platform "metal" is not one rehydrator knows`},
		{"QEMU", "qcow2.xz", `platform "QEMU" is not one rehydrator knows`},
	} {
		a := Artifact{Arch: "x86_64", Platform: c.platform, Format: c.format, Role: "disk"}
		if got := a.Unknown(); got != c.want {
			t.Errorf("%s: Unknown() = %q, want %q", a.ID(), got, c.want)
		}
	}
}

// TestUnknownAccepted checks that a stream of platforms, formats, roles and
// compressions rehydrator does not know parses, with the names and
// compression a plain file gets.
func TestUnknownAccepted(t *testing.T) {
	s := validStream()
	s.Architectures["riscv64"] = Arch{Artifacts: map[string]Platform{
		"newcloud": {Release: "43.1", Formats: map[string]map[string]File{
			"raw.zst": {"disk": {Location: "https://example.org/fcos-newcloud.riscv64.raw.zst", SHA256: fakeSHA("a"), UncompressedSHA256: fakeSHA("b")}},
			"raw.bz2": {"disk": {Location: "https://example.org/fcos-newcloud.riscv64.raw.bz2", SHA256: fakeSHA("c")}},
			"bfb":     {"dtb": {Location: "https://example.org/fcos-newcloud.riscv64.dtb", SHA256: fakeSHA("d")}},
		}},
	}}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, a := range s.Artifacts() {
		if a.Arch != "riscv64" {
			continue
		}
		n++
		if a.Compression() != "" || a.OutputName() != a.Name() || a.Selector() != "newcloud" || a.Unknown() == "" {
			t.Errorf("%s: compression %q, output %q, selector %q, unknown %q", a.ID(), a.Compression(), a.OutputName(), a.Selector(), a.Unknown())
		}
	}
	if n != 3 {
		t.Errorf("%d riscv64 artifacts, want 3", n)
	}
}
