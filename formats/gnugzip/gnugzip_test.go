package gnugzip

import (
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/rehydrator/rehydrator/internal/testtool"
)

// inputs are the inputs every level is checked on against gzip.
func inputs(t *testing.T) []input {
	in := []input{
		{"empty", nil},
		{"1byte", []byte{'a'}},
		{"2bytes", []byte{0, 0}},
		{"text", textData(300<<10, 1)},
		{"random", randomData(200<<10, 2)},
		{"zeros", make([]byte, 1<<20+3)},
		{"repetitive", repetitiveData(400<<10, 3)},
		{"stale80000", staleData(80000, 5)},
		{"stale90000", staleData(90000, 10)},
		{"norepeat", noRepeatData(100000, 1)},
	}
	if src := goSource(t, 1<<20); src != nil {
		in = append(in, input{"gosource", src})
	}
	if bin := goBinary(t); len(bin) > 0 {
		mid := len(bin) / 2
		in = append(in,
			input{"gobinary-head", bin[:min(len(bin), 1<<20)]},
			input{"gobinary-mid", bin[mid:min(len(bin), mid+1<<20+12345)]})
	}
	// Sizes at the window's edges: the first read (2*WSIZE), the first
	// slide (strstart >= WSIZE+MAX_DIST = 65274), later slides, 1 MiB.
	for _, n := range []int{32767, 32768, 32769, 65273, 65274, 65275, 65535, 65536, 65537, 65800, 98304, 98305, 131072, 1<<20 - 1, 1 << 20, 1<<20 + 1} {
		in = append(in, input{fmt.Sprintf("text%d", n), textData(n, uint64(n))})
	}
	for _, n := range []int{65536, 98305, 131072} {
		in = append(in, input{fmt.Sprintf("repetitive%d", n), repetitiveData(n, uint64(n))})
	}
	return in
}

// TestMatchesGzip compresses each input at every level and compares with
// gzip's output byte for byte.
func TestMatchesGzip(t *testing.T) {
	gzip := testtool.Require(t, "gzip")
	dir := t.TempDir()
	all := inputs(t)
	if cpio, err := exec.LookPath("cpio"); err == nil {
		all = append(all, input{"cpio", cpioArchive(t, cpio)})
	} else {
		testtool.Require(t, "cpio") // fails under CI, skips otherwise
	}
	for _, in := range all {
		t.Run(in.name, func(t *testing.T) {
			t.Parallel()
			for _, level := range levelsFor(in.data) {
				want := gzipBody(t, gzip, dir, in.data, level)
				got := Compress(nil, in.data, level)
				sameBody(t, fmt.Sprintf("%s (%d bytes) level %d", in.name, len(in.data), level), got, want)
			}
		})
	}
}

// levelsFor is every level, or with -short for inputs over 512 KiB the
// levels that cover deflate_fast (1), its use of ct_tally's early flush
// (3), the lazy matcher (4), the default (6) and the slowest (9).
func levelsFor(data []byte) []int {
	if testing.Short() && len(data) > 512<<10 {
		return []int{1, 3, 4, 6, 9}
	}
	return []int{1, 2, 3, 4, 5, 6, 7, 8, 9}
}

// TestLarge checks a 20 MiB input of every kind at levels 1, 6 and 9 (all
// nine with GNUGZIP_ALL=1), and reports each level's speed next to gzip's.
func TestLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: 20 MiB")
	}
	gzip := testtool.Require(t, "gzip")
	dir := t.TempDir()
	data := mixedData(t, 20<<20)
	levels := []int{1, 6, 9}
	if os.Getenv("GNUGZIP_ALL") != "" {
		levels = []int{1, 2, 3, 4, 5, 6, 7, 8, 9}
	}
	for _, level := range levels {
		var got []byte
		var wall, cpu time.Duration
		done := make(chan struct{})
		go func() { // overlaps with gzip, which runs in its own process
			defer close(done)
			st, cpu0 := time.Now(), testtool.ProcessCPU()
			got = Compress(nil, data, level)
			wall, cpu = time.Since(st), testtool.ProcessCPU()-cpu0
		}()
		st := time.Now()
		want := gzipBody(t, gzip, dir, data, level)
		gzipTime := time.Since(st)
		<-done
		if sameBody(t, fmt.Sprintf("mixed 20 MiB level %d", level), got, want) {
			t.Logf("level %d: match, %d -> %d bytes, %.1f MB/s (%.1f MB/cpu-s); gzip %.1f MB/s wall", level,
				len(data), len(got), float64(len(data))/1e6/wall.Seconds(), float64(len(data))/1e6/cpu.Seconds(),
				float64(len(data))/1e6/gzipTime.Seconds())
		}
	}
}

