package delta

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/rehydrator/rehydrator/internal/zeros"
	"io"
	"math"
	"math/rand"
	"strings"
	"sync"
	"testing"
	"testing/iotest"

	"github.com/klauspost/compress/zstd"
)

// ---- test data generators, shared with the benchmarks ----

var words = func() []string {
	rng := rand.New(rand.NewSource(42))
	ws := make([]string, 600)
	for i := range ws {
		b := make([]byte, 2+rng.Intn(9))
		for j := range b {
			b[j] = byte('a' + rng.Intn(26))
		}
		ws[i] = string(b)
	}
	return ws
}()

// fillText fills b with compressible text-like bytes.
func fillText(rng *rand.Rand, b []byte) {
	i := 0
	for i < len(b) {
		i += copy(b[i:], words[rng.Intn(len(words))])
		if i < len(b) {
			b[i] = ' '
			if rng.Intn(12) == 0 {
				b[i] = '\n'
			}
			i++
		}
	}
}

// fillRecords fills b with table-like records: constant 128-byte structures
// with a counter and a few varying bytes, like an inode table.
func fillRecords(rng *rand.Rand, b []byte, seq *uint64) {
	var rec [128]byte
	for i := range rec {
		rec[i] = byte(i * 7)
	}
	for i := 0; i+128 <= len(b); i += 128 {
		*seq++
		binary.LittleEndian.PutUint64(rec[8:], *seq)
		binary.LittleEndian.PutUint32(rec[40:], rng.Uint32())
		copy(b[i:], rec[:])
	}
}

// diskImage returns a size-byte disk-like image: 4 KiB-aligned regions of
// zeros, text, random bytes and table-like records.
func diskImage(seed int64, size int) []byte {
	rng := rand.New(rand.NewSource(seed))
	b := make([]byte, size)
	var seq uint64
	for off := 0; off < size; {
		n := min((1+rng.Intn(256))*4096, size-off)
		r := b[off : off+n]
		switch k := rng.Intn(10); {
		case k < 4: // zeros
		case k < 7:
			fillText(rng, r)
		case k < 9:
			rng.Read(r)
		default:
			fillRecords(rng, r, &seq)
		}
		off += n
	}
	return b
}

// sparseImage returns a size-byte image that is zero but for data regions
// of 64 KiB to 1 MiB every 8 MiB or so.
func sparseImage(seed int64, size int) []byte {
	rng := rand.New(rand.NewSource(seed))
	b := make([]byte, size)
	for off := 0; off < size; off += 8 << 20 {
		n := min((1+rng.Intn(16))*64<<10, size-off)
		if rng.Intn(2) == 0 {
			rng.Read(b[off : off+n])
		} else {
			fillText(rng, b[off:off+n])
		}
	}
	return b
}

