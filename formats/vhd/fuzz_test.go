package vhd

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/rehydrator/rehydrator/internal/formattest"
)

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
	if _, err := exec.LookPath("qemu-img"); err == nil {
		// A small fixed disk as qemu writes it (a dynamic one holds at
		// least a 2 MiB block: too big a seed).
		dir := f.TempDir()
		raw := formattest.WriteFile(f, filepath.Join(dir, "seed.raw"), bytes.Repeat([]byte("seed disk "), 1000))
		f.Add(formattest.Convert(f, raw, filepath.Join(dir, "seed.vhd"), "vpc", "subformat=fixed,force_size"))
	}
	f.Fuzz(func(t *testing.T, img []byte) {
		// The layout alone: reads and allocations bounded by the size.
		size := int64(len(img))
		if _, err := formattest.Bounded(t, "readLayout", img, 2*size+4096, 32*size+1<<20, readLayout); err != nil {
			return // Split refuses it the same way: it starts with readLayout
		}
		formattest.RoundTrip(t, Split, img) // only reading can fail after the layout
	})
}
