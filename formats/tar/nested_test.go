package tar

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rehydrator/rehydrator/formats"
	"github.com/rehydrator/rehydrator/formats/gzip"
	"github.com/rehydrator/rehydrator/formats/vmdk"
	"github.com/rehydrator/rehydrator/internal/formattest"
	"github.com/rehydrator/rehydrator/internal/testtool"
)

// byHeader adapts a Detect of the first bytes to formats.Format's.
func byHeader(detect func([]byte) bool) func(io.ReaderAt, int64) bool {
	return func(src io.ReaderAt, size int64) bool {
		p := make([]byte, min(size, 4096))
		return readAt(src, p, 0) == nil && detect(p)
	}
}

// recorder wraps a format and notes the size of every member it splits.
type recorder struct {
	f     formats.Format
	sizes []int64
}

func (r *recorder) format() formats.Format {
	return formats.Format{Name: r.f.Name, Detect: r.f.Detect, Split: func(src io.ReaderAt, size int64, b *formats.Builder) error {
		r.sizes = append(r.sizes, size)
		return r.f.Split(src, size, b)
	}}
}

const ovf = `<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References>
    <File ovf:href="disk.vmdk" ovf:id="file1" ovf:size="%d"/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:capacity="%d" ovf:capacityAllocationUnits="byte" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
</Envelope>
`

// TestOVA makes OVAs as the release does (an OVF descriptor, a
// streamOptimized VMDK from qemu-img, a manifest; archived by GNU tar and
// by python's tarfile) and checks that the VMDK is split as a nested
// format: the OVA's recipe is the VMDK's plus the tar headers.
func TestOVA(t *testing.T) {
	formattest.QemuImg(t)
	gnutar := testtool.Require(t, "tar")
	py := testtool.Require(t, "python3")
	dir := t.TempDir()
	raw, _ := formattest.WriteMixedDisk(t, dir, 4<<20, 7)
	src := filepath.Join(dir, "ova")
	vm := filepath.Join(src, "disk.vmdk")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	disk := formattest.Convert(t, raw, vm, "vmdk", "adapter_type=lsilogic,subformat=streamOptimized,compat6")
	formattest.WriteFile(t, filepath.Join(src, "coreos.ovf"), fmt.Appendf(nil, ovf, len(disk), 4<<20))
	ovfSum := sha256.Sum256(formattest.ReadFile(t, filepath.Join(src, "coreos.ovf")))
	diskSum := sha256.Sum256(disk)
	formattest.WriteFile(t, filepath.Join(src, "coreos.mf"), fmt.Appendf(nil, "SHA256(coreos.ovf)= %x\nSHA256(disk.vmdk)= %x\n", ovfSum, diskSum))

	// The VMDK split alone: the OVA's recipe should add only headers.
	vrec, _, vst, err := formattest.Split(t, vmdk.Split, disk)
	if err != nil {
		t.Fatalf("vmdk.Split: %v", err)
	}
	vmdkFormat := formats.Format{Name: "vmdk", Detect: byHeader(vmdk.Detect), Split: vmdk.Split}

	for _, maker := range []struct {
		name string
		make func(out string)
	}{
		{"gnutar", func(out string) {
			args := append([]string{"--format=ustar"}, reproducible...)
			testtool.Run(t, gnutar, append(args, "-C", src, "-cf", out, "coreos.ovf", "disk.vmdk", "coreos.mf")...)
		}},
		{"tarfile", func(out string) {
			testtool.Run(t, py, "-c", pyTar, src, out, "ustar", "coreos.ovf", "disk.vmdk", "coreos.mf")
		}},
	} {
		t.Run(maker.name, func(t *testing.T) {
			out := filepath.Join(dir, maker.name+".ova")
			maker.make(out)
			img := formattest.ReadFile(t, out)
			if !Detect(img) {
				t.Fatal("Detect = false")
			}
			ms := crossCheck(t, img)
			if len(ms) != 3 || ms[1].Name != "disk.vmdk" || !bytes.Equal(img[ms[1].Offset:ms[1].Offset+ms[1].Size], disk) {
				t.Fatalf("members %+v: want coreos.ovf, disk.vmdk (the VMDK's bytes), coreos.mf", ms)
			}

			// Without nested formats: headers verbatim, all data content.
			recipe, content, st := formattest.RoundTrip(t, Split, img)
			if !bytes.Equal(content, storedData(img, ms)) {
				t.Fatal("content is not the members' data")
			}
			if len(recipe) > 1024 || st.Verbatim != 3*blockSize {
				t.Errorf("recipe %d bytes, %d verbatim: want the three headers only", len(recipe), st.Verbatim)
			}

			// With the VMDK nested: its grains are re-created.
			rec := &recorder{f: vmdkFormat}
			recipe, content, st = formattest.RoundTrip(t, Split, img, rec.format())
			if len(rec.sizes) != 1 || rec.sizes[0] != int64(len(disk)) {
				t.Fatalf("vmdk split members of sizes %v, want the one VMDK of %d bytes", rec.sizes, len(disk))
			}
			if st.Recreated != vst.Recreated || st.Recreated == 0 {
				t.Errorf("%d grains re-created, the VMDK alone %d", st.Recreated, vst.Recreated)
			}
			if extra := len(recipe) - len(vrec); extra > 1024 {
				t.Errorf("the OVA's recipe is %d bytes, the VMDK's %d: the tar layer adds %d, want ≤ 1024", len(recipe), len(vrec), extra)
			}
			t.Logf("%d-byte OVA: recipe %d bytes (VMDK alone %d), content %d, grains re-created %d, kept %d",
				len(img), len(recipe), len(vrec), len(content), st.Recreated, st.Kept)
		})
	}
}

