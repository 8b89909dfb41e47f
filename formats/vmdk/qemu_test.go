package vmdk

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"io"
	"path/filepath"
	"testing"

	"github.com/rehydrator/rehydrator/internal/formattest"
)

// qemuFormats are the sparse VMDK flavours qemu-img writes.
var qemuFormats = []struct {
	name, opts string
}{
	{"streamOptimized-compat6", "adapter_type=lsilogic,subformat=streamOptimized,compat6"},
	{"streamOptimized", "adapter_type=lsilogic,subformat=streamOptimized"},
	{"monolithicSparse", "subformat=monolithicSparse"},
}

// TestQemu converts a mixed raw disk with qemu-img, splits and re-assembles
// each VMDK, and checks the result byte for byte and with qemu-img.
func TestQemu(t *testing.T) {
	if testing.Short() {
		t.Skip("converts a 64 MiB disk with qemu-img")
	}
	formattest.QemuImg(t)
	dir := t.TempDir()
	rawPath, disk := formattest.WriteMixedDisk(t, dir, testRawSize, 1)
	want := formattest.NonZeroPieces(disk, testGrain)

	for _, f := range qemuFormats {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel() // Split is sequential: use both cores
			img := formattest.Convert(t, rawPath, filepath.Join(dir, f.name+".vmdk"), "vmdk", f.opts)
			if !Detect(img) {
				t.Fatal("Detect = false")
			}
			// Assemble into a file, which qemu-img then checks.
			out := filepath.Join(dir, f.name+"-assembled.vmdk")
			recipe, content, st := formattest.RoundTripFile(t, Split, img, out)
			pct := 100 * float64(len(recipe)) / float64(len(img))
			rate := "no compressed grains"
			if n := st.Recreated + st.Kept; n > 0 {
				rate = fmt.Sprintf("match rate %.2f%%", 100*float64(st.Recreated)/float64(n))
			}
			t.Logf("%d-byte VMDK: recipe %d bytes (%.3f%%), content %d bytes, grains re-created %d, kept %d (%s), stats %+v",
				len(img), len(recipe), pct, len(content), st.Recreated, st.Kept, rate, st)
			if !bytes.Equal(content, want) {
				t.Errorf("content (%d bytes) is not the disk's non-zero grains in order (%d bytes), first difference at %d",
					len(content), len(want), formattest.FirstDiff(content, want))
			}
			if pct > 1 {
				t.Errorf("recipe is %.3f%% of the VMDK, want ≤ 1%%", pct)
			}
			if st.Kept != 0 {
				t.Errorf("%d of %d grains kept verbatim: formats/zlib is not bit-exact with qemu's zlib", st.Kept, st.Kept+st.Recreated)
			}
			formattest.Check(t, out)
			if info := formattest.Info(t, out); info.Format != "vmdk" || info.VirtualSize != testRawSize {
				t.Errorf("qemu-img info: %+v", info)
			}
			if f.name == "streamOptimized-compat6" {
				// The reassembled image reads back as the original disk.
				guest := formattest.ConvertToRaw(t, out, filepath.Join(dir, "back.raw"), "vmdk")
				formattest.CheckGuest(t, guest, disk, testRawSize)
			}
		})
	}

	// A grain compressed by another deflate implementation still
	// round-trips, through the verbatim path.
	t.Run("altered-grain", func(t *testing.T) {
		t.Parallel()
		img := formattest.Convert(t, rawPath, filepath.Join(dir, "altered-src.vmdk"), "vmdk", qemuFormats[0].opts)
		img = recompressLastGrain(t, img)
		formattest.Check(t, formattest.WriteFile(t, filepath.Join(dir, "altered.vmdk"), img))
		_, content, st := formattest.RoundTrip(t, Split, img)
		if st.Kept != 1 {
			t.Errorf("Kept = %d, want 1 (the altered grain)", st.Kept)
		}
		// A kept grain's data is in the recipe (compressed), not in the
		// content: the content is every other grain.
		if w := want[:len(want)-testGrain]; !bytes.Equal(content, w) {
			t.Errorf("content (%d bytes) differs from the disk's non-zero grains but the last (%d bytes) at %d", len(content), len(w), formattest.FirstDiff(content, w))
		}
	})
}

// streamGrains returns the file offsets of the grain markers of a
// streamOptimized image (a minimal walk, independent of Split).
func streamGrains(tb testing.TB, img []byte) []int {
	tb.Helper()
	le := binary.LittleEndian
	var at []int
	for pos := int(le.Uint64(img[offOverHead:])) * sector; pos+markerSize <= len(img); {
		size := int(le.Uint32(img[pos+8:]))
		if size == 0 {
			break
		}
		at = append(at, pos)
		pos = int(roundUp(int64(pos + markerSize + size)))
	}
	if len(at) == 0 {
		tb.Fatal("no grains")
	}
	return at
}

// recompressLastGrain recompresses the last grain of a streamOptimized
// image with Go's compress/zlib (valid, but not zlib's bytes), fixes its
// marker's size and lays the file out again. The last grain is chosen so no
// grain table entry moves.
func recompressLastGrain(tb testing.TB, img []byte) []byte {
	tb.Helper()
	le := binary.LittleEndian
	grains := streamGrains(tb, img)
	pos := grains[len(grains)-1]
	size := int(le.Uint32(img[pos+8:]))
	old := img[pos+markerSize : pos+markerSize+size]
	zr, err := zlib.NewReader(bytes.NewReader(old))
	if err != nil {
		tb.Fatal(err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		tb.Fatal(err)
	}
	var z bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&z, zlib.BestSpeed)
	zw.Write(data)
	zw.Close()
	if bytes.Equal(z.Bytes(), old) {
		tb.Fatal("Go's zlib made zlib's bytes: pick another level")
	}
	oldEnd := int(roundUp(int64(pos + markerSize + size)))
	out := bytes.Clone(img[:pos+markerSize])
	le.PutUint32(out[pos+8:], uint32(z.Len()))
	out = append(out, z.Bytes()...)
	out = append(out, make([]byte, int(roundUp(int64(len(out))))-len(out))...)
	return append(out, img[oldEnd:]...) // the zeros qemu leaves after the last grain
}
