package zstdseek

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// diskLike returns size bytes resembling a disk image: runs of zeros (about
// half), compressible text and structured records, and random (already
// compressed) data, in runs of 4 KiB to 2 MiB. It is deterministic in seed.
func diskLike(size int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	random := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 1, 2, 3})
	words := make([][]byte, 512)
	for i := range words {
		w := make([]byte, 2+rng.IntN(9))
		for j := range w {
			w[j] = 'a' + byte(rng.IntN(26))
		}
		words[i] = w
	}
	out := make([]byte, 0, size)
	for len(out) < size {
		n := min((1+rng.IntN(512))*4096, size-len(out))
		start := len(out)
		switch k := rng.IntN(10); {
		case k < 5: // zeros
			out = out[:start+n]
			clear(out[start:])
		case k < 7: // text with a skewed vocabulary
			for len(out) < start+n {
				out = append(out, words[int(rng.ExpFloat64()*40)%len(words)]...)
				if rng.IntN(12) == 0 {
					out = append(out, '\n')
				} else {
					out = append(out, ' ')
				}
			}
			out = out[:start+n]
		case k < 8: // structured records: counters, flags and a little noise
			var rec [16]byte
			for i := 0; len(out) < start+n; i++ {
				binary.LittleEndian.PutUint64(rec[:], uint64(i)*4096)
				binary.LittleEndian.PutUint32(rec[8:], uint32(i%7))
				binary.LittleEndian.PutUint32(rec[12:], rng.Uint32()&0xff)
				out = append(out, rec[:]...)
			}
			out = out[:start+n]
		default: // incompressible
			out = out[:start+n]
			_, _ = random.Read(out[start:])
		}
	}
	return out
}

// randomBytes returns n incompressible bytes.
func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{byte(seed), 9}).Read(b)
	return b
}

// compress returns data compressed by a Writer with the given frame size and
// encoder concurrency, written in chunks of chunk bytes (0: a single Write).
func compress(tb testing.TB, data []byte, frameSize, workers, chunk int) []byte {
	tb.Helper()
	var buf bytes.Buffer
	w, err := newWriter(&buf, frameSize, workers)
	if err != nil {
		tb.Fatal(err)
	}
	if chunk <= 0 {
		chunk = max(len(data), 1)
	}
	for p := data; len(p) > 0; {
		k := min(chunk, len(p))
		n, err := w.Write(p[:k])
		if err != nil || n != k {
			tb.Fatalf("Write: %d, %v", n, err)
		}
		p = p[k:]
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// open returns a Reader over blob, closed at the end of the test.
func open(tb testing.TB, blob []byte) *Reader {
	tb.Helper()
	r, err := NewReader(bytes.NewReader(blob), int64(len(blob)))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = r.Close() })
	return r
}