// randBytes returns n random bytes.
func randBytes(seed int64, n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

// cpioFiles lays files out the way a filesystem image does (each at a 4 KiB
// boundary, zeros between) and the way a newc cpio archive does (a 110-byte
// header and the name, then the data at a 4-byte boundary). data is the
// total file size.
func cpioFiles(seed int64, nfiles int) (image, archive []byte, data int) {
	rng := rand.New(rand.NewSource(seed))
	var img, arc bytes.Buffer
	for i := range nfiles {
		// Sizes log-uniform between 64 B and 512 KiB.
		size := 64 << uint(rng.Intn(13))
		size += rng.Intn(size)
		f := make([]byte, size)
		if rng.Intn(3) == 0 {
			rng.Read(f)
		} else {
			fillText(rng, f)
		}
		data += size
		img.Write(f)
		img.Write(make([]byte, (4096-size%4096)%4096))
		name := fmt.Sprintf("usr/lib/file%05d.dat", i)
		fmt.Fprintf(&arc, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
			i, 0o100644, 0, 0, 1, 0, size, 0, 0, 0, 0, len(name)+1, 0)
		arc.WriteString(name)
		arc.WriteByte(0)
		arc.Write(make([]byte, (4-arc.Len()%4)%4))
		arc.Write(f)
		arc.Write(make([]byte, (4-arc.Len()%4)%4))
	}
	return img.Bytes(), arc.Bytes(), data
}

// cat concatenates byte slices.
func cat(bs ...[]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

// ---- encode/decode helpers ----

// sources wraps byte slices as Sources.
func sources(bs ...[]byte) []Source {
	s := make([]Source, len(bs))
	for i, b := range bs {
		s[i] = io.NewSectionReader(bytes.NewReader(b), 0, int64(len(b)))
	}
	return s
}

// sizeless hides every method of a reader but Read, so Encode cannot learn
// the target size up front.
type sizeless struct{ r io.Reader }

func (s sizeless) Read(p []byte) (int, error) { return s.r.Read(p) }

// encode builds an index and encodes target, failing the test on error.
func encode(tb testing.TB, srcs [][]byte, target []byte, bs int) ([]byte, Stats) {
	tb.Helper()
	ix, err := NewIndex(sources(srcs...), bs)
	if err != nil {
		tb.Fatal(err)
	}
	var d bytes.Buffer
	st, err := ix.Encode(&d, bytes.NewReader(target))
	if err != nil {
		tb.Fatal(err)
	}
	if st.Encoded != int64(d.Len()) {
		tb.Fatalf("Stats.Encoded %d, wrote %d", st.Encoded, d.Len())
	}
	if st.TargetSize != int64(len(target)) {
		tb.Fatalf("Stats.TargetSize %d, target %d", st.TargetSize, len(target))
	}
	if sum := st.Zero + st.Copied + st.Literal; sum != st.TargetSize {
		tb.Fatalf("Stats %+v: zero+copied+literal = %d", st, sum)
	}
	return d.Bytes(), st
}

// decode regenerates a target with WriteTo.
func decode(srcs [][]byte, delta []byte) ([]byte, error) {
	r, err := NewReader(bytes.NewReader(delta), sources(srcs...))
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	n, err := r.WriteTo(&out)
	if n != int64(out.Len()) {
		return nil, fmt.Errorf("WriteTo returned %d, wrote %d", n, out.Len())
	}
	return out.Bytes(), err
}

// decodeRead regenerates a target with Read calls of awkward sizes.
func decodeRead(srcs [][]byte, delta []byte) ([]byte, error) {
	r, err := NewReader(iotest.HalfReader(bytes.NewReader(delta)), sources(srcs...))
	if err != nil {
		return nil, err
	}
	var out []byte
	buf := make([]byte, 7777)
	for i := 0; ; i++ {
		n, err := r.Read(buf[:1+i*31%len(buf)])
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// roundTrip encodes target against srcs, checks that both decoders give it
// back exactly, that the size-unknown (spooled) path writes the same bytes,
// and returns the delta and its stats.
func roundTrip(t *testing.T, srcs [][]byte, target []byte, bs int) ([]byte, Stats) {
	t.Helper()
	d, st := encode(t, srcs, target, bs)
	r, err := NewReader(bytes.NewReader(d), sources(srcs...))
	if err != nil {
		t.Fatal(err)
	}
	if r.Size() != int64(len(target)) {
		t.Fatalf("Size %d, want %d", r.Size(), len(target))
	}
	got, err := decode(srcs, d)
	if err != nil {
		t.Fatalf("WriteTo: %v", err)
	}
	if !bytes.Equal(got, target) {
		t.Fatalf("WriteTo: target differs (got %d bytes, want %d)", len(got), len(target))
	}
	checkReaderAt(t, srcs, d, target)
	if len(target) <= 16<<20 {
		got, err = decodeRead(srcs, d)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		if !bytes.Equal(got, target) {
			t.Fatalf("Read: target differs (got %d bytes, want %d)", len(got), len(target))
		}
		ix, err := NewIndex(sources(srcs...), bs)
		if err != nil {
			t.Fatal(err)
		}
		var d2 bytes.Buffer
		st2, err := ix.Encode(&d2, sizeless{iotest.HalfReader(bytes.NewReader(target))})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(d2.Bytes(), d) || st2 != st {
			t.Fatalf("spooled encode differs: %d bytes %+v, direct %d bytes %+v", d2.Len(), st2, len(d), st)
		}
	}
	return d, st
}

// ---- round trips ----

func TestRoundTrip(t *testing.T) {
	disk := diskImage(1, 8<<20)
	rnd := randBytes(2, 1<<20)
	rnd2 := randBytes(3, 1<<20)
	text := make([]byte, 1<<20)
	fillText(rand.New(rand.NewSource(4)), text)
	patterns := cat(bytes.Repeat([]byte{0xff}, 100000), bytes.Repeat([]byte("AB"), 50000),
		bytes.Repeat([]byte("0123456789abcdef"), 10000), rnd[:5000])

	type tc struct {
		name   string
		srcs   [][]byte
		target []byte
		// check, if set, applies to block sizes up to 512 bytes: the
		// copies in these targets are too short for larger blocks.
		check func(t *testing.T, st Stats)
	}
	exact := func(field string, get func(Stats) int64, want int64) func(*testing.T, Stats) {
		return func(t *testing.T, st Stats) {
			if got := get(st); got != want {
				t.Errorf("%s = %d, want %d (%+v)", field, got, want, st)
			}
		}
	}
	copied := func(st Stats) int64 { return st.Copied }
	literal := func(st Stats) int64 { return st.Literal }
	cases := []tc{
		{name: "empty/no sources"},
		{name: "empty/one source", srcs: [][]byte{rnd}},
		{name: "empty/empty source", srcs: [][]byte{nil}, target: []byte("x")},
		{name: "tiny", srcs: [][]byte{rnd}, target: []byte("hello")},
		{name: "tiny from source", srcs: [][]byte{rnd}, target: rnd[100:150]},
		{name: "no sources/random", target: rnd, check: exact("Literal", literal, int64(len(rnd)))},
		{name: "no sources/zeros", target: make([]byte, 3<<20), check: func(t *testing.T, st Stats) {
			if st.Zero != 3<<20 || st.Ops != 1 {
				t.Errorf("%+v, want a single zero op", st)
			}
		}},
		{name: "identical disk", srcs: [][]byte{disk}, target: disk, check: exact("Literal", literal, 0)},
		{name: "unaligned source size", srcs: [][]byte{rnd[:10007]}, target: rnd[:10007], check: exact("Copied", copied, 10007)},
		{name: "copy of source tail", srcs: [][]byte{rnd[:10007]}, target: cat([]byte("new"), rnd[5000:10007]), check: exact("Literal", literal, 3)},
		{name: "literal only", srcs: [][]byte{rnd}, target: rnd2, check: exact("Literal", literal, int64(len(rnd2)))},
		{name: "text shifted", srcs: [][]byte{text}, target: cat(text[777:], text[:777])},
		{name: "patterns", srcs: [][]byte{patterns}, target: cat(patterns[33:], []byte("xyz"), patterns[:1000])},
		{name: "two sources", srcs: [][]byte{rnd, rnd2}, target: cat(rnd2[3:70001], rnd[12345:99999], []byte("new bytes"), rnd2[500001:600000], rnd[1:4097]),
			check: exact("Literal", literal, 9)},
		{name: "three sources and zeros", srcs: [][]byte{disk, rnd, text},
			target: cat(text[5:200000], make([]byte, 100000), disk[1<<20:3<<20], rnd[1:], make([]byte, 1))},
		{name: "source repeated", srcs: [][]byte{rnd[:100000]}, target: cat(rnd[:100000], rnd[:100000], rnd[50000:100000])},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, bs := range []int{0, MinBlockSize, 64, 4096} {
				_, st := roundTrip(t, c.srcs, c.target, bs)
				eff := bs
				if eff == 0 {
					eff = DefaultBlockSize
				}
				if c.check != nil && eff <= 512 {
					c.check(t, st)
				}
			}
		})
	}
}

// TestRoundTripRandom round-trips random mutations of random images.
func TestRoundTripRandom(t *testing.T) {
	rng := rand.New(rand.NewSource(99))
	for i := range 40 {
		src := diskImage(int64(i), 1<<20+rng.Intn(1<<20))
		tgt := mutate(rng, src, 1+rng.Intn(30))
		bs := []int{0, 16, 100, 512, 1000, 4096}[rng.Intn(6)]
		roundTrip(t, [][]byte{src}, tgt, bs)
	}
}

// mutate applies n random edits (overwrites, inserts, deletes, moves) to a
// copy of b.
func mutate(rng *rand.Rand, b []byte, n int) []byte {
	out := append([]byte(nil), b...)
	for range n {
		if len(out) < 2 {
			break
		}
		o := rng.Intn(len(out))
		l := min(1+rng.Intn(1<<uint(rng.Intn(16))), len(out)-o)
		switch rng.Intn(4) {
		case 0:
			rng.Read(out[o : o+l])
		case 1:
			ins := make([]byte, l)
			rng.Read(ins)
			out = cat(out[:o], ins, out[o:])
		case 2:
			out = append(out[:o], out[o+l:]...)
		case 3:
			m := rng.Intn(len(out) - l + 1)
			out = cat(out[:o], out[m:m+l], out[o:])
		}
	}
	return out
}

// ---- cost bounds: the engine finds what it should ----

func TestCostSmallEditsInLargeImage(t *testing.T) {
	img := sparseImage(5, 64<<20)
	tgt := append([]byte(nil), img...)
	// Three 10-byte edits, in data regions (offsets 0 and 8 MiB hold
	// data) and in a zero region.
	for _, o := range []int{1000, 8<<20 + 5000, 40<<20 + 3} {
		for i := range 10 {
			tgt[o+i] ^= byte(0x5a + i)
		}
	}
	_, st := roundTrip(t, [][]byte{img}, tgt, 0)
	t.Logf("64 MiB image, 3 edits of 10 bytes: %+v", st)
	if st.Encoded >= 4096 {
		t.Errorf("delta is %d bytes, want < 4 KiB", st.Encoded)
	}
	if st.Literal > 30+2*resyncMin {
		t.Errorf("literal %d bytes for 30 edited bytes", st.Literal)
	}
}

func TestCostScatteredEdits(t *testing.T) {
	img := diskImage(6, 32<<20)
	tgt := append([]byte(nil), img...)
	rng := rand.New(rand.NewSource(7))
	edited := 0
	for range 100 {
		o := rng.Intn(len(tgt) - 16)
		n := 1 + rng.Intn(16)
		for i := range n {
			tgt[o+i] ^= byte(1 + rng.Intn(255))
		}
		edited += n
	}
	_, st := roundTrip(t, [][]byte{img}, tgt, 0)
	t.Logf("32 MiB disk image, 100 edits (%d bytes): %+v", edited, st)
	if st.Literal > int64(edited)+100*resyncMin {
		t.Errorf("literal %d bytes for %d edited bytes", st.Literal, edited)
	}
	if st.Encoded > 100*48 {
		t.Errorf("delta is %d bytes, want <= %d", st.Encoded, 100*48)
	}
}

func TestCostShifted(t *testing.T) {
	img := diskImage(8, 16<<20)
	cases := []struct {
		name   string
		target []byte
		maxLit int64
	}{
		{"insert 1 byte at start", cat([]byte{7}, img), 1},
		{"delete 1 byte at start", img[1:], 0},
		{"insert 3 bytes in the middle", cat(img[:5<<20+1], []byte{1, 2, 3}, img[5<<20+1:]), 3},
		{"delete 5 bytes in the middle", cat(img[:7<<20+11], img[7<<20+16:]), 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, st := roundTrip(t, [][]byte{img}, c.target, 0)
			t.Logf("%+v", st)
			if st.Literal > c.maxLit {
				t.Errorf("literal %d bytes, want <= %d", st.Literal, c.maxLit)
			}
			if st.Encoded > 1024 {
				t.Errorf("delta is %d bytes, want <= 1 KiB", st.Encoded)
			}
		})
	}
	t.Run("many inserts and deletes", func(t *testing.T) {
		rng := rand.New(rand.NewSource(9))
		var tgt []byte
		inserted := 0
		for o := 0; o < len(img); {
			n := min(len(img)-o, 16<<10+rng.Intn(256<<10))
			tgt = append(tgt, img[o:o+n]...)
			if rng.Intn(2) == 0 {
				k := 1 + rng.Intn(40)
				tgt = append(tgt, randBytes(int64(o), k)...)
				inserted += k
				o += n
			} else {
				o += n + 1 + rng.Intn(40)
			}
		}
		_, st := roundTrip(t, [][]byte{img}, tgt, 0)
		t.Logf("%d bytes inserted: %+v", inserted, st)
		if st.Literal > int64(inserted)+int64(st.Ops)*resyncMin {
			t.Errorf("literal %d bytes for %d inserted", st.Literal, inserted)
		}
	})
}

func TestCostCpio(t *testing.T) {
	img, arc, data := cpioFiles(10, 400)
	_, st := roundTrip(t, [][]byte{img}, arc, 0)
	t.Logf("cpio of %d file bytes (archive %d) against a filesystem-like image: %+v", data, len(arc), st)
	if st.Copied < int64(data)*97/100 {
		t.Errorf("copied %d of %d file bytes", st.Copied, data)
	}
	if st.Encoded > int64(len(arc))/100 {
		t.Errorf("delta is %d bytes, want <= 1%% of %d", st.Encoded, len(arc))
	}

	// Source data at each offset mod 4 (and mod 512) of the target.
	src := diskImage(11, 4<<20)
	for _, shift := range []int{1, 2, 3, 5, 511} {
		tgt := cat(randBytes(12, shift), src[100003:3<<20], randBytes(13, shift))
		_, st := roundTrip(t, [][]byte{src}, tgt, 0)
		if st.Literal > int64(2*shift) || st.Encoded > 256+int64(2*shift) {
			t.Errorf("shift %d: %+v, want literal <= %d, delta <= %d bytes", shift, st, 2*shift, 256+2*shift)
		}
	}
}

func TestCostMultipleSources(t *testing.T) {
	a, b := diskImage(14, 4<<20), diskImage(15, 4<<20)
	var tgt []byte
	rng := rand.New(rand.NewSource(16))
	for range 50 {
		s := [][]byte{a, b}[rng.Intn(2)]
		o := rng.Intn(len(s) - 80000)
		tgt = append(tgt, s[o:o+10000+rng.Intn(70000)]...)
	}
	_, st := roundTrip(t, [][]byte{a, b}, tgt, 0)
	t.Logf("%+v", st)
	if st.Literal > 50*1024 {
		t.Errorf("literal %d bytes", st.Literal)
	}
}

// ---- determinism and concurrency ----

func TestDeterministic(t *testing.T) {
	img := diskImage(17, 4<<20)
	tgt := mutate(rand.New(rand.NewSource(18)), img, 20)
	ix, err := NewIndex(sources(img), 0)
	if err != nil {
		t.Fatal(err)
	}
	var ref []byte
	readers := []func() io.Reader{
		func() io.Reader { return bytes.NewReader(tgt) },
		func() io.Reader { return iotest.OneByteReader(bytes.NewReader(tgt[:1<<20])) },
		func() io.Reader { return iotest.HalfReader(bytes.NewReader(tgt)) },
		func() io.Reader { return sizeless{bytes.NewReader(tgt)} },
	}
	for i, mk := range readers {
		r := mk()
		want := tgt
		if i == 1 {
			want = tgt[:1<<20]
		}
		var d bytes.Buffer
		if _, err := ix.Encode(&d, r); err != nil {
			t.Fatal(err)
		}
		got, err := decode([][]byte{img}, d.Bytes())
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("reader %d: round trip failed: %v", i, err)
		}
		if i == 1 {
			continue
		}
		if ref == nil {
			ref = d.Bytes()
		} else if !bytes.Equal(ref, d.Bytes()) {
			t.Fatalf("reader %d: delta differs", i)
		}
	}
	// A fresh index, with the same inputs, gives the same bytes too.
	d2, _ := encode(t, [][]byte{img}, tgt, 0)
	if !bytes.Equal(ref, d2) {
		t.Fatal("delta from a fresh index differs")
	}
}

