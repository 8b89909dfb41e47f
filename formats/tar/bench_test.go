package tar

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/rehydrator/rehydrator/internal/formattest"
	"github.com/rehydrator/rehydrator/internal/testtool"
)

// BenchmarkSplitSparse splits a gcp-style archive (GNU tar, old GNU
// format, raw hole detection) of a 256 MiB disk with thousands of data
// runs and holes, and reports the recipe's size and the fragments.
func BenchmarkSplitSparse(b *testing.B) {
	gnutar := testtool.Require(b, "tar")
	dir := b.TempDir()
	const size = 256 << 20
	rng := rand.New(rand.NewPCG(11, 12))
	f, err := os.Create(filepath.Join(dir, "disk.raw"))
	if err != nil {
		b.Fatal(err)
	}
	run := make([]byte, 256<<10)
	for i := range run {
		run[i] = byte(rng.IntN(64))
	}
	for off := int64(0); off < size; {
		n := min(int64(512*(1+rng.IntN(64))), size-off)
		if rng.IntN(2) == 0 {
			if _, err := f.WriteAt(run[:n], off); err != nil {
				b.Fatal(err)
			}
		}
		off += n
	}
	if err := f.Truncate(size); err != nil {
		b.Fatal(err)
	}
	f.Close()
	out := filepath.Join(dir, "disk.tar")
	testtool.Run(b, gnutar, append([]string{"--format=oldgnu", "-S", "--hole-detection=raw"},
		append(reproducible, "-C", dir, "-cf", out, "disk.raw")...)...)
	img := formattest.ReadFile(b, out)
	ms := members(b, img)
	var recipe bytes.Buffer
	b.SetBytes(int64(len(img)))
	b.ResetTimer()
	for b.Loop() {
		recipe.Reset()
		if _, err := formattest.SplitTo(b, Split, img, &recipe, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(ms[0].Map)), "fragments")
	b.ReportMetric(float64(recipe.Len()), "recipe-bytes")
	b.ReportMetric(float64(len(img)), "archive-bytes")
}