// TestOCIArchive makes kubevirt's OCI archive as the release does (umoci
// builds the layout with a gzip layer holding a disk image, GNU tar
// archives it in ustar format) and checks that the layer is split as a
// nested gzip member.
func TestOCIArchive(t *testing.T) {
	umoci := testtool.Require(t, "umoci")
	gnutar := testtool.Require(t, "tar")
	dir := t.TempDir()
	formattest.WriteFile(t, filepath.Join(dir, "src", "disk.img"), formattest.MixedDisk(2<<20, 7))
	layout := filepath.Join(dir, "oci")
	const created = "2023-11-14T22:13:20Z"
	idmap := []string{}
	if os.Getuid() != 0 {
		idmap = []string{"--rootless", "--uid-map", fmt.Sprintf("0:%d:1", os.Getuid()), "--gid-map", fmt.Sprintf("0:%d:1", os.Getgid())}
	}
	testtool.Run(t, umoci, "init", "--layout", layout)
	testtool.Run(t, umoci, "new", "--image", layout+":latest")
	testtool.Run(t, umoci, "config", "--image", layout+":latest", "--no-history", "--created", created, "--architecture", "amd64", "--os", "linux")
	testtool.Run(t, umoci, append(append([]string{"insert"}, idmap...), "--image", layout+":latest", "--history.created", created,
		"--history.created_by", "test", filepath.Join(dir, "src", "disk.img"), "/disk/disk.img")...)
	testtool.Run(t, umoci, "gc", "--layout", layout)
	out := filepath.Join(dir, "kubevirt.ociarchive")
	testtool.Run(t, gnutar, "--format=ustar", "--sort=name", "--owner=root:0", "--group=root:0", "--mtime=@1700000000",
		"-C", layout, "-cf", out, "oci-layout", "index.json", "blobs")
	img := formattest.ReadFile(t, out)
	if !Detect(img) {
		t.Fatal("Detect = false")
	}
	ms := crossCheck(t, img)
	var layer Member
	for _, m := range ms {
		if m.Size > layer.Size {
			layer = m
		}
	}
	data := img[layer.Offset : layer.Offset+layer.Size]
	if !strings.HasSuffix(layer.Name, fmt.Sprintf("%x", sha256.Sum256(data))) || !gzip.Detect(data) {
		t.Fatalf("the largest member, %q (%d bytes), is not a gzip blob named by its digest", layer.Name, layer.Size)
	}

	rec := &recorder{f: formats.Format{Name: "gzip", Detect: byHeader(gzip.Detect), Split: gzip.Split}}
	recipe, content, st := formattest.RoundTrip(t, Split, img, rec.format())
	if len(rec.sizes) != 1 || rec.sizes[0] != layer.Size {
		t.Fatalf("gzip split members of sizes %v, want the one layer of %d bytes", rec.sizes, layer.Size)
	}
	t.Logf("%d-byte OCI archive, %d members: recipe %d bytes, content %d, re-created %d, kept %d",
		len(img), len(ms), len(recipe), len(content), st.Recreated, st.Kept)
	if st.Recreated == 0 || len(recipe) > len(img)/100 {
		t.Errorf("the layer was not re-created: recipe %d bytes of %d, %d pieces re-created", len(recipe), len(img), st.Recreated)
	}
}