func TestConcurrentEncode(t *testing.T) {
	img := diskImage(19, 2<<20)
	ix, err := NewIndex(sources(img), 0)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	deltas := make([][]byte, 8)
	targets := make([][]byte, 8)
	for i := range deltas {
		targets[i] = mutate(rand.New(rand.NewSource(int64(i))), img, 10)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var d bytes.Buffer
			if _, err := ix.Encode(&d, bytes.NewReader(targets[i])); err != nil {
				t.Error(err)
			}
			deltas[i] = d.Bytes()
		}()
	}
	wg.Wait()
	for i, d := range deltas {
		got, err := decode([][]byte{img}, d)
		if err != nil || !bytes.Equal(got, targets[i]) {
			t.Fatalf("target %d: %v", i, err)
		}
	}
}

// ---- errors ----

// smallDelta returns sources, a target and a delta using every op kind.
func smallDelta(t testing.TB) ([][]byte, []byte, []byte) {
	src := diskImage(20, 64<<10)
	tgt := cat(src[:20000], []byte("some new bytes"), make([]byte, 3000), src[30001:50000], randBytes(21, 300))
	d, st := encode(t, [][]byte{src}, tgt, 0)
	if st.Zero == 0 || st.Copied == 0 || st.Literal == 0 {
		t.Fatalf("smallDelta lacks an op kind: %+v", st)
	}
	return [][]byte{src}, tgt, d
}

