package vhdx

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
//
// Inputs are sparse images (see expand): a VHDX is megabytes of mostly
// zeros. Most seeds have their checksums set on expansion, so mutations
// reach past the headers and region tables; one has not, and plain
// (non-sparse) inputs are files as they are.
func FuzzSplit(f *testing.F) {
	blocks := smallBlocks(4, 64<<10)
	f.Add(sparse(synth{blockSize: mib, blocks: blocks}.build(f), true))
	f.Add(sparse(synth{blockSize: mib, blocks: blocks}.build(f), false))
	f.Add(sparse(synth{blockSize: mib, blocks: blocks[:2], hasParent: true, logLength: mib}.build(f), true))
	f.Add(sparse(synth{blockSize: 2 * mib, sectorSize: 4096, blocks: blocks[:1], diskSize: 3 * 4096}.build(f), true))
	f.Add([]byte("vhdxfile"))
	if qemu, err := exec.LookPath("qemu-img"); err == nil {
		// A small dynamic disk as qemu writes it, 1 MiB blocks.
		dir := f.TempDir()
		raw := filepath.Join(dir, "seed.raw")
		disk := make([]byte, 3*mib)
		copy(disk[mib:], bytes.Repeat([]byte("seed disk "), 1000))
		if err := os.WriteFile(raw, disk, 0o644); err != nil {
			f.Fatal(err)
		}
		dst := filepath.Join(dir, "seed.vhdx")
		if out, err := exec.Command(qemu, "convert", "-f", "raw", "-O", "vhdx", "-o", "block_size=1M", raw, dst).CombinedOutput(); err != nil {
			f.Fatalf("qemu-img: %v\n%s", err, out)
		}
		img, err := os.ReadFile(dst)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(sparse(img, true))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		img := expand(in)
		size := int64(len(img))
		// The layout alone: reads and allocations bounded by the size.
		cr := &countingReader{r: bytes.NewReader(img)}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := readLayout(cr, size)
		runtime.ReadMemStats(&after)
		if n := cr.n.Load(); n > 2*size+1<<20 {
			t.Fatalf("readLayout read %d bytes of a %d-byte file", n, size)
		}
		if n := int64(after.TotalAlloc - before.TotalAlloc); n > size+4<<20 {
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
