package zlib

import (
	"bytes"
	"compress/flate"
	"errors"
	"io"
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

// fuzzParamsFrom maps a fuzz selector onto every supported parameter
// combination: level 0..9, windowBits 8..15, raw/zlib/gzip wrapper,
// memLevel 1..9, strategy 0..3.
func fuzzParamsFrom(sel uint16) Params {
	v := int(sel)
	p := Params{Level: v % 10}
	v /= 10
	wb := 8 + v%8
	v /= 8
	switch wrap := v % 3; {
	case wb == 8 || wrap == 1:
		p.WindowBits = wb
	case wrap == 0:
		p.WindowBits = -wb
	default:
		p.WindowBits = 16 + wb
	}
	v /= 3
	p.MemLevel = 1 + v%9
	v /= 9
	p.Strategy = v % 4
	return p
}

// Selectors of qemu's parameter sets.
const (
	fuzzQCOW2 = 6 + 10*(4+8*(0+3*8))
	fuzzVMDK  = 6 + 10*(7+8*(1+3*7))
)

// fuzzCompress compresses data with p natively and with the modernc
// reference. Compressors are made per call: there are too many parameter
// combinations to keep one of each (native ones come from the state pool).
func fuzzCompress(t *testing.T, p Params, data []byte) (native, ref []byte, nerr, rerr error) {
	c, err := NewCompressor(p)
	if err != nil {
		t.Fatalf("%v: %v", p, err)
	}
	defer c.Close()
	r, err := newRefCompressor(p)
	if err != nil {
		t.Fatalf("%v: reference: %v", p, err)
	}
	defer r.Close()
	native, nerr = c.Compress(nil, data)
	ref, rerr = r.Compress(nil, data)
	return native, ref, nerr, rerr
}

// FuzzCompress is a differential fuzz test: Compress must produce the same
// bytes as zlib itself (the modernc reference) for every parameter
// combination, and its output must inflate back to the input. Inputs are
// kept small (fast execs, fast minimization); rep > 0 repeats them, with a
// changing byte between copies, into inputs of up to 96 KiB, for window
// slides, long matches and the uint32 hash heads of inputs over 64 KiB.
func FuzzCompress(f *testing.F) {
	if fuzzParamsFrom(fuzzQCOW2) != QCOW2 || fuzzParamsFrom(fuzzVMDK) != VMDK {
		f.Fatal("fuzz selectors for QCOW2/VMDK are stale")
	}
	f.Add([]byte(nil), uint16(fuzzVMDK), uint8(0))
	f.Add([]byte("hello, hello, hello"), uint16(fuzzQCOW2), uint8(0))
	f.Add(diskImage(8<<10, 6), uint16(fuzzQCOW2), uint8(20))
	f.Add(diskImage(8<<10, 7), uint16(fuzzVMDK), uint8(9))
	f.Add(textData(3000, 1), uint16(1234), uint8(0))
	f.Add(mixedData(6000, 2), uint16(4321), uint8(30))
	f.Add(zerosData(9000), uint16(777), uint8(0))
	f.Add(randomData(600, 3), uint16(8000), uint8(200))
	f.Add(repetitiveData(10000, 4), uint16(2906), uint8(3))
	f.Add(elfData(12000, 5), uint16(5555), uint8(7))
	f.Fuzz(checkCompress)
}

// checkCompress is FuzzCompress's check of one input.
func checkCompress(t *testing.T, data []byte, sel uint16, rep uint8) {
	{
		if len(data) > fuzzMaxCompress {
			data = data[:fuzzMaxCompress]
		}
		if rep > 0 && len(data) > 0 {
			n := min(len(data)*(int(rep)+1), fuzzMaxExpanded)
			big := make([]byte, 0, n+len(data)+1)
			for i := 0; len(big) < n; i++ {
				big = append(big, data...)
				big = append(big, byte(i))
			}
			data = big[:n]
		}
		p := fuzzParamsFrom(sel)
		comp, ref, err, rerr := fuzzCompress(t, p, data)
		if errors.Is(err, ErrInternal) {
			// Beyond zlib 1.2.13's deflateBound, where its one-shot deflate
			// fails too (1.2.11's bound differs); TestDifferentialAllParams
			// checks that against the system zlib.
			return
		}
		if err != nil {
			t.Fatalf("%v: compress: %v", p, err)
		}
		switch {
		case errors.Is(rerr, errRefCorrupt):
			// zlib 1.2.11's CVE-2018-25032: its output is wrong, not ours.
		case rerr != nil:
			t.Fatalf("%v: reference compress: %v", p, rerr)
		case !bytes.Equal(comp, ref):
			t.Fatalf("%v: %d-byte input: %d bytes, zlib %d bytes; first difference at %d", p, len(data), len(comp), len(ref), firstDiff(comp, ref))
		}
		ip := p
		if ip.WindowBits == 8 {
			ip.WindowBits = 9
		}
		// Trailing bytes must not be taken for part of the stream.
		packed := append(bytes.Clone(comp), 0xff, 0x00, 0x7a)
		out, n, err := Inflate(nil, packed, ip, len(data))
		if err != nil {
			t.Fatalf("%v: inflate: %v", p, err)
		}
		if n != len(comp) {
			t.Fatalf("%v: consumed %d of a %d-byte stream", p, n, len(comp))
		}
		if !bytes.Equal(out, data) {
			t.Fatalf("%v: round trip changed the data", p)
		}
	}
}

const (
	fuzzMaxCompress = 16 << 10
	fuzzMaxExpanded = 96 << 10 // > 64 KiB: both kinds of hash heads
	fuzzMaxIn       = 128 << 10
	fuzzMaxOut      = 1 << 20
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