func TestTruncated(t *testing.T) {
	srcs, _, d := smallDelta(t)
	for n := range len(d) {
		got, err := decode(srcs, d[:n])
		if err == nil {
			t.Fatalf("prefix of %d/%d bytes decoded without error (%d bytes)", n, len(d), len(got))
		}
		if _, err2 := decodeRead(srcs, d[:n]); err2 == nil {
			t.Fatalf("prefix of %d/%d bytes read without error", n, len(d))
		}
		if !strings.HasPrefix(err.Error(), "delta: ") {
			t.Errorf("prefix %d: error %q lacks the package prefix", n, err)
		}
	}
	_, err := decode(srcs, d[:len(d)-10])
	t.Logf("truncated by 10 bytes: %v", err)
}

func TestCorrupt(t *testing.T) {
	srcs, tgt, d := smallDelta(t)
	silent := 0
	for i := range d {
		for _, x := range []byte{0x01, 0x80, 0xff} {
			c := append([]byte(nil), d...)
			c[i] ^= x
			got, err := decode(srcs, c)
			if err == nil {
				if !bytes.Equal(got, tgt) {
					t.Fatalf("flip %#x at %d: wrong output without error", x, i)
				}
				silent++
			}
		}
	}
	t.Logf("%d of %d single-byte corruptions decoded to the right target, all others failed", silent, 3*len(d))
}

