package zlib

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	stdzlib "compress/zlib"
	"errors"
	"io"
	"sync"
	"testing"
)

var wrappers = []struct {
	name string
	p    Params
}{
	{"raw-12", QCOW2},
	{"zlib-15", VMDK},
	{"gzip", Params{6, 31, 8, 0}},
	{"raw-15", Params{6, -15, 8, 0}},
}

func mustCompress(t testing.TB, p Params, src []byte) []byte {
	t.Helper()
	c, err := NewCompressor(p)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	out, err := c.Compress(nil, src)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Streams packed back to back (as in qcow2 clusters or any container that
// does not record compressed lengths) are separated by the consumed count.
func TestInflateConsumedPacked(t *testing.T) {
	inputs := [][]byte{
		nil,
		[]byte("a"),
		textData(5000, 1),
		zerosData(70000),
		randomData(3000, 2), // stored blocks
		mixedData(200<<10, 3),
		diskImage(64<<10, 4),
	}
	for _, w := range wrappers {
		t.Run(w.name, func(t *testing.T) {
			var packed []byte
			var lens []int
			for _, in := range inputs {
				s := mustCompress(t, w.p, in)
				packed = append(packed, s...)
				lens = append(lens, len(s))
			}
			packed = append(packed, "trailing junk that is not part of any stream"...)
			rest := packed
			var out []byte
			for i, in := range inputs {
				var n int
				var err error
				out, n, err = Inflate(out, rest, w.p, 1<<20)
				if err != nil {
					t.Fatalf("stream %d: %v", i, err)
				}
				if n != lens[i] {
					t.Fatalf("stream %d: consumed %d, stream is %d bytes", i, n, lens[i])
				}
				if !bytes.Equal(out, in) {
					t.Fatalf("stream %d: output differs", i)
				}
				rest = rest[n:]
			}
			if string(rest) != "trailing junk that is not part of any stream" {
				t.Fatalf("left over %q", rest)
			}
			// Exactly the stream, no trailing bytes: consumed == len.
			s := mustCompress(t, w.p, inputs[5])
			if _, n, err := Inflate(nil, s, w.p, 1<<20); err != nil || n != len(s) {
				t.Fatalf("exact stream: n=%d len=%d err=%v", n, len(s), err)
			}
		})
	}
}

func TestInflateTruncated(t *testing.T) {
	for _, w := range wrappers {
		s := mustCompress(t, w.p, mixedData(20000, 9))
		for n := 0; n < len(s); n += 1 + n/16 {
			_, _, err := Inflate(nil, s[:n], w.p, 1<<20)
			if !errors.Is(err, ErrData) {
				t.Fatalf("%s: prefix %d/%d: err = %v, want ErrData", w.name, n, len(s), err)
			}
			if n > 0 && !errors.Is(err, io.ErrUnexpectedEOF) {
				// A prefix can also be invalid in itself, but truncation
				// of a valid stream is reported as such.
				t.Fatalf("%s: prefix %d/%d: err = %v, want io.ErrUnexpectedEOF", w.name, n, len(s), err)
			}
		}
	}
}

func TestInflateCorrupt(t *testing.T) {
	data := mixedData(50000, 11)
	for _, w := range wrappers {
		s := mustCompress(t, w.p, data)
		fails := 0
		// Flip single bits everywhere: every result must be an error or,
		// rarely for raw deflate (no check value), some other output; never
		// a panic, and wrapped streams must always fail (adler32/crc32).
		for i := 0; i < len(s); i += 1 + len(s)/300 {
			c := bytes.Clone(s)
			c[i] ^= 1 << (i % 8)
			out, _, err := Inflate(nil, c, w.p, len(data)*2)
			if err != nil {
				fails++
				if !errors.Is(err, ErrData) && !errors.Is(err, ErrTooLarge) {
					t.Errorf("%s: flip at %d: unexpected error class: %v", w.name, i, err)
				}
			} else if w.p.WindowBits > 0 && !bytes.Equal(out, data) {
				t.Errorf("%s: flip at %d: wrapped stream decoded to different data without error", w.name, i)
			}
		}
		if fails == 0 {
			t.Errorf("%s: no corruption detected", w.name)
		}
	}
	for _, bad := range []struct {
		name string
		p    Params
		in   []byte
	}{
		{"zlib bad header check", VMDK, []byte{0x78, 0x9d, 0x03, 0x00}},
		{"zlib bad method", VMDK, []byte{0x79, 0x9c, 0x03, 0x00}},
		{"zlib preset dictionary", VMDK, []byte{0x78, 0xbb, 0, 0, 0, 1, 0x03, 0x00}},
		{"gzip bad magic", Params{WindowBits: 31}, []byte{0x1f, 0x8c, 8, 0, 0, 0, 0, 0, 0, 3, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"raw reserved block type", QCOW2, []byte{0x07, 0, 0}},
		{"raw stored length mismatch", QCOW2, []byte{0x01, 0x05, 0x00, 0x00, 0x00}},
	} {
		if _, _, err := Inflate(nil, bad.in, bad.p, 1000); !errors.Is(err, ErrData) {
			t.Errorf("%s: err = %v, want ErrData", bad.name, err)
		}
	}
}

// qemu inflates clusters with a one-shot inflateInit2(-12)+inflate(Z_FINISH).
// zlib (without INFLATE_STRICT) does not hold raw streams to the 4 KiB
// window then: any distance within the output so far is accepted. Inflate
// must give the same verdict however its internal 64 KiB chunks fall.
func TestInflateWindowLimit(t *testing.T) {
	chunk := randomData(20000, 5)
	var data []byte
	for len(data) < 200000 {
		data = append(data, chunk...) // repeats at distance 20000, across chunk boundaries
	}
	s := mustCompress(t, Params{6, -15, 8, 0}, data)
	for _, wb := range []int{-15, -12, -8} {
		out, n, err := Inflate(nil, s, Params{WindowBits: wb}, len(data))
		if err != nil || n != len(s) || !bytes.Equal(out, data) {
			t.Fatalf("windowBits %d: n=%d err=%v", wb, n, err)
		}
	}
	// A distance before the start of the output is invalid everywhere:
	// fixed-Huffman block, literal 'a', then length 3 at distance 1 (fine:
	// "aaaa") or 2 (one byte before the output starts).
	stream := func(distCode uint32) []byte {
		var bw handBits
		bw.bits(1, 1)        // BFINAL
		bw.bits(1, 2)        // BTYPE 01: fixed Huffman
		bw.code(0x30+'a', 8) // literal 'a'
		bw.code(257-256, 7)  // length 3
		bw.code(distCode, 5) // distance 1 (code 0) or 2 (code 1)
		bw.code(256-256, 7)  // end of block
		return bw.flush()
	}
	if out, n, err := Inflate(nil, stream(0), QCOW2, 100); err != nil || string(out) != "aaaa" || n != 4 { // 30 bits
		t.Fatalf("hand-made stream: %q n=%d err=%v", out, n, err)
	}
	if _, _, err := Inflate(nil, stream(1), QCOW2, 100); !errors.Is(err, ErrData) {
		t.Fatalf("distance too far back: err = %v", err)
	}
	// The zlib wrapper checks the announced window against WindowBits.
	z9 := mustCompress(t, Params{6, 9, 8, 0}, data[:5000])
	if _, _, err := Inflate(nil, z9, Params{WindowBits: 9}, 5000); err != nil {
		t.Fatalf("zlib window 9 read with 9: %v", err)
	}
	if _, _, err := Inflate(nil, mustCompress(t, VMDK, data[:5000]), Params{WindowBits: 9}, 5000); !errors.Is(err, ErrData) {
		t.Fatalf("zlib window 15 read with 9: err = %v, want invalid window size", err)
	}
	z15, gz := mustCompress(t, VMDK, data[:5000]), mustCompress(t, Params{6, 31, 8, 0}, data[:5000])
	for _, tc := range []struct {
		in []byte
		wb int
		ok bool
	}{
		{z15, 0, true}, {z15, 47, true}, {gz, 47, true}, {z9, 41, true}, {gz, 41, true},
		{z15, 41, false}, {z15, 31, false}, {gz, 15, false},
	} {
		out, _, err := Inflate(nil, tc.in, Params{WindowBits: tc.wb}, 5000)
		if tc.ok && (err != nil || !bytes.Equal(out, data[:5000])) || !tc.ok && !errors.Is(err, ErrData) {
			t.Errorf("windowBits %d on % x...: err = %v, want ok=%v", tc.wb, tc.in[:2], err, tc.ok)
		}
	}
}

func TestInflateMaxOut(t *testing.T) {
	for _, w := range wrappers {
		for _, n := range []int{0, 1, 100, 65536, 65537, 300000} {
			data := textData(n, uint64(n))
			s := mustCompress(t, w.p, data)
			if out, _, err := Inflate(nil, s, w.p, n); err != nil || !bytes.Equal(out, data) {
				t.Fatalf("%s n=%d maxOut=n: %v", w.name, n, err)
			}
			if n > 0 {
				if _, _, err := Inflate(nil, s, w.p, n-1); !errors.Is(err, ErrTooLarge) {
					t.Fatalf("%s n=%d maxOut=n-1: err = %v, want ErrTooLarge", w.name, n, err)
				}
			}
		}
	}
	// A bomb: 64 MiB of zeros is ~64 KiB compressed; a 1 MiB limit stops
	// it without producing (much) more than the limit.
	c, _ := NewCompressor(VMDK)
	defer c.Close()
	bomb, err := c.Compress(nil, make([]byte, 64<<20))
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := Inflate(nil, bomb, VMDK, 1<<20)
	if !errors.Is(err, ErrTooLarge) || len(out) > 1<<20+inflateChunk {
		t.Fatalf("bomb: err=%v len(out)=%d", err, len(out))
	}
	if _, _, err := Inflate(nil, bomb, VMDK, -1); !errors.Is(err, ErrParams) {
		t.Fatalf("negative maxOut: %v", err)
	}
}

func TestInflateBadParams(t *testing.T) {
	for _, wb := range []int{-16, -7, 1, 7, 23, 48} {
		if _, _, err := Inflate(nil, []byte{3, 0}, Params{WindowBits: wb}, 10); !errors.Is(err, ErrParams) {
			t.Errorf("windowBits %d: err = %v, want ErrParams", wb, err)
		}
	}
	// The pool must still hand out working inflaters afterwards.
	s := mustCompress(t, QCOW2, []byte("hello"))
	if out, _, err := Inflate(nil, s, QCOW2, 10); err != nil || string(out) != "hello" {
		t.Fatalf("after bad params: %q %v", out, err)
	}
}

// Compress output is ordinary deflate/zlib/gzip: Go's decoders read it.
func TestCompressStdlibDecodes(t *testing.T) {
	data := diskImage(300<<10, 21)
	for _, w := range wrappers {
		s := mustCompress(t, w.p, data)
		var r io.Reader
		var err error
		switch {
		case w.p.WindowBits < 0:
			r = flate.NewReader(bytes.NewReader(s))
		case w.p.WindowBits > 16:
			r, err = gzip.NewReader(bytes.NewReader(s))
		default:
			r, err = stdzlib.NewReader(bytes.NewReader(s))
		}
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: stdlib decode: %v", w.name, err)
		}
	}
	if s := mustCompress(t, VMDK, []byte("x")); s[0] != 0x78 || s[1] != 0x9c {
		t.Fatalf("VMDK header % x, want 78 9c", s[:2])
	}
}

func TestCompressorLifecycle(t *testing.T) {
	if _, err := NewCompressor(Params{Level: 10, WindowBits: 15, MemLevel: 8}); !errors.Is(err, ErrParams) {
		t.Errorf("level 10: %v", err)
	}
	if _, err := NewCompressor(Params{Level: 6, WindowBits: 7, MemLevel: 8}); !errors.Is(err, ErrParams) {
		t.Errorf("windowBits 7: %v", err)
	}
	if _, err := NewCompressor(Params{Level: 6, WindowBits: 15, MemLevel: 10}); !errors.Is(err, ErrParams) {
		t.Errorf("memLevel 10: %v", err)
	}
	if _, err := NewCompressor(Params{Level: 6, WindowBits: 15, MemLevel: 8, Strategy: 4}); !errors.Is(err, ErrParams) {
		t.Errorf("Z_FIXED: %v", err)
	}
	c, err := NewCompressor(QCOW2)
	if err != nil {
		t.Fatal(err)
	}
	if c.Params() != QCOW2 {
		t.Errorf("Params() = %v", c.Params())
	}
	// dst's contents are replaced, its capacity reused.
	dst := make([]byte, 3, 1<<16)
	copy(dst, "xyz")
	out, err := c.Compress(dst, []byte("hello hello hello"))
	if err != nil {
		t.Fatal(err)
	}
	if &out[0] != &dst[:1][0] {
		t.Errorf("dst capacity not reused")
	}
	if got, _, err := Inflate(nil, out, QCOW2, 100); err != nil || string(got) != "hello hello hello" {
		t.Errorf("round trip: %q %v", got, err)
	}
	// Growing buffers, then shrinking again, with the same state.
	for _, n := range []int{0, 3 << 20, 10, 70000} {
		d := mixedData(n, uint64(n))
		s, err := c.Compress(nil, d)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(s, mustCompress(t, QCOW2, d)) {
			t.Fatalf("n=%d: reused state gives different bytes than a fresh one", n)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := c.Compress(nil, []byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

// Compressors in separate goroutines give the same bytes as one used
// sequentially (no shared mutable state in the transpiled zlib / libc).
func TestCompressConcurrent(t *testing.T) {
	inputs := make([][]byte, 24)
	want := make([][]byte, len(inputs))
	for i := range inputs {
		inputs[i] = diskImage(64<<10, uint64(500+i))
		want[i] = mustCompress(t, QCOW2, inputs[i])
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := NewCompressor(QCOW2)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			var out []byte
			for k := 0; k < 3; k++ {
				for i := range inputs {
					j := (i + g*5) % len(inputs)
					if out, err = c.Compress(out, inputs[j]); err != nil {
						t.Error(err)
						return
					}
					if !bytes.Equal(out, want[j]) {
						t.Errorf("goroutine %d input %d: bytes differ", g, j)
					}
					if got, _, err := Inflate(nil, out, QCOW2, 64<<10); err != nil || !bytes.Equal(got, inputs[j]) {
						t.Errorf("goroutine %d input %d: inflate: %v", g, j, err)
					}
				}
			}
		}()
	}
	wg.Wait()
}

// handBits assembles deflate bit streams by hand.
type handBits struct {
	out   []byte
	acc   uint32
	nbits uint
}

// bits writes the n low bits of v, least significant first.
func (w *handBits) bits(v uint32, n uint) {
	w.acc |= v << w.nbits
	w.nbits += n
	for w.nbits >= 8 {
		w.out = append(w.out, byte(w.acc))
		w.acc >>= 8
		w.nbits -= 8
	}
}

// code writes an n-bit Huffman code, most significant bit first.
func (w *handBits) code(c uint32, n uint) {
	for i := int(n) - 1; i >= 0; i-- {
		w.bits(c>>uint(i)&1, 1)
	}
}

func (w *handBits) flush() []byte {
	if w.nbits > 0 {
		w.out = append(w.out, byte(w.acc))
		w.acc, w.nbits = 0, 0
	}
	return w.out
}

// verify backs the reference compressor's self-check for parameter sets
// where zlib 1.2.11's CVE-2018-25032 is reachable; it must catch every kind
// of discrepancy.
func TestVerify(t *testing.T) {
	data := mixedData(100000, 31)
	p := Params{6, -15, 2, 0}
	s := mustCompress(t, p, data)
	if err := verify(s, data, p.WindowBits); err != nil {
		t.Fatalf("good stream: %v", err)
	}
	other := bytes.Clone(data)
	other[77777] ^= 1
	for name, tc := range map[string]struct{ comp, src []byte }{
		"different data":  {s, other},
		"input too short": {s, data[:len(data)-1]},
		"input too long":  {s, append(bytes.Clone(data), 0)},
		"trailing bytes":  {append(bytes.Clone(s), 0), data},
		"truncated":       {s[:len(s)-1], data},
	} {
		if err := verify(tc.comp, tc.src, p.WindowBits); !errors.Is(err, ErrInternal) {
			t.Errorf("%s: err = %v, want ErrInternal", name, err)
		}
	}
}
