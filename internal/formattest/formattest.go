// Package formattest holds what the format packages' tests share:
//
//   - splitting a file with a format's Split into a recipe and content and
//     assembling it back, failing at the first differing byte: Split,
//     SplitTo, Assemble, CheckAssemble, RoundTrip, RoundTripFile, and
//     FuzzRoundTrip, the body of a FuzzSplit target;
//   - bounding what a parser reads and allocates: CountingReader, Bounded;
//   - a deterministic mixed raw disk to make images of, and what a sparse
//     image of it holds: MixedDisk, WriteMixedDisk, NonZeroPieces,
//     CheckGuest, and its fillers FillText, FillRecords, RandomBytes;
//   - the qemu-img calls the disk-image packages check against: Convert,
//     ConvertToRaw, Check, Info;
//   - WriteFile and ReadFile, which fail the test on error.
//
// It is a test-support package: its functions take a testing.TB and fail
// the test on any error they do not return. formats/zlib and
// formats/gnugzip cannot use it: formats imports them, so their tests
// importing formattest would be an import cycle.
package formattest

import (
	"bytes"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/rehydrator/rehydrator/formats"
)

// SplitFunc is a format package's Split: it describes the size bytes of
// src to b, from the first byte to the last.
type SplitFunc func(src io.ReaderAt, size int64, b *formats.Builder) error

// SplitTo runs split on img with a Builder that writes the recipe to
// recipe and the content to content, splitting members with nested. It
// returns the Builder's stats and split's error; if split succeeds but the
// Builder fails to close, it fails tb.
func SplitTo(tb testing.TB, split SplitFunc, img []byte, recipe, content io.Writer, nested ...formats.Format) (formats.Stats, error) {
	tb.Helper()
	b, err := formats.NewBuilder(recipe, content, nested...)
	if err != nil {
		tb.Fatalf("NewBuilder: %v", err)
	}
	err = split(bytes.NewReader(img), int64(len(img)), b)
	st := b.Stats()
	if cerr := b.Close(); err == nil && cerr != nil {
		tb.Fatalf("closing the builder: %v", cerr)
	}
	return st, err
}

// Split runs split on img, splitting members with nested, and returns the
// recipe, the content and the stats, or split's error (with what was
// recorded before it).
func Split(tb testing.TB, split SplitFunc, img []byte, nested ...formats.Format) (recipe, content []byte, st formats.Stats, err error) {
	tb.Helper()
	var r, c bytes.Buffer
	st, err = SplitTo(tb, split, img, &r, &c, nested...)
	return r.Bytes(), c.Bytes(), st, err
}

// Assemble joins recipe and content back into the file, failing tb if
// formats.Assemble fails.
func Assemble(tb testing.TB, recipe, content []byte) []byte {
	tb.Helper()
	var out bytes.Buffer
	if err := formats.Assemble(&out, bytes.NewReader(recipe), bytes.NewReader(content)); err != nil {
		tb.Fatalf("Assemble: %v", err)
	}
	return out.Bytes()
}

// CheckAssemble assembles recipe and content and fails tb unless they give
// want, byte for byte.
func CheckAssemble(tb testing.TB, recipe, content, want []byte) {
	tb.Helper()
	checkSame(tb, Assemble(tb, recipe, content), want)
}

// checkSame fails tb unless got, an assembled file, is want.
func checkSame(tb testing.TB, got, want []byte) {
	tb.Helper()
	if !bytes.Equal(got, want) {
		g, w := sha256.Sum256(got), sha256.Sum256(want)
		tb.Fatalf("Assemble gave %d bytes (sha256 %x…), want %d (sha256 %x…); first difference at %#x",
			len(got), g[:8], len(want), w[:8], FirstDiff(got, want))
	}
}

// RoundTrip splits img with split (members with nested), assembles it back
// and fails tb unless split succeeds and the result is img, byte for byte;
// the failure names the first differing offset. It returns the recipe, the
// content and the stats.
func RoundTrip(tb testing.TB, split SplitFunc, img []byte, nested ...formats.Format) (recipe, content []byte, st formats.Stats) {
	tb.Helper()
	recipe, content, st, err := Split(tb, split, img, nested...)
	if err != nil {
		tb.Fatalf("Split: %v", err)
	}
	CheckAssemble(tb, recipe, content, img)
	return recipe, content, st
}

// RoundTripFile is RoundTrip with the file assembled into path, where a
// checker (qemu-img check) can read it: it fails tb unless the file written
// is img.
func RoundTripFile(tb testing.TB, split SplitFunc, img []byte, path string, nested ...formats.Format) (recipe, content []byte, st formats.Stats) {
	tb.Helper()
	recipe, content, st, err := Split(tb, split, img, nested...)
	if err != nil {
		tb.Fatalf("Split: %v", err)
	}
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	if err := formats.Assemble(f, bytes.NewReader(recipe), bytes.NewReader(content)); err != nil {
		f.Close()
		tb.Fatalf("Assemble: %v", err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	checkSame(tb, ReadFile(tb, path), img)
	return recipe, content, st
}

// FuzzRoundTrip is the body of a format's FuzzSplit target: split must
// not panic, and when it accepts img, Assemble must give img back exactly.
// It does not bound what split reads or allocates: a target whose parser
// could read or allocate beyond the input's size checks that first, with
// Bounded.
func FuzzRoundTrip(t testing.TB, split SplitFunc, img []byte) {
	t.Helper()
	recipe, content, _, err := Split(t, split, img)
	if err != nil {
		return
	}
	CheckAssemble(t, recipe, content, img)
}

// FirstDiff returns the first offset at which a and b differ: the shorter
// one's length if one is a prefix of the other, and that length also if
// they are equal.
func FirstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// CountingReader is an io.ReaderAt that counts the bytes asked of R, so a
// test can bound what a parser reads.
type CountingReader struct {
	R io.ReaderAt
	n atomic.Int64
}

// ReadAt reads from R, counting len(p).
func (c *CountingReader) ReadAt(p []byte, off int64) (int, error) {
	c.n.Add(int64(len(p)))
	return c.R.ReadAt(p, off)
}

// N returns the bytes asked for so far.
func (c *CountingReader) N() int64 { return c.n.Load() }

// Bounded runs parse (named name in failures) on img through a
// CountingReader and fails tb if it asks for more than maxRead bytes or
// allocates more than maxAlloc (the growth of runtime.MemStats.TotalAlloc,
// so nothing else should run meanwhile). It returns what parse returns.
func Bounded[T any](tb testing.TB, name string, img []byte, maxRead, maxAlloc int64, parse func(src io.ReaderAt, size int64) (T, error)) (T, error) {
	tb.Helper()
	size := int64(len(img))
	cr := &CountingReader{R: bytes.NewReader(img)}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	v, err := parse(cr, size)
	runtime.ReadMemStats(&after)
	if n := cr.N(); n > maxRead {
		tb.Fatalf("%s read %d bytes of a %d-byte file", name, n, size)
	}
	if n := int64(after.TotalAlloc - before.TotalAlloc); n > maxAlloc {
		tb.Fatalf("%s allocated %d bytes for a %d-byte file", name, n, size)
	}
	return v, err
}

// WriteFile writes data to path, making its directory first, and returns
// path.
func WriteFile(tb testing.TB, path string, data []byte) string {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}

// ReadFile returns the bytes of the file at path.
func ReadFile(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