func TestTrailingData(t *testing.T) {
	srcs, _, d := smallDelta(t)
	skippable := binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, 0x184D2A50), 4)
	skippable = append(skippable, 1, 2, 3, 4)
	for _, tail := range [][]byte{{0}, {1, 2, 3}, []byte("garbage after the stream"), d, skippable} {
		if _, err := decode(srcs, cat(d, tail)); err == nil {
			t.Errorf("%d trailing bytes accepted", len(tail))
		} else {
			t.Logf("%d trailing bytes: %v", len(tail), err)
		}
	}
}

func TestWrongSources(t *testing.T) {
	srcs, _, d := smallDelta(t)
	src := srcs[0]
	other := append([]byte(nil), src...)
	other[30500] ^= 1 // a copied byte
	cases := []struct {
		name string
		srcs [][]byte
		want string
	}{
		{"none", nil, "sources"},
		{"two", [][]byte{src, src}, "sources"},
		{"shorter", [][]byte{src[:len(src)-1]}, "bytes, delta was made against"},
		{"longer", [][]byte{cat(src, []byte{0})}, "bytes, delta was made against"},
		{"same size, other content", [][]byte{other}, "checksum mismatch"},
	}
	for _, c := range cases {
		_, err := decode(c.srcs, d)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
}

// failingSource fails every ReadAt at or beyond off.
type failingSource struct {
	Source
	off int64
}

var errSource = errors.New("source failed")

func (f failingSource) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > f.off {
		return 0, errSource
	}
	return f.Source.ReadAt(p, off)
}

func TestSourceErrors(t *testing.T) {
	srcs, _, d := smallDelta(t)
	bad := []Source{failingSource{sources(srcs[0])[0], 1000}}
	r, err := NewReader(bytes.NewReader(d), bad)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.WriteTo(io.Discard)
	if !errors.Is(err, errSource) || !strings.Contains(err.Error(), "copy op at target offset") {
		t.Errorf("decode: %v", err)
	}
	if _, err2 := r.Read(make([]byte, 10)); err2 != err {
		t.Errorf("error not sticky: %v then %v", err, err2)
	}
	if _, err := NewIndex(bad, 0); !errors.Is(err, errSource) {
		t.Errorf("NewIndex: %v", err)
	}
}

func TestTargetErrors(t *testing.T) {
	ix, err := NewIndex(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	errTarget := errors.New("target failed")
	_, err = ix.Encode(io.Discard, io.MultiReader(bytes.NewReader(make([]byte, 100)), iotest.ErrReader(errTarget)))
	if !errors.Is(err, errTarget) {
		t.Errorf("failing target: %v", err)
	}
	// A target shorter than it claims.
	_, err = ix.Encode(io.Discard, io.NewSectionReader(bytes.NewReader(make([]byte, 10)), 0, 20))
	if err == nil {
		t.Error("short target accepted")
	}
	errWrite := errors.New("write failed")
	_, err = ix.Encode(errWriter{errWrite}, bytes.NewReader(randBytes(1, 1<<20)))
	if !errors.Is(err, errWrite) {
		t.Errorf("failing writer: %v", err)
	}
}

type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }

