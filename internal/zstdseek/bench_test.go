package zstdseek

import (
	"bytes"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
)

const benchSize = 256 << 20

// benchData returns 256 MiB of disk-like data and its blob, made once.
var benchData = sync.OnceValues(func() ([]byte, []byte) {
	data := diskLike(benchSize, 42)
	var buf bytes.Buffer
	w, err := NewWriter(&buf, 0)
	if err != nil {
		panic(err)
	}
	if _, err := w.Write(data); err != nil {
		panic(err)
	}
	if err := w.Close(); err != nil {
		panic(err)
	}
	return data, buf.Bytes()
})

func BenchmarkWriter(b *testing.B) {
	data, blob := benchData()
	b.SetBytes(int64(len(data)))
	b.ReportMetric(float64(len(data))/float64(len(blob)), "ratio")
	for b.Loop() {
		w, err := NewWriter(io.Discard, 0)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			b.Fatal(err)
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWriteTo(b *testing.B) {
	data, blob := benchData()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		r, err := NewReader(bytes.NewReader(blob), int64(len(blob)))
		if err != nil {
			b.Fatal(err)
		}
		if n, err := r.WriteTo(io.Discard); err != nil || n != int64(len(data)) {
			b.Fatal(n, err)
		}
		r.Close()
	}
}

// benchSequential reads the whole content in 1 MiB ReadAt calls, like a
// delta decoder walking the base, optionally hashing each chunk to stand for
// the caller's own work.
func benchSequential(b *testing.B, prefetch, work bool) {
	data, blob := benchData()
	b.SetBytes(int64(len(data)))
	buf := make([]byte, 1<<20)
	for b.Loop() {
		r, err := NewReader(bytes.NewReader(blob), int64(len(blob)))
		if err != nil {
			b.Fatal(err)
		}
		if !prefetch {
			r.ahead = 0
		}
		h := sha256.New()
		for off := int64(0); off < int64(len(data)); off += int64(len(buf)) {
			n, err := r.ReadAt(buf, off)
			if err != nil && err != io.EOF {
				b.Fatal(err)
			}
			if work {
				h.Write(buf[:n])
			}
		}
		r.Close()
	}
}

func BenchmarkReadAtSequential(b *testing.B) {
	b.Run("prefetch", func(b *testing.B) { benchSequential(b, true, false) })
	b.Run("noprefetch", func(b *testing.B) { benchSequential(b, false, false) })
	b.Run("prefetch+sha256", func(b *testing.B) { benchSequential(b, true, true) })
	b.Run("noprefetch+sha256", func(b *testing.B) { benchSequential(b, false, true) })
}

// BenchmarkReadAtRandom measures 4 KiB reads at random offsets (mostly
// cache misses: the content spans 64 frames, the cache holds 8).
func BenchmarkReadAtRandom(b *testing.B) {
	data, blob := benchData()
	r, err := NewReader(bytes.NewReader(blob), int64(len(blob)))
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	rng := rand.New(rand.NewPCG(1, 1))
	buf := make([]byte, 4096)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if _, err := r.ReadAt(buf, rng.Int64N(int64(len(data)-len(buf)))); err != nil {
			b.Fatal(err)
		}
	}
}