// TestWriter streams inputs through NewWriter in odd write sizes: the
// output must not depend on them.
func TestWriter(t *testing.T) {
	data := append(textData(150<<10, 7), goSource(t, 200<<10)...)
	data = append(data, randomData(70<<10, 8)...)
	data = append(data, repetitiveData(100<<10, 9)...)
	if bin := goBinary(t); len(bin) > 0 {
		data = append(data, bin[:min(len(bin), 300<<10)]...)
	}
	sizes := []int{1, 7, 4096, 100000, len(data)}
	for _, level := range []int{1, 3, 4, 6, 9} {
		want := Compress(nil, data, level)
		for _, size := range sizes {
			var buf bytes.Buffer
			z, err := NewWriter(&buf, level)
			if err != nil {
				t.Fatal(err)
			}
			for p := data; len(p) > 0; {
				k := min(size, len(p))
				n, err := z.Write(p[:k])
				if err != nil || n != k {
					t.Fatalf("write: %d, %v", n, err)
				}
				p = p[k:]
			}
			if err := z.Close(); err != nil {
				t.Fatal(err)
			}
			sameBody(t, fmt.Sprintf("level %d writes of %d", level, size), buf.Bytes(), want)
		}
	}
}

// TestWriterLarge streams the 20 MB input through a Writer and checks the
// output against Compress's, and that the Writer's memory stays bounded.
func TestWriterLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	data := mixedData(t, 20<<20)
	want := Compress(nil, data, 6)
	var buf bytes.Buffer
	z, err := NewWriter(&buf, 6)
	if err != nil {
		t.Fatal(err)
	}
	maxOut := 0
	for p := data; len(p) > 0; {
		k := min(100003, len(p))
		if _, err := z.Write(p[:k]); err != nil {
			t.Fatal(err)
		}
		p = p[k:]
		maxOut = max(maxOut, cap(z.c.bw.out))
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	sameBody(t, "writer 20 MiB", buf.Bytes(), want)
	if cap(z.buf) > inBuf || maxOut > 1<<20 {
		t.Errorf("buffers grew: input %d, output %d", cap(z.buf), maxOut)
	}

	// One Write of it all.
	buf.Reset()
	z, _ = NewWriter(&buf, 6)
	if n, err := z.Write(data); n != len(data) || err != nil {
		t.Fatalf("write: %d, %v", n, err)
	}
	if cap(z.c.bw.out) > 1<<20 {
		t.Errorf("one large write: output buffer grew to %d", cap(z.c.bw.out))
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	sameBody(t, "writer 20 MiB in one write", buf.Bytes(), want)
}

// TestOutputFile checks that gzip writes the same stream to a regular file
// as to a pipe, for an incompressible input: flush_block's "stored file"
// case (which needs a seekable output) is dead code in gzip.
func TestOutputFile(t *testing.T) {
	gzip := testtool.Require(t, "gzip")
	dir := t.TempDir()
	data := randomData(100, 11)
	name := filepath.Join(dir, "in")
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
	testtool.Run(t, gzip, "-6", "-n", "-k", name)
	file, err := os.ReadFile(name + ".gz")
	if err != nil {
		t.Fatal(err)
	}
	body := gzipBody(t, gzip, dir, data, 6)
	if !bytes.Equal(file[10:len(file)-8], body) {
		t.Fatalf("gzip to a file and to a pipe differ")
	}
	sameBody(t, "stored", Compress(nil, data, 6), body)
	if body[0]&7 != 1 { // BFINAL, stored
		t.Errorf("gzip's body starts % x, want a final stored block", body[:4])
	}
}

// TestRoundTrip checks that every level inflates back to its input with
// compress/flate, without needing gzip.
func TestRoundTrip(t *testing.T) {
	data := append(textData(100<<10, 5), randomData(40<<10, 5)...)
	data = append(data, make([]byte, 70<<10)...)
	for level := 1; level <= 9; level++ {
		got, err := io.ReadAll(flate.NewReader(bytes.NewReader(Compress(nil, data, level))))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("level %d: round trip: %v", level, err)
		}
	}
}

