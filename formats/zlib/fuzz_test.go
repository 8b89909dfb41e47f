package zlib

import (
	"bytes"
	"compress/flate"
	"errors"
	"io"
	"sync"
	"testing"
)

var fuzzParams = []Params{
	QCOW2,
	VMDK,
	{6, 31, 8, 0},  // gzip
	{1, -15, 8, 0}, // deflate_fast
	{9, -12, 9, 0},
	{4, 9, 1, 0},
	{6, 15, 8, 2},  // Huffman only
	{6, -15, 8, 3}, // RLE
}

// fuzzCompressors keeps one Compressor per Params for the fuzz worker's
// lifetime (setting one up costs ~0.3 ms).
var fuzzCompressors = struct {
	sync.Mutex
	m map[Params]*Compressor
}{m: map[Params]*Compressor{}}

func fuzzCompressor(t *testing.T, p Params) *Compressor {
	fuzzCompressors.Lock()
	defer fuzzCompressors.Unlock()
	c := fuzzCompressors.m[p]
	if c == nil {
		var err error
		if c, err = NewCompressor(p); err != nil {
			t.Fatal(err)
		}
		fuzzCompressors.m[p] = c
	}
	return c
}

func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte(nil), uint8(0))
	f.Add([]byte("hello, hello, hello"), uint8(1))
	f.Add(textData(3000, 1), uint8(2))
	f.Add(mixedData(6000, 2), uint8(3))
	f.Add(zerosData(9000), uint8(4))
	f.Add(randomData(600, 3), uint8(5))
	f.Fuzz(func(t *testing.T, data []byte, sel uint8) {
		// The mutator can grow inputs to many MiB, which instrumented zlib
		// takes seconds to compress; big inputs find nothing new.
		if len(data) > fuzzMaxIn {
			data = data[:fuzzMaxIn]
		}
		p := fuzzParams[int(sel)%len(fuzzParams)]
		c := fuzzCompressor(t, p)
		fuzzCompressors.Lock() // Compressors are not for concurrent use
		comp, err := c.Compress(nil, data)
		fuzzCompressors.Unlock()
		if err != nil {
			t.Fatalf("%v: compress: %v", p, err)
		}
		// Trailing bytes must not be taken for part of the stream.
		packed := append(bytes.Clone(comp), 0xff, 0x00, 0x7a)
		out, n, err := Inflate(nil, packed, p, len(data))
		if err != nil {
			t.Fatalf("%v: inflate: %v", p, err)
		}
		if n != len(comp) {
			t.Fatalf("%v: consumed %d of a %d-byte stream", p, n, len(comp))
		}
		if !bytes.Equal(out, data) {
			t.Fatalf("%v: round trip changed the data", p)
		}
	})
}

const (
	fuzzMaxIn  = 128 << 10
	fuzzMaxOut = 1 << 20
)

func FuzzInflate(f *testing.F) {
	for i, p := range fuzzParams[:4] {
		c, err := NewCompressor(p)
		if err != nil {
			f.Fatal(err)
		}
		s, _ := c.Compress(nil, mixedData(5000, uint64(i)))
		c.Close()
		f.Add(s, uint8(i))
		f.Add(s[:len(s)/2], uint8(i))
	}
	f.Add([]byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01}, uint8(1))
	f.Add([]byte{0x4b, 0x04, 0x02, 0x00}, uint8(0))
	f.Add([]byte{0x01, 0x05, 0x00, 0xfa, 0xff, 'h', 'e', 'l', 'l', 'o'}, uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, sel uint8) {
		p := fuzzParams[int(sel)%4]
		out, n, err := Inflate(make([]byte, 0, 16), data, p, fuzzMaxOut)
		// Bounded allocation: never more than the limit plus one chunk.
		if len(out) > fuzzMaxOut+inflateChunk || cap(out) > 2*(fuzzMaxOut+inflateChunk) {
			t.Fatalf("output grew to len %d cap %d", len(out), cap(out))
		}
		if err != nil {
			if !errors.Is(err, ErrData) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("unexpected error class: %v", err)
			}
			return
		}
		if n <= 0 || n > len(data) || len(out) > fuzzMaxOut {
			t.Fatalf("n=%d len(data)=%d len(out)=%d", n, len(data), len(out))
		}
		// The stream must decode the same from exactly its own bytes.
		out2, n2, err := Inflate(nil, data[:n], p, fuzzMaxOut)
		if err != nil || n2 != n || !bytes.Equal(out, out2) {
			t.Fatalf("re-inflating data[:%d]: n=%d err=%v", n, n2, err)
		}
		// Cross-check raw streams with Go's decoder where both accept.
		if p.WindowBits < 0 {
			fr := flate.NewReader(bytes.NewReader(data[:n]))
			got, gerr := io.ReadAll(io.LimitReader(fr, fuzzMaxOut+1))
			if gerr == nil && !bytes.Equal(got, out) {
				t.Fatalf("compress/flate decodes the same stream to different bytes")
			}
		}
	})
}