func TestNewIndexErrors(t *testing.T) {
	for _, bs := range []int{-1, 1, MinBlockSize - 1, MaxBlockSize + 1} {
		if _, err := NewIndex(nil, bs); err == nil {
			t.Errorf("block size %d accepted", bs)
		}
	}
	if _, err := NewIndex([]Source{nil}, 0); err == nil {
		t.Error("nil source accepted")
	}
}

// craft builds a delta around a raw op stream, bypassing the encoder.
func craft(target int64, srcSizes []int64, ops []byte) []byte {
	h := &header{target: target, sources: srcSizes}
	var b bytes.Buffer
	b.Write(h.marshal())
	zw, err := newZstdWriter(&b)
	if err != nil {
		panic(err)
	}
	zw.Write(ops)
	zw.Close()
	return b.Bytes()
}

// op appends one op header.
func op(b []byte, kind int, n uint64, args ...int64) []byte {
	b = binary.AppendUvarint(b, n<<2|uint64(kind))
	if kind == opCopy {
		b = binary.AppendUvarint(b, uint64(args[0]))
		b = binary.AppendVarint(b, args[1])
	}
	return b
}

func end(b []byte, target []byte) []byte {
	b = append(b, opEnd)
	return binary.LittleEndian.AppendUint32(b, crc32c(target))
}

func crc32c(b []byte) uint32 { return crcUpdate(0, b) }

