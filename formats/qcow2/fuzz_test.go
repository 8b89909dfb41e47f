package qcow2

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/rehydrator/rehydrator/internal/formattest"
)

// FuzzSplit: Split never panics, reads and allocates in proportion to the
// file, and when it accepts a file, Assemble gives it back exactly.
func FuzzSplit(f *testing.F) {
	f.Add(buildSynth(f).img)
	f.Add([]byte("QFI\xfb\x00\x00\x00\x03"))
	if _, err := exec.LookPath("qemu-img"); err == nil {
		// Small images qemu writes: both versions, compressed or not.
		// (Extended L2 needs 16 KiB clusters: too big a seed.)
		dir := f.TempDir()
		raw := formattest.WriteFile(f, filepath.Join(dir, "seed.raw"), formattest.MixedDisk(32<<10, 7))
		for _, o := range []struct {
			opts string
			c    bool
		}{
			{"compat=0.10,cluster_size=512", true},
			{"compat=1.1,cluster_size=4096", true},
			{"compat=1.1,cluster_size=4096", false},
			{"compat=1.1,cluster_size=512", false},
		} {
			f.Add(convert(f, raw, filepath.Join(dir, "seed.qcow2"), o.opts, o.c))
		}
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
