package vhdx

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/rehydrator/rehydrator/formats"
	"github.com/rehydrator/rehydrator/internal/formattest"
)

// qemuFormats are the VHDX flavours qemu-img writes.
var qemuFormats = []struct {
	name, opts string
}{
	{"dynamic", "subformat=dynamic"}, // 8 MiB blocks for a disk this size
	{"fixed", "subformat=fixed"},
	{"block-1M", "block_size=1M"},
	{"block-32M", "block_size=32M"},
}

// TestQemu converts a mixed raw disk with qemu-img, splits and re-assembles
// each VHDX, checks the result byte for byte and with qemu-img, and checks
// that the content is the disk's non-zero 64 KiB pieces.
func TestQemu(t *testing.T) {
	if testing.Short() {
		t.Skip("converts a 64 MiB disk with qemu-img")
	}
	formattest.QemuImg(t)
	dir := t.TempDir()
	rawPath, disk := formattest.WriteMixedDisk(t, dir, 64*mib+12345, 1) // an unaligned tail
	wantSize := int64(len(disk)+511) &^ 511

	for _, f := range qemuFormats {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel() // Split is sequential: use both cores
			img := formattest.Convert(t, rawPath, filepath.Join(dir, f.name+".vhdx"), "vhdx", f.opts)
			if !Detect(img) {
				t.Error("Detect = false")
			}
			l, err := readLayout(bytes.NewReader(img), int64(len(img)))
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, f.name+"-assembled.vhdx")
			recipe, content, st := formattest.RoundTripFile(t, Split, img, out)
			t.Logf("%d-byte VHDX, %d MiB blocks, %d present: recipe %d bytes (%.4f%%), content %d bytes, verbatim %d, zeros %d",
				len(img), l.blockSize/mib, len(l.data), len(recipe), 100*float64(len(recipe))/float64(len(img)), len(content), st.Verbatim, st.Zero)
			if len(recipe) > 16<<10 {
				t.Errorf("recipe is %d bytes, want ≤ 16 KiB", len(recipe))
			}

			formattest.Check(t, "-f", "vhdx", out)
			if info := formattest.Info(t, out); info.Format != "vhdx" || info.VirtualSize != wantSize {
				t.Errorf("qemu-img info: %+v, want vhdx of %d bytes", info, wantSize)
			}

			// The disk qemu reads from the assembled file is the raw
			// disk (zero-padded to a sector), and the content is its
			// non-zero pieces, in order.
			guest := formattest.ConvertToRaw(t, out, filepath.Join(dir, f.name+"-back.raw"), "vhdx")
			formattest.CheckGuest(t, guest, disk, wantSize)
			if want := formattest.NonZeroPieces(guest, formats.DiskZeroPiece); !bytes.Equal(content, want) {
				t.Errorf("content (%d bytes) is not the disk's non-zero 64 KiB pieces (%d bytes), first difference at %#x",
					len(content), len(want), formattest.FirstDiff(content, want))
			}
		})
	}
}
