package qcow2

import (
	"bytes"
	"io"
	"path/filepath"
	"testing"

	"github.com/rehydrator/rehydrator/formats"
	"github.com/rehydrator/rehydrator/internal/formattest"
	"github.com/rehydrator/rehydrator/internal/testtool"
)

// benchImage is a 64 MiB guest disk written by qemu-img convert -c
// (version 3, 64 KiB clusters).
func benchImage(b *testing.B) []byte {
	b.Helper()
	testtool.Require(b, "qemu-img")
	dir := b.TempDir()
	raw, _ := formattest.WriteMixedDisk(b, dir, 64<<20, 42)
	return convert(b, raw, filepath.Join(dir, "bench.qcow2"), "compat=1.1,cluster_size=65536", true)
}

// BenchmarkAssemble re-creates the -c image from its recipe and content;
// bytes/s are of the qcow2 file.
func BenchmarkAssemble(b *testing.B) {
	img := benchImage(b)
	recipe, content, st := formattest.RoundTrip(b, Split, img)
	b.ReportMetric(float64(st.Recreated), "pieces")
	b.SetBytes(int64(len(img)))
	b.ResetTimer()
	for b.Loop() {
		if err := formats.Assemble(io.Discard, bytes.NewReader(recipe), bytes.NewReader(content)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSplit splits the -c image (each compressed cluster inflated and
// re-compressed to check it re-creates).
func BenchmarkSplit(b *testing.B) {
	img := benchImage(b)
	b.SetBytes(int64(len(img)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := formattest.SplitTo(b, Split, img, io.Discard, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}
