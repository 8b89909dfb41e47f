package delta

import (
	"bytes"
	"io"
	"math/rand"
	"sync"
	"testing"
)

// benchImageSize is the size of the synthetic disk image the benchmarks use.
const benchImageSize = 128 << 20

// benchData is built once per test binary: the images take seconds.
type benchData struct {
	image  []byte // the source: zeros, text, random and table-like data
	edited []byte // image with 200 small in-place edits and 20 shifts
	random []byte // 64 MiB unrelated to image: all literal
}

var benchOnce = sync.OnceValue(func() *benchData {
	img := diskImage(100, benchImageSize)
	edited := append([]byte(nil), img...)
	rng := rand.New(rand.NewSource(101))
	for range 200 {
		o := rng.Intn(len(edited) - 16)
		rng.Read(edited[o : o+1+rng.Intn(16)])
	}
	for i := range 20 {
		o := rng.Intn(len(edited) - 100)
		if i%2 == 0 {
			edited = cat(edited[:o], randBytes(int64(i), 1+rng.Intn(50)), edited[o:])
		} else {
			edited = append(edited[:o], edited[o+1+rng.Intn(50):]...)
		}
	}
	return &benchData{image: img, edited: edited, random: randBytes(102, 64<<20)}
})

func BenchmarkNewIndex(b *testing.B) {
	d := benchOnce()
	b.SetBytes(int64(len(d.image)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewIndex(sources(d.image), 0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncode reports target bytes per second.
func BenchmarkEncode(b *testing.B) {
	d := benchOnce()
	ix, err := NewIndex(sources(d.image), 0)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		target []byte
	}{
		{"edited", d.edited},   // mostly copies and zeros
		{"literal", d.random},  // the rolling scan finds nothing
		{"identical", d.image}, // one long copy
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.target)))
			b.ReportAllocs()
			var st Stats
			for b.Loop() {
				st, err = ix.Encode(io.Discard, bytes.NewReader(c.target))
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(st.Encoded), "delta-bytes")
		})
	}
}

// BenchmarkDecode reports target bytes per second through WriteTo.
func BenchmarkDecode(b *testing.B) {
	d := benchOnce()
	ix, err := NewIndex(sources(d.image), 0)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		target []byte
	}{
		{"edited", d.edited},
		{"literal", d.random},
	} {
		var delta bytes.Buffer
		if _, err := ix.Encode(&delta, bytes.NewReader(c.target)); err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.target)))
			b.ReportAllocs()
			for b.Loop() {
				r, err := NewReader(bytes.NewReader(delta.Bytes()), sources(d.image))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := r.WriteTo(io.Discard); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
