package qcow2

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
)

// countingReader counts the bytes Split asks for.
type countingReader struct {
	r io.ReaderAt
	n atomic.Int64
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	c.n.Add(int64(len(p)))
	return c.r.ReadAt(p, off)
}

// FuzzSplit: Split never panics, reads and allocates in proportion to the
// file, and when it accepts a file, Assemble gives it back exactly.
func FuzzSplit(f *testing.F) {
	f.Add(buildSynth(f).img)
	f.Add([]byte("QFI\xfb\x00\x00\x00\x03"))
	if qemu, err := exec.LookPath("qemu-img"); err == nil {
		// Small images qemu writes: both versions, compressed or not.
		// (Extended L2 needs 16 KiB clusters: too big a seed.)
		dir := f.TempDir()
		raw := filepath.Join(dir, "seed.raw")
		if err := os.WriteFile(raw, makeRaw(32<<10, 7).data, 0o644); err != nil {
			f.Fatal(err)
		}
		for _, o := range []struct {
			opts string
			c    bool
		}{
			{"compat=0.10,cluster_size=512", true},
			{"compat=1.1,cluster_size=4096", true},
			{"compat=1.1,cluster_size=4096", false},
			{"compat=1.1,cluster_size=512", false},
		} {
			dst := filepath.Join(dir, "seed.qcow2")
			args := []string{"convert", "-f", "raw", "-O", "qcow2", "-o", o.opts}
			if o.c {
				args = append(args, "-c")
			}
			if out, err := exec.Command(qemu, append(args, raw, dst)...).CombinedOutput(); err != nil {
				f.Fatalf("qemu-img: %v\n%s", err, out)
			}
			img, err := os.ReadFile(dst)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(img)
		}
	}
	f.Fuzz(func(t *testing.T, img []byte) {
		size := int64(len(img))
		// The layout alone: reads and allocations bounded by the size.
		cr := &countingReader{r: bytes.NewReader(img)}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := readLayout(cr, size)
		runtime.ReadMemStats(&after)
		if n := cr.n.Load(); n > 2*size+4096 {
			t.Fatalf("readLayout read %d bytes of a %d-byte file", n, size)
		}
		if n := int64(after.TotalAlloc - before.TotalAlloc); n > 32*size+1<<20 {
			t.Fatalf("readLayout allocated %d bytes for a %d-byte file", n, size)
		}

		if err != nil {
			return // Split refuses it the same way: it starts with readLayout
		}
		recipe, content, _, err := split(t, img)
		if err != nil {
			t.Fatalf("Split: %v", err) // only reading can fail after the layout
		}
		if got := assemble(t, recipe, content); !bytes.Equal(got, img) {
			t.Fatalf("reassembled file differs at %#x (%d bytes, want %d)", firstDiff(got, img), len(got), len(img))
		}
	})
}