func TestAPI(t *testing.T) {
	for _, level := range []int{-1, 0, 10} {
		if _, err := NewWriter(io.Discard, level); !errors.Is(err, ErrLevel) {
			t.Errorf("NewWriter level %d: %v, want ErrLevel", level, err)
		}
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Compress level %d did not panic", level)
				}
			}()
			Compress(nil, nil, level)
		}()
	}
	// Compress appends.
	if got := Compress([]byte("x"), nil, 6); !bytes.Equal(got, []byte{'x', 3, 0}) {
		t.Errorf("Compress(x, empty) = % x", got)
	}
	// Write after Close fails; Close twice is fine; Reset reuses.
	var a, b bytes.Buffer
	z, _ := NewWriter(&a, 9)
	data := textData(200<<10, 3)
	z.Write(data)
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := z.Write([]byte{1}); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close: %v", err)
	}
	if err := z.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	z.Reset(&b)
	z.Write(data)
	z.Close()
	if !bytes.Equal(a.Bytes(), b.Bytes()) || !bytes.Equal(a.Bytes(), Compress(nil, data, 9)) {
		t.Errorf("Reset writer differs")
	}
	// A failing writer's error is returned and kept.
	z, _ = NewWriter(failWriter{}, 1)
	_, err := z.Write(randomData(1<<20, 4))
	if err == nil {
		err = z.Close()
	}
	if err == nil || !errors.Is(z.Close(), errBoom) {
		t.Errorf("failing writer: %v", err)
	}
}

var errBoom = errors.New("boom")

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errBoom }

// TestUnstorable checks noRepeatData's premise: its second block is
// Huffman coded because its start slid out of the window.
func TestUnstorable(t *testing.T) {
	toks, err := decodeTokens(Compress(nil, noRepeatData(100000, 1), 6))
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[int]int{}
	for _, tk := range toks {
		if tk.length != 0 {
			t.Fatalf("unexpected match %+v", tk)
		}
		if _, ok := kinds[tk.block]; !ok && tk.block == 1 && tk.pos != litBufSize-1 {
			t.Fatalf("block 1 starts at %d, want %d", tk.pos, litBufSize-1)
		}
		kinds[tk.block] = tk.kind
	}
	if kinds[0] != storedBlock || kinds[1] != dynTrees {
		t.Errorf("block kinds %v, want stored then dynamic", kinds)
	}
}

// TestStalePremise checks staleData's premise: the file's last symbol is a
// match with the farther of the two candidates, chosen only because of the
// window bytes past the end of the input.
func TestStalePremise(t *testing.T) {
	for _, c := range []struct{ n, l int }{{80000, 5}, {90000, 10}} {
		for _, level := range []int{1, 6, 9} {
			toks, err := decodeTokens(Compress(nil, staleData(c.n, c.l), level))
			if err != nil {
				t.Fatal(err)
			}
			// Both candidates reach l+2 bytes (the tail and the two zeros);
			// the search goes on past the nearer one only if that is short
			// of nice_length.
			want := 30000
			if uint32(c.l+2) >= configTable[level].nice {
				want = 20000
			}
			last := toks[len(toks)-1]
			if last.length != c.l || last.dist != want {
				t.Errorf("staleData(%d, %d) level %d: last symbol %+v, want length %d distance %d", c.n, c.l, level, last, c.l, want)
			}
		}
	}
}
