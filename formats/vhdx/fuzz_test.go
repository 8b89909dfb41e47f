package vhdx

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
	if _, err := exec.LookPath("qemu-img"); err == nil {
		// A small dynamic disk as qemu writes it, 1 MiB blocks.
		dir := f.TempDir()
		disk := make([]byte, 3*mib)
		copy(disk[mib:], bytes.Repeat([]byte("seed disk "), 1000))
		raw := formattest.WriteFile(f, filepath.Join(dir, "seed.raw"), disk)
		f.Add(sparse(formattest.Convert(f, raw, filepath.Join(dir, "seed.vhdx"), "vhdx", "block_size=1M"), true))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		img := expand(in)
		// The layout alone: reads and allocations bounded by the size.
		size := int64(len(img))
		if _, err := formattest.Bounded(t, "readLayout", img, 2*size+1<<20, size+4<<20, readLayout); err != nil {
			return // Split refuses it the same way: it starts with readLayout
		}
		formattest.RoundTrip(t, Split, img) // only reading can fail after the layout
	})
}