func TestMalformedOps(t *testing.T) {
	src := []byte("0123456789abcdefghij")
	srcs := [][]byte{src}
	sizes := []int64{int64(len(src))}
	good := end(op(op(nil, opCopy, 5, 0, 10), opZero, 3), cat(src[10:15], make([]byte, 3)))
	if out, err := decode(srcs, craft(8, sizes, good)); err != nil || !bytes.Equal(out, cat(src[10:15], make([]byte, 3))) {
		t.Fatalf("crafted delta: %q %v", out, err)
	}
	cases := []struct {
		name   string
		target int64
		ops    []byte
		want   string
	}{
		{"empty stream", 1, nil, "truncated at target offset 0"},
		{"zero-length op", 1, op(nil, opZero, 0), "empty op"},
		{"overrun", 4, op(nil, opZero, 5), "overruns"},
		{"literal overrun", 2, append(op(nil, opLiteral, 3), "abc"...), "overruns"},
		{"literal truncated", 5, append(op(nil, opLiteral, 5), "abc"...), "truncated at target offset 3"},
		{"source index", 1, op(nil, opCopy, 1, 1, 0), "source 1 of 1"},
		{"copy past source end", 5, op(nil, opCopy, 5, 0, 16), "outside source"},
		{"copy before source start", 5, op(nil, opCopy, 5, 0, -1), "outside source"},
		{"copy offset overflow", 5, op(op(nil, opZero, 1), opCopy, 4, 0, math.MaxInt64), "overflows"},
		{"copy offset far negative", 5, op(op(nil, opCopy, 1, 0, 19), opCopy, 4, 0, math.MinInt64), "outside source"},
		{"early end", 3, end(op(nil, opZero, 1), nil), "ends at target offset 1"},
		{"ops past end", 1, op(op(nil, opZero, 1), opZero, 1), "goes on past"},
		{"missing end", 1, op(nil, opZero, 1), "truncated at target offset 1"},
		{"bad end op", 1, append(op(nil, opZero, 1), 0x04), "goes on past"},
		{"bad checksum", 1, binary.LittleEndian.AppendUint32(append(op(nil, opZero, 1), opEnd), 12345), "checksum mismatch"},
		{"truncated checksum", 1, append(op(nil, opZero, 1), opEnd, 1, 2), "truncated at target offset 1"},
		{"trailing ops bytes", 1, append(end(op(nil, opZero, 1), []byte{0}), 0), "trailing data in the op stream"},
		{"varint overflow", 1, bytes.Repeat([]byte{0xff}, 11), "corrupt op stream"},
	}
	for _, c := range cases {
		_, err := decode(srcs, craft(c.target, sizes, c.ops))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
}

func TestBadHeader(t *testing.T) {
	srcs, _, d := smallDelta(t)
	hdrLen := len((&header{target: 1, sources: []int64{int64(len(srcs[0]))}}).marshal())
	cases := []struct {
		name  string
		delta []byte
		want  string
	}{
		{"empty", nil, "truncated header"},
		{"magic", cat([]byte("RHDELTA0"), d[8:]), "bad magic"},
		{"version", cat(d[:8], []byte{2}, d[9:]), "version 2"},
		{"flags", cat(d[:9], []byte{1}, d[10:]), "flags"},
		{"checksum", cat(d[:hdrLen-1], []byte{d[hdrLen-1] ^ 1}, d[hdrLen:]), "checksum"},
		{"huge target", craft(1<<62+1, []int64{int64(len(srcs[0]))}, nil), "out of range"},
	}
	for _, c := range cases {
		_, err := decode(srcs, c.delta)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
}

// ---- internals ----

func TestRollingHash(t *testing.T) {
	for _, n := range []int{16, 17, 18, 19, 64, 1000} {
		h := newHasher(n)
		b := randBytes(int64(n), 5000)
		copy(b[3000:], make([]byte, 2*n))
		ix := &Index{bs: n, h: h, filter: make([]uint64, 1)}
		naive := func(w []byte) uint64 {
			var x uint64
			for _, c := range w {
				x = x*prime + h.in[c]
			}
			return x
		}
		if got, want := h.block(b[:n]), naive(b[:n]); got != want {
			t.Fatalf("n=%d: block %x, naive %x", n, got, want)
		}
		if h.block(make([]byte, n)) != h.zero {
			t.Fatalf("n=%d: zero hash", n)
		}
		// With a full filter scan stops at every byte: check each hash.
		ix.filter[0] = math.MaxUint64
		x := h.block(b[:n])
		for i := n; i < len(b); {
			var hit bool
			i, x, hit = ix.scan(b, i, len(b), x)
			if !hit || x != naive(b[i-n:i]) {
				t.Fatalf("n=%d: rolled hash at %d wrong", n, i)
			}
		}
	}
}

func TestFindZeroRun(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for range 2000 {
		b := make([]byte, rng.Intn(400))
		for i := range b {
			if rng.Intn(40) == 0 {
				b[i] = 1
			}
		}
		start, n := findZeroRun(b)
		// Reference: first maximal run of >= minZeroRun zeros.
		ws, wn := len(b), 0
		for i := 0; i < len(b); {
			j := i
			for j < len(b) && b[j] == 0 {
				j++
			}
			if j-i >= minZeroRun {
				ws, wn = i, j-i
				break
			}
			i = j + 1
		}
		if start != ws || n != wn {
			t.Fatalf("findZeroRun = %d,%d want %d,%d", start, n, ws, wn)
		}
	}
}

func TestHelpers(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	for range 2000 {
		a := randBytes(rng.Int63(), rng.Intn(1200))
		b := append([]byte(nil), a...)
		if len(b) > 0 && rng.Intn(4) > 0 {
			b[rng.Intn(len(b))] ^= 1
		}
		p := 0
		for p < len(a) && a[p] == b[p] {
			p++
		}
		if got := commonPrefix(a, b); got != p {
			t.Fatalf("commonPrefix = %d, want %d", got, p)
		}
		s := 0
		for s < len(a) && a[len(a)-1-s] == b[len(b)-1-s] {
			s++
		}
		if got := commonSuffix(a, b); got != s {
			t.Fatalf("commonSuffix = %d, want %d", got, s)
		}
		z := make([]byte, len(a))
		if len(z) > 0 {
			z[rng.Intn(len(z))] = 1
		}
		zp, zs := 0, 0
		for zp < len(z) && z[zp] == 0 {
			zp++
		}
		for zs < len(z) && z[len(z)-1-zs] == 0 {
			zs++
		}
		if zeroPrefix(z) != zp || zeroSuffix(z) != zs || zeros.Is(z) != (zp == len(z)) {
			t.Fatalf("zero helpers wrong on %v", z)
		}
	}
}

// ---- fuzzing ----

// fuzzSources are the sources FuzzReader decodes against.
func fuzzSources() [][]byte {
	return [][]byte{diskImage(30, 4096), []byte("a small second source, 44 bytes long.......")}
}

func FuzzReader(f *testing.F) {
	srcs := fuzzSources()
	sizes := []int64{int64(len(srcs[0])), int64(len(srcs[1]))}
	for _, tgt := range [][]byte{nil, []byte("x"), srcs[0][100:900], cat(srcs[1], make([]byte, 500), srcs[0][7:2000], []byte("new"))} {
		d, _ := encode(f, srcs, tgt, 16)
		// The op stream alone, for the crafted path.
		ops := opStream(f, d)
		f.Add(d, ops, uint16(len(tgt)))
	}
	f.Add([]byte("RHDELTA1"), op(nil, opCopy, 5, 1, 3), uint16(5))
	f.Fuzz(func(t *testing.T, delta, ops []byte, size uint16) {
		if len(delta) > 1<<20 || len(ops) > 1<<20 {
			return
		}
		for _, d := range [][]byte{delta, craft(int64(size), sizes, ops)} {
			r, err := NewReader(bytes.NewReader(d), sources(srcs...))
			if err != nil {
				continue
			}
			if ra, err := NewReaderAt(bytes.NewReader(d), sources(srcs...), 1<<20); err == nil {
				p := make([]byte, 4096)
				for _, off := range []int64{0, ra.Size() / 2, ra.Size() - 1} {
					ra.ReadAt(p, off)
				}
			}
			// Bounded whatever the header claims: read at most 1 MiB.
			n, err := io.Copy(io.Discard, io.LimitReader(r, 1<<20))
			if err == nil && n != r.Size() && n < 1<<20 {
				t.Fatalf("decoded %d bytes of %d without error", n, r.Size())
			}
		}
	})
}

// opStream extracts the decompressed op stream of a delta.
func opStream(tb testing.TB, d []byte) []byte {
	br := bufio.NewReader(bytes.NewReader(d))
	if _, err := readHeader(br, sources(fuzzSources()...)); err != nil {
		tb.Fatal(err)
	}
	zd, err := zstd.NewReader(br)
	if err != nil {
		tb.Fatal(err)
	}
	defer zd.Close()
	ops, err := io.ReadAll(zd)
	if err != nil {
		tb.Fatal(err)
	}
	return ops
}

func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte("the quick brown fox jumps over the lazy dog, again and again and again"), []byte{1, 2, 3, 200, 17, 9}, uint8(0))
	f.Add(diskImage(1, 3000), []byte{0, 0, 0, 0, 255, 1, 128, 64}, uint8(1))
	f.Add(bytes.Repeat([]byte{0}, 5000), []byte("zeros"), uint8(2))
	f.Fuzz(func(t *testing.T, src, script []byte, bsSel uint8) {
		if len(src) > 64<<10 || len(script) > 4<<10 {
			return // keep each run fast: the shapes matter, not the sizes
		}
		bs := []int{16, 17, 64, 512}[bsSel%4]
		// The script builds a target from pieces of the source, new
		// bytes and zeros.
		var tgt []byte
		for i := 0; i+2 < len(script); i += 3 {
			n := int(script[i+1])*3 + int(script[i+2])%7
			switch script[i] % 4 {
			case 0, 1:
				if len(src) > 0 {
					o := int(script[i+2]) * 97 % len(src)
					tgt = append(tgt, src[o:min(o+n, len(src))]...)
				}
			case 2:
				tgt = append(tgt, script[i:min(i+n%9, len(script))]...)
			case 3:
				tgt = append(tgt, make([]byte, n)...)
			}
		}
		if len(script)%3 != 0 {
			tgt = append(tgt, script...)
		}
		for _, target := range [][]byte{tgt, script} {
			d, _ := encode(t, [][]byte{src}, target, bs)
			got, err := decode([][]byte{src}, d)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, target) {
				t.Fatalf("round trip differs: %d bytes, want %d", len(got), len(target))
			}
		}
	})
}

