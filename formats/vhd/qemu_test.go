package vhd

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/rehydrator/rehydrator/formats"
	"github.com/rehydrator/rehydrator/internal/formattest"
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
	formattest.QemuImg(t)
	dir := t.TempDir()
	rawPath, disk := formattest.WriteMixedDisk(t, dir, 64<<20+12345, 1) // an unaligned tail

	for _, f := range qemuFormats {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel() // Split is sequential: use both cores
			img := formattest.Convert(t, rawPath, filepath.Join(dir, f.name+".vhd"), "vpc", f.opts)
			if Detect(img) == f.fixed {
				t.Errorf("Detect = %v, want %v (a footer copy at 0)", !f.fixed, !f.fixed)
			}
			if !DetectFooter(img[len(img)-2*footerSize:]) {
				t.Error("DetectFooter = false")
			}
			out := filepath.Join(dir, f.name+"-assembled.vhd")
			recipe, content, st := formattest.RoundTripFile(t, Split, img, out)
			t.Logf("%d-byte VHD: recipe %d bytes (%.4f%%), content %d bytes, verbatim %d, zeros %d",
				len(img), len(recipe), 100*float64(len(recipe))/float64(len(img)), len(content), st.Verbatim, st.Zero)
			if len(recipe) > 4<<10 {
				t.Errorf("recipe is %d bytes, want ≤ 4 KiB", len(recipe))
			}

			// qemu-img has no check for vpc; info must read the
			// assembled file as the VHD it was (a fixed VHD probes as
			// raw, so name the format).
			info := formattest.Info(t, out, "-f", "vpc")
			wantSize := int64(len(disk)+sector-1) &^ (sector - 1)
			if info.Format != "vpc" || info.VirtualSize < wantSize || (f.name != "dynamic" && info.VirtualSize != wantSize) {
				t.Errorf("qemu-img info: %+v, want vpc of %d bytes", info, wantSize)
			}

			// The disk qemu reads from the assembled file is the raw
			// disk (zero-padded to its virtual size), and the content is
			// its non-zero pieces, in order.
			guest := formattest.ConvertToRaw(t, out, filepath.Join(dir, f.name+"-back.raw"), "vpc")
			formattest.CheckGuest(t, guest, disk, info.VirtualSize)
			if want := formattest.NonZeroPieces(guest, formats.DiskZeroPiece); !bytes.Equal(content, want) {
				t.Errorf("content (%d bytes) is not the disk's non-zero 64 KiB pieces (%d bytes), first difference at %#x",
					len(content), len(want), formattest.FirstDiff(content, want))
			}
		})
	}
}
