package vhdx

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/rehydrator/rehydrator/internal/testtool"
	"github.com/rehydrator/rehydrator/internal/zeros"
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
	qemu := testtool.Require(t, "qemu-img")
	dir := t.TempDir()
	rawPath := filepath.Join(dir, "disk.raw")
	disk := makeRaw(t, rawPath)
	wantSize := int64(len(disk)+511) &^ 511

	for _, f := range qemuFormats {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel() // Split is sequential: use both cores
			path := filepath.Join(dir, f.name+".vhdx")
			testtool.Run(t, qemu, "convert", "-f", "raw", "-O", "vhdx", "-o", f.opts, rawPath, path)
			img, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !Detect(img) {
				t.Error("Detect = false")
			}
			l, err := readLayout(bytes.NewReader(img), int64(len(img)))
			if err != nil {
				t.Fatal(err)
			}
			recipe, content, st, err := split(t, img)
			if err != nil {
				t.Fatalf("Split: %v", err)
			}
			t.Logf("%d-byte VHDX, %d MiB blocks, %d present: recipe %d bytes (%.4f%%), content %d bytes, verbatim %d, zeros %d",
				len(img), l.blockSize/mib, len(l.data), len(recipe), 100*float64(len(recipe))/float64(len(img)), len(content), st.Verbatim, st.Zero)
			if len(recipe) > 16<<10 {
				t.Errorf("recipe is %d bytes, want ≤ 16 KiB", len(recipe))
			}

			out := filepath.Join(dir, f.name+"-assembled.vhdx")
			if err := os.WriteFile(out, assemble(t, recipe, content), 0o644); err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(out); !bytes.Equal(got, img) {
				t.Fatalf("assembled %d bytes differ from the %d-byte original at %#x", len(got), len(img), firstDiff(got, img))
			}
			testtool.Run(t, qemu, "check", "-f", "vhdx", out)
			var info struct {
				Format      string `json:"format"`
				VirtualSize int64  `json:"virtual-size"`
			}
			if err := json.Unmarshal([]byte(testtool.Run(t, qemu, "info", "--output=json", out)), &info); err != nil {
				t.Fatal(err)
			}
			if info.Format != "vhdx" || info.VirtualSize != wantSize {
				t.Errorf("qemu-img info: %+v, want vhdx of %d bytes", info, wantSize)
			}

			// The disk qemu reads from the assembled file is the raw
			// disk (zero-padded to a sector), and the content is its
			// non-zero pieces, in order.
			back := filepath.Join(dir, f.name+"-back.raw")
			testtool.Run(t, qemu, "convert", "-f", "vhdx", "-O", "raw", out, back)
			guest, err := os.ReadFile(back)
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(guest)) != wantSize || !bytes.Equal(guest[:len(disk)], disk) || !zeros.Is(guest[len(disk):]) {
				t.Fatalf("qemu-img reads back %d bytes, not the %d-byte disk zero-padded", len(guest), len(disk))
			}
			if want := nonZeroPieces(guest); !bytes.Equal(content, want) {
				t.Errorf("content (%d bytes) is not the disk's non-zero 64 KiB pieces (%d bytes), first difference at %#x",
					len(content), len(want), firstDiff(content, want))
			}
		})
	}
}
