package vhd

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/rehydrator/rehydrator/internal/testtool"
	"github.com/rehydrator/rehydrator/internal/zeros"
)

// qemuFormats are the VHD flavours qemu-img writes.
var qemuFormats = []struct {
	name, opts string
	fixed      bool
}{
	{"fixed-force_size", "subformat=fixed,force_size", true}, // as Azure images are made
	{"dynamic", "subformat=dynamic", false},                  // size rounded up to a CHS geometry
	{"dynamic-force_size", "subformat=dynamic,force_size", false},
}

// TestQemu converts a mixed raw disk with qemu-img, splits and re-assembles
// each VHD, checks the result byte for byte and with qemu-img, and checks
// that the content is the disk's non-zero 64 KiB pieces.
func TestQemu(t *testing.T) {
	if testing.Short() {
		t.Skip("converts a 64 MiB disk with qemu-img")
	}
	qemu := testtool.Require(t, "qemu-img")
	dir := t.TempDir()
	rawPath := filepath.Join(dir, "disk.raw")
	disk := makeRaw(t, rawPath)

	for _, f := range qemuFormats {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel() // Split is sequential: use both cores
			path := filepath.Join(dir, f.name+".vhd")
			testtool.Run(t, qemu, "convert", "-f", "raw", "-O", "vpc", "-o", f.opts, rawPath, path)
			img, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if Detect(img) == f.fixed {
				t.Errorf("Detect = %v, want %v (a footer copy at 0)", !f.fixed, !f.fixed)
			}
			if !DetectFooter(img[len(img)-2*footerSize:]) {
				t.Error("DetectFooter = false")
			}
			recipe, content, st, err := split(t, img)
			if err != nil {
				t.Fatalf("Split: %v", err)
			}
			t.Logf("%d-byte VHD: recipe %d bytes (%.4f%%), content %d bytes, verbatim %d, zeros %d",
				len(img), len(recipe), 100*float64(len(recipe))/float64(len(img)), len(content), st.Verbatim, st.Zero)
			if len(recipe) > 4<<10 {
				t.Errorf("recipe is %d bytes, want ≤ 4 KiB", len(recipe))
			}

			out := filepath.Join(dir, f.name+"-assembled.vhd")
			if err := os.WriteFile(out, assemble(t, recipe, content), 0o644); err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(out); !bytes.Equal(got, img) {
				t.Fatalf("assembled %d bytes differ from the %d-byte original at %#x", len(got), len(img), firstDiff(got, img))
			}

			// qemu-img has no check for vpc; info must read the
			// assembled file as the VHD it was (a fixed VHD probes as
			// raw, so name the format).
			var info struct {
				Format      string `json:"format"`
				VirtualSize int64  `json:"virtual-size"`
			}
			if err := json.Unmarshal([]byte(testtool.Run(t, qemu, "info", "-f", "vpc", "--output=json", out)), &info); err != nil {
				t.Fatal(err)
			}
			wantSize := int64(len(disk)+sector-1) &^ (sector - 1)
			if info.Format != "vpc" || info.VirtualSize < wantSize || (f.name != "dynamic" && info.VirtualSize != wantSize) {
				t.Errorf("qemu-img info: %+v, want vpc of %d bytes", info, wantSize)
			}

			// The disk qemu reads from the assembled file is the raw
			// disk (zero-padded to its virtual size), and the content is
			// its non-zero pieces, in order.
			back := filepath.Join(dir, f.name+"-back.raw")
			testtool.Run(t, qemu, "convert", "-f", "vpc", "-O", "raw", out, back)
			guest, err := os.ReadFile(back)
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(guest)) != info.VirtualSize || !bytes.Equal(guest[:len(disk)], disk) || !zeros.Is(guest[len(disk):]) {
				t.Fatalf("qemu-img reads back %d bytes, not the %d-byte disk zero-padded", len(guest), len(disk))
			}
			if want := nonZeroPieces(guest); !bytes.Equal(content, want) {
				t.Errorf("content (%d bytes) is not the disk's non-zero 64 KiB pieces (%d bytes), first difference at %#x",
					len(content), len(want), firstDiff(content, want))
			}
		})
	}
}