func TestAutoBlockSize(t *testing.T) {
	a := diskImage(40, 3<<20+777)
	b := randBytes(41, 1<<20+5)
	srcs := sources(a, make([]byte, 100000), b)
	for _, budget := range []int{1 << 30, 4000, 1000, 300, 1} {
		auto, err := newIndex(srcs, 0, budget)
		if err != nil {
			t.Fatal(err)
		}
		direct, err := newIndex(srcs, auto.bs, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !slicesEqual(auto.slots, direct.slots) || !slicesEqual(auto.filter, direct.filter) || auto.blocks != direct.blocks {
			t.Fatalf("budget %d: index at block size %d differs from a direct one", budget, auto.bs)
		}
		if budget > 1 && auto.blocks > budget {
			t.Errorf("budget %d: %d blocks of %d bytes", budget, auto.blocks, auto.bs)
		}
		t.Logf("budget %d: block size %d, %d blocks", budget, auto.bs, auto.blocks)
	}
	if ix, _ := NewIndex(srcs, 0); ix.BlockSize() != DefaultBlockSize {
		t.Errorf("small sources: block size %d", ix.BlockSize())
	}
}

func slicesEqual(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// checkReaderAt reads target back through a ReaderAt at random offsets and
// lengths, and whole, and checks the literal limit.
func checkReaderAt(t *testing.T, srcs [][]byte, d, target []byte) {
	t.Helper()
	ra, err := NewReaderAt(bytes.NewReader(d), sources(srcs...), 1<<40)
	if err != nil {
		t.Fatalf("NewReaderAt: %v", err)
	}
	if ra.Size() != int64(len(target)) {
		t.Fatalf("ReaderAt size %d, want %d", ra.Size(), len(target))
	}
	whole := make([]byte, len(target))
	if n, err := ra.ReadAt(whole, 0); n != len(target) || (err != nil && err != io.EOF) || !bytes.Equal(whole, target) {
		t.Fatalf("ReaderAt whole: %d bytes, %v, equal %v", n, err, bytes.Equal(whole, target))
	}
	rng := rand.New(rand.NewSource(int64(len(target))))
	for i := 0; i < 200 && len(target) > 0; i++ {
		off := rng.Int63n(int64(len(target)))
		p := make([]byte, rng.Intn(256<<10)+1)
		n, err := ra.ReadAt(p, off)
		want := min(len(p), len(target)-int(off))
		if n != want || !bytes.Equal(p[:n], target[off:off+int64(n)]) || (n < len(p)) != (err == io.EOF) {
			t.Fatalf("ReadAt(%d bytes at %d) = %d, %v; want %d bytes", len(p), off, n, err, want)
		}
	}
	if _, err := ra.ReadAt(make([]byte, 1), int64(len(target))); err != io.EOF {
		t.Fatalf("ReadAt at the end: %v, want EOF", err)
	}
	if len(ra.lits) > 0 {
		if _, err := NewReaderAt(bytes.NewReader(d), sources(srcs...), 0); !errors.Is(err, ErrTooManyLiterals) {
			t.Fatalf("NewReaderAt over its literal limit: %v", err)
		}
	}
}
