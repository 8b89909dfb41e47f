package vhd

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
//
// Run with -fuzzminimizetime 1x: with the default (60s) a short run spends
// most of its time minimizing the new inputs it finds.
func FuzzSplit(f *testing.F) {
	blocks := smallBlocks(5, 1024)
	f.Add(synth{diskType: diskDynamic, blockSize: 1024, blocks: blocks}.build(f))
	f.Add(synth{diskType: diskDifferencing, blockSize: 512, blocks: smallBlocks(3, 512), size: 1000}.build(f))
	f.Add(synth{diskType: diskFixed, blocks: [][]byte{blocks[0]}}.build(f))
	f.Add(synth{diskType: diskDynamic, blockSize: 2 << 20, blocks: make([][]byte, 3)}.build(f))
	if qemu, err := exec.LookPath("qemu-img"); err == nil {
		// A small fixed disk as qemu writes it (a dynamic one holds at
		// least a 2 MiB block: too big a seed).
		dir := f.TempDir()
		raw := filepath.Join(dir, "seed.raw")
		if err := os.WriteFile(raw, bytes.Repeat([]byte("seed disk "), 1000), 0o644); err != nil {
			f.Fatal(err)
		}
		dst := filepath.Join(dir, "seed.vhd")
		if out, err := exec.Command(qemu, "convert", "-f", "raw", "-O", "vpc", "-o", "subformat=fixed,force_size", raw, dst).CombinedOutput(); err != nil {
			f.Fatalf("qemu-img: %v\n%s", err, out)
		}
		img, err := os.ReadFile(dst)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(img)
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
