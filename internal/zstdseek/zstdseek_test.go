package zstdseek

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"

	"github.com/klauspost/compress/zstd"
)

func TestXXH64(t *testing.T) {
	for _, c := range []struct {
		in   string
		want uint64
	}{
		{"", 0xEF46DB3751D8E999},
		{"a", 0xD24EC4F1A98C6E5B},
		{"abc", 0x44BC2CF5AD770999},
	} {
		if got := xxh64([]byte(c.in)); got != c.want {
			t.Errorf("xxh64(%q) = %#x, want %#x", c.in, got, c.want)
		}
	}
	// Cross-check with the content checksums klauspost/compress writes.
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderCRC(true))
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	data := diskLike(1<<20, 7)
	for _, n := range []int{1, 3, 4, 7, 8, 31, 32, 33, 63, 64, 65, 100, 1000, 4099, 1 << 20} {
		frame := enc.EncodeAll(data[:n], nil)
		want, ok := frameChecksum(frame)
		if !ok {
			t.Fatalf("no checksum in frame of %d bytes", n)
		}
		if got := uint32(xxh64(data[:n])); got != want {
			t.Errorf("xxh64 of %d bytes: %#x, frame checksum %#x", n, got, want)
		}
	}
}

// checkBlob verifies that blob decompresses to data through every API.
func checkBlob(t *testing.T, blob, data []byte, frameSize int) {
	t.Helper()
	r := open(t, blob)
	if r.Size() != int64(len(data)) {
		t.Fatalf("Size() = %d, want %d", r.Size(), len(data))
	}
	if want := (len(data) + frameSize - 1) / frameSize; r.Frames() != want {
		t.Errorf("Frames() = %d, want %d", r.Frames(), want)
	}
	var out bytes.Buffer
	n, err := r.WriteTo(&out)
	if err != nil || n != int64(len(data)) || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("WriteTo: %d, %v; content equal: %v", n, err, bytes.Equal(out.Bytes(), data))
	}
	got := make([]byte, len(data)+10)
	m, err := r.ReadAt(got, 0)
	if m != len(data) || err != io.EOF || !bytes.Equal(got[:m], data) {
		t.Fatalf("ReadAt(all+10): %d, %v; content equal: %v", m, err, bytes.Equal(got[:m], data))
	}
	m, err = r.ReadAt(got[:len(data)], 0)
	if m != len(data) || (err != nil && err != io.EOF) {
		t.Fatalf("ReadAt(all): %d, %v", m, err)
	}
}

func TestRoundTrip(t *testing.T) {
	for _, fs := range []int{64 << 10, DefaultFrameSize} {
		for _, size := range []int{0, 1, fs - 1, fs, fs + 1, 5*fs + 123} {
			t.Run(fmt.Sprintf("frame%d/size%d", fs, size), func(t *testing.T) {
				data := diskLike(size, uint64(size))
				blob := compress(t, data, fs, 2, 0)
				checkBlob(t, blob, data, fs)
				// Chunked writes and ReadFrom give the same bytes.
				if b := compress(t, data, fs, 2, 4097); !bytes.Equal(b, blob) {
					t.Error("chunked Write output differs")
				}
				var buf bytes.Buffer
				w, err := NewWriter(&buf, fs)
				if err != nil {
					t.Fatal(err)
				}
				n, err := w.ReadFrom(iotest.HalfReader(bytes.NewReader(data)))
				if err != nil || n != int64(len(data)) {
					t.Fatalf("ReadFrom: %d, %v", n, err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(buf.Bytes(), blob) {
					t.Error("ReadFrom output differs")
				}
			})
		}
	}
}

func TestDefaultFrameSize(t *testing.T) {
	data := diskLike(2*DefaultFrameSize+5, 2)
	var buf bytes.Buffer
	w, err := NewWriter(&buf, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	checkBlob(t, buf.Bytes(), data, DefaultFrameSize)
}

// mostlyZeros returns size zero bytes with a few random 4 KiB patches.
func mostlyZeros(size int) []byte {
	data := make([]byte, size)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < size/(8<<20)+1; i++ {
		off := rng.IntN(size/4096) * 4096
		copy(data[off:], randomBytes(min(4096, size-off), uint64(i)))
	}
	return data
}

func TestLargeMostlyZeros(t *testing.T) {
	if testing.Short() {
		t.Skip("100 MiB in -short mode")
	}
	data := mostlyZeros(100 << 20)
	blob := compress(t, data, 0, runtime.GOMAXPROCS(0), 1<<20)
	t.Logf("100 MiB mostly zeros -> %d bytes", len(blob))
	if len(blob) > 1<<20 {
		t.Errorf("blob is %d bytes; zeros should compress to almost nothing", len(blob))
	}
	r := open(t, blob)
	h := sha256.New()
	if n, err := r.WriteTo(h); err != nil || n != int64(len(data)) {
		t.Fatalf("WriteTo: %d, %v", n, err)
	}
	if want := sha256.Sum256(data); !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatal("WriteTo content differs")
	}
	checkRandomReads(t, r, data, 300, 3<<20)
	// Sequential walk in 1 MiB chunks, like a delta decoder.
	buf := make([]byte, 1<<20)
	for off := int64(0); off < int64(len(data)); off += int64(len(buf)) {
		n, err := r.ReadAt(buf, off)
		if (err != nil && err != io.EOF) || !bytes.Equal(buf[:n], data[off:off+int64(n)]) {
			t.Fatalf("ReadAt(%d): %d, %v", off, n, err)
		}
	}
	if len(r.zeroKeys) == 0 {
		t.Error("zero frames were not recognized")
	}
}

// checkRandomReads compares count random ReadAt calls of up to maxLen bytes
// against data, with the semantics of bytes.Reader.ReadAt.
func checkRandomReads(t *testing.T, r *Reader, data []byte, count, maxLen int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(len(data)), uint64(count)))
	want := bytes.NewReader(data)
	size := int64(len(data))
	for i := 0; i < count; i++ {
		off := rng.Int64N(size + size/10 + 2)
		p := make([]byte, rng.IntN(maxLen+1))
		q := make([]byte, len(p))
		n, err := r.ReadAt(p, off)
		wn, werr := want.ReadAt(q, off)
		if n != wn || !bytes.Equal(p[:n], q[:wn]) {
			t.Fatalf("ReadAt(len %d, off %d) = %d, %v; want %d, %v (content equal %v)",
				len(p), off, n, err, wn, werr, bytes.Equal(p[:n], q[:wn]))
		}
		// io.ReaderAt: err != nil exactly when n < len(p); at the very
		// end either nil or io.EOF is fine.
		switch {
		case n < len(p) && err != io.EOF:
			t.Fatalf("ReadAt(len %d, off %d) = %d, %v; want io.EOF", len(p), off, n, err)
		case n == len(p) && err != nil && !(err == io.EOF && off+int64(n) == size):
			t.Fatalf("ReadAt(len %d, off %d) = %d, %v; want nil error", len(p), off, n, err)
		}
	}
}

func TestReadAt(t *testing.T) {
	const fs = 1 << 20
	data := diskLike(20*fs+777, 3)
	r := open(t, compress(t, data, fs, 2, 0))
	checkRandomReads(t, r, data, 600, 3*fs)

	size := int64(len(data))
	for _, c := range []struct {
		off, n  int64
		wantN   int
		wantEOF bool
	}{
		{0, 0, 0, false},
		{size, 0, 0, true},
		{size, 10, 0, true},
		{size + 100, 10, 0, true},
		{size - 1, 1, 1, false},
		{size - 1, 2, 1, true},
		{fs - 1, 2, 2, false},               // spans two frames
		{fs - 1, 2*fs + 2, 2*fs + 2, false}, // spans four frames
	} {
		p := make([]byte, c.n)
		n, err := r.ReadAt(p, c.off)
		if n != c.wantN || (err == io.EOF) != c.wantEOF || (err != nil && err != io.EOF) {
			t.Errorf("ReadAt(len %d, off %d) = %d, %v; want %d, EOF %v", c.n, c.off, n, err, c.wantN, c.wantEOF)
		}
		if n > 0 && !bytes.Equal(p[:n], data[c.off:c.off+int64(n)]) {
			t.Errorf("ReadAt(len %d, off %d): wrong content", c.n, c.off)
		}
	}
	if _, err := r.ReadAt(make([]byte, 1), -1); err == nil || err == io.EOF {
		t.Errorf("ReadAt at -1: %v, want an error", err)
	}
}

func TestReadAtConcurrent(t *testing.T) {
	const fs = 256 << 10
	data := diskLike(40*fs+5, 4)
	r := open(t, compress(t, data, fs, 2, 0))
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 0))
			seq := int64(rng.IntN(len(data)))
			for i := 0; i < 300; i++ {
				off := rng.Int64N(int64(len(data)))
				if g%2 == 0 { // half the readers walk forward
					off, seq = seq, (seq+64<<10)%int64(len(data))
				}
				p := make([]byte, rng.IntN(2*fs))
				n, err := r.ReadAt(p, off)
				if (err != nil && err != io.EOF) || !bytes.Equal(p[:n], data[off:off+int64(n)]) {
					t.Errorf("ReadAt(len %d, off %d) = %d, %v", len(p), off, n, err)
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		var out bytes.Buffer
		if _, err := r.WriteTo(&out); err != nil || !bytes.Equal(out.Bytes(), data) {
			t.Errorf("concurrent WriteTo: %v", err)
		}
	}()
	wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lru.Len() > r.cacheFrames || len(r.cache) != r.lru.Len() || len(r.free) > 2 {
		t.Errorf("cache: %d frames (max %d), map %d, free %d", r.lru.Len(), r.cacheFrames, len(r.cache), len(r.free))
	}
}

// countingReaderAt counts ReadAt calls per offset.
type countingReaderAt struct {
	ra    io.ReaderAt
	mu    sync.Mutex
	reads map[int64]int
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	c.mu.Lock()
	c.reads[off]++
	c.mu.Unlock()
	return c.ra.ReadAt(p, off)
}

func TestReadAtSequentialPrefetch(t *testing.T) {
	const fs = 1 << 20
	data := diskLike(24*fs, 5)
	blob := compress(t, data, fs, 2, 0)
	cra := &countingReaderAt{ra: bytes.NewReader(blob), reads: map[int64]int{}}
	r, err := NewReader(cra, int64(len(blob)))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	buf := make([]byte, 300<<10) // not aligned with frames
	var prefetched int
	for off := int64(0); off < int64(len(data)); off += int64(len(buf)) {
		n, err := r.ReadAt(buf, off)
		if (err != nil && err != io.EOF) || !bytes.Equal(buf[:n], data[off:off+int64(n)]) {
			t.Fatalf("ReadAt(%d) = %d, %v", off, n, err)
		}
		r.mu.Lock()
		for i := r.frameAt(off+int64(n)-1) + 1; i < r.Frames(); i++ {
			if _, ok := r.cache[i]; ok {
				prefetched++
			}
		}
		r.mu.Unlock()
	}
	if prefetched == 0 {
		t.Error("sequential reads never prefetched the next frame")
	}
	// Every frame was read from the blob exactly once: prefetches and
	// reads of the same frame share one decode.
	for i := 0; i < r.Frames(); i++ {
		if c := cra.reads[r.cOff[i]]; c != 1 {
			t.Errorf("frame %d read %d times", i, c)
		}
	}
}

func TestDeterminism(t *testing.T) {
	const fs = 1 << 20
	data := diskLike(9*fs+12345, 6)
	want := compress(t, data, fs, 1, 0)
	for _, workers := range []int{2, 3, 8} {
		for _, chunk := range []int{0, 1000, fs + 1} {
			if got := compress(t, data, fs, workers, chunk); !bytes.Equal(got, want) {
				t.Errorf("workers %d chunk %d: output differs", workers, chunk)
			}
		}
	}
	for _, procs := range []int{1, 2} {
		old := runtime.GOMAXPROCS(procs)
		var buf bytes.Buffer
		w, err := NewWriter(&buf, fs)
		if err == nil {
			_, err = w.ReadFrom(bytes.NewReader(data))
		}
		if err == nil {
			err = w.Close()
		}
		runtime.GOMAXPROCS(old)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), want) {
			t.Errorf("GOMAXPROCS %d: output differs", procs)
		}
	}
	// Every frame, zero frames included (the Writer reuses their
	// compressed form), is what a fresh encoder makes of it.
	zdata := append(make([]byte, 3*fs), data[:fs+100]...)
	zdata = append(zdata, make([]byte, 2*fs)...)
	blob := compress(t, zdata, fs, 2, 0)
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(encoderLevel), zstd.WithEncoderCRC(true),
		zstd.WithWindowSize(windowSizeFor(fs)))
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	rz := open(t, blob)
	for i := 0; i < rz.Frames(); i++ {
		want := enc.EncodeAll(zdata[rz.dOff[i]:rz.dOff[i+1]], nil)
		if !bytes.Equal(blob[rz.cOff[i]:rz.cOff[i+1]], want) {
			t.Errorf("frame %d differs from a fresh encode", i)
		}
	}

	// A frame's bytes depend only on its content, not on what the
	// (reused) encoder compressed before.
	x := data[:fs]
	a := compress(t, append(bytes.Clone(data[fs:2*fs]), x...), fs, 1, 0)
	b := compress(t, append(bytes.Clone(data[5*fs:6*fs]), x...), fs, 1, 0)
	ra, rb := open(t, a), open(t, b)
	if !bytes.Equal(a[ra.cOff[1]:ra.cOff[2]], b[rb.cOff[1]:rb.cOff[2]]) {
		t.Error("frame bytes depend on the previous frame")
	}
}

func TestZstdCLI(t *testing.T) {
	zstdBin, err := exec.LookPath("zstd")
	if err != nil {
		t.Skip("zstd binary not found")
	}
	dir := t.TempDir()
	for _, c := range []struct {
		name      string
		data      []byte
		frameSize int
	}{
		{"empty", nil, 0},
		{"small", []byte("hello, seekable zstd\n"), 0},
		{"frames", diskLike(10<<20+3, 8), 1 << 20},
		{"default", diskLike(9<<20, 9), 0},
		{"random", randomBytes(3<<20, 1), 1 << 20},
		{"zeros", make([]byte, 9<<20), 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			blob := compress(t, c.data, c.frameSize, 2, 0)
			path := filepath.Join(dir, c.name+".zst")
			if err := os.WriteFile(path, blob, 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(zstdBin, "-q", "-t", path).CombinedOutput(); err != nil {
				t.Fatalf("zstd -t: %v\n%s", err, out)
			}
			cmd := exec.Command(zstdBin, "-q", "-d", "-c", path)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			got, err := cmd.Output()
			if err != nil {
				t.Fatalf("zstd -d: %v\n%s", err, stderr.Bytes())
			}
			if !bytes.Equal(got, c.data) {
				t.Fatalf("zstd -d gave %d bytes, want %d (equal %v)", len(got), len(c.data), bytes.Equal(got, c.data))
			}
		})
	}
}

func TestCorruptFrame(t *testing.T) {
	const fs = 64 << 10
	// Frame 1 is random, so it is stored as raw blocks and only the
	// checksum can tell a flipped byte.
	data := append(diskLike(fs, 10), randomBytes(fs, 2)...)
	data = append(data, diskLike(fs, 11)...)
	blob := compress(t, data, fs, 2, 0)
	r0 := open(t, blob)
	mid := (r0.cOff[1] + r0.cOff[2]) / 2
	bad := bytes.Clone(blob)
	bad[mid] ^= 0x40
	r := open(t, bad)

	p := make([]byte, 100)
	if _, err := r.ReadAt(p, 0); err != nil {
		t.Errorf("intact frame 0: %v", err)
	}
	_, err := r.ReadAt(p, fs+10)
	if !errors.Is(err, zstd.ErrCRCMismatch) {
		t.Errorf("corrupt frame 1: %v, want a checksum error", err)
	}
	if want := fmt.Sprintf("zstdseek: frame 1 at %#x:", r.cOff[1]); err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q does not start with %q", err, want)
	}
	if _, err := r.ReadAt(p, 2*fs+10); err != nil {
		t.Errorf("intact frame 2: %v", err)
	}
	if _, err := r.WriteTo(io.Discard); !errors.Is(err, zstd.ErrCRCMismatch) {
		t.Errorf("WriteTo: %v, want a checksum error", err)
	}

	// A frame with a corrupt compressed block fails to decode.
	bad = bytes.Clone(blob)
	for i := r0.cOff[0] + 20; i < r0.cOff[1]-8; i += 97 {
		bad[i] ^= 0xff
	}
	if _, err := open(t, bad).ReadAt(p, 0); err == nil {
		t.Error("corrupt frame 0: no error")
	}

	// A seek table checksum that disagrees with the frame.
	bad = bytes.Clone(blob)
	bad[len(blob)-footerSize-1] ^= 1 // last entry's checksum
	if _, err := open(t, bad).ReadAt(p, 2*fs); !errors.Is(err, ErrFormat) {
		t.Errorf("seek table checksum mismatch: %v, want ErrFormat", err)
	}
}

func TestTruncated(t *testing.T) {
	blob := compress(t, diskLike(300<<10, 12), 64<<10, 2, 0)
	for _, n := range []int{0, 1, 5, 16, 17, len(blob) / 2, len(blob) - 100, len(blob) - 20, len(blob) - 9, len(blob) - 1} {
		_, err := NewReader(bytes.NewReader(blob[:n]), int64(n))
		if err == nil {
			t.Errorf("blob truncated to %d of %d bytes: no error", n, len(blob))
		}
	}
	// A size larger than the data behind the ReaderAt.
	if _, err := NewReader(bytes.NewReader(blob), int64(len(blob))+1); err == nil {
		t.Error("size too large: no error")
	}
}

// tableEntry is one seek table entry for hand-made blobs.
type tableEntry struct{ c, d, sum uint32 }

// rawBlob builds a blob from frames and a seek table with the given entries,
// descriptor and frame count.
func rawBlob(frames []byte, entries []tableEntry, desc byte, n uint32) []byte {
	var tbl []byte
	for _, e := range entries {
		tbl = append(tbl, le32(e.c)...)
		tbl = append(tbl, le32(e.d)...)
		if desc&checksumFlag != 0 {
			tbl = append(tbl, le32(e.sum)...)
		}
	}
	out := append(bytes.Clone(frames), le32(skippableMagic)...)
	out = append(out, le32(uint32(len(tbl)+footerSize))...)
	out = append(out, tbl...)
	out = append(out, le32(n)...)
	out = append(out, desc)
	return append(out, le32(seekableMagic)...)
}

func le32(v uint32) []byte { return []byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)} }

func TestHostileSeekTables(t *testing.T) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderCRC(true))
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	content := diskLike(10000, 13)
	f := enc.EncodeAll(content, nil)
	fl, cl := uint32(len(f)), uint32(len(content))
	sum := uint32(xxh64(content))
	good := rawBlob(f, []tableEntry{{fl, cl, sum}}, checksumFlag, 1)
	if _, err := open(t, good).ReadAt(make([]byte, 10), 0); err != nil {
		t.Fatalf("valid hand-made blob: %v", err)
	}

	withByte := func(b []byte, i int, v byte) []byte { b = bytes.Clone(b); b[i] = v; return b }
	cases := map[string][]byte{
		"huge frame count":         rawBlob(f, []tableEntry{{fl, cl, sum}}, checksumFlag, 0xffffffff),
		"frame count too high":     rawBlob(f, []tableEntry{{fl, cl, sum}}, checksumFlag, 2),
		"frame count too low":      rawBlob(f, []tableEntry{{fl, cl, sum}}, checksumFlag, 0),
		"sizes short of data":      rawBlob(append(bytes.Clone(f), f...), []tableEntry{{fl, cl, sum}}, checksumFlag, 1),
		"sizes past data":          rawBlob(f, []tableEntry{{fl, cl, sum}, {fl, cl, sum}}, checksumFlag, 2),
		"compressed size 0":        rawBlob(f, []tableEntry{{0, 0, 0}, {fl, cl, sum}}, checksumFlag, 2),
		"decompressed 4 GiB":       rawBlob(f, []tableEntry{{fl, 0xffffffff, sum}}, checksumFlag, 1),
		"decompressed over limit":  rawBlob(f, []tableEntry{{fl, MaxFrameSize + 1, sum}}, checksumFlag, 1),
		"compressed implausible":   rawBlob(make([]byte, 5000), []tableEntry{{5000, 0, 0}}, 0, 1),
		"decompressed implausible": rawBlob(f, []tableEntry{{fl, 1 << 25, sum}}, checksumFlag, 1),
		"large, no header size":    rawBlob(withByte(f, 4, 0), []tableEntry{{fl, MaxFrameSize, sum}}, 0, 1),
		"reserved bits":            rawBlob(f, []tableEntry{{fl, cl, sum}}, checksumFlag|0x04, 1),
		"bad skippable magic":      withByte(good, len(f), 0x5f),
		"bad table frame size":     withByte(good, len(f)+4, 0),
		"bad seekable magic":       withByte(good, len(good)-1, 0),
		"no table":                 f,
	}
	for name, blob := range cases {
		r, err := NewReader(bytes.NewReader(blob), int64(len(blob)))
		if err == nil {
			r.Close()
			t.Errorf("%s: no error", name)
		} else if !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v, want ErrFormat", name, err)
		}
	}

	// Tables that parse but disagree with the frames fail on reading.
	frameCases := map[string][]byte{
		"decompressed too small": rawBlob(f, []tableEntry{{fl, cl - 1, sum}}, checksumFlag, 1),
		"decompressed too large": rawBlob(f, []tableEntry{{fl, cl + 1, sum}}, checksumFlag, 1),
		"garbage frame":          rawBlob(bytes.Repeat([]byte{0xAB}, 100), []tableEntry{{100, 1000, 0}}, 0, 1),
		"wrong checksum":         rawBlob(f, []tableEntry{{fl, cl, sum + 1}}, checksumFlag, 1),
	}
	for name, blob := range frameCases {
		r, err := NewReader(bytes.NewReader(blob), int64(len(blob)))
		if err != nil {
			t.Errorf("%s: NewReader: %v", name, err)
			continue
		}
		if _, err := r.ReadAt(make([]byte, 1), 0); err == nil {
			t.Errorf("%s: ReadAt: no error", name)
		}
		if _, err := r.WriteTo(io.Discard); err == nil {
			t.Errorf("%s: WriteTo: no error", name)
		}
		r.Close()
	}

	// Streamed frames do not declare their content size: the table's is
	// trusted for the allocation and checked after decoding.
	// One raw block (content is at most 16 KiB), 16 KiB window, checksum,
	// and no content size in the header.
	streamed := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x04, (14 - 10) << 3}
	bh := uint32(len(content))<<3 | 1 // last, raw
	streamed = append(streamed, byte(bh), byte(bh>>8), byte(bh>>16))
	streamed = append(streamed, content...)
	streamed = append(streamed, le32(sum)...)
	if _, ok := frameContentSize(streamed); ok {
		t.Fatal("streamed frame declares its size; test needs one that does not")
	}
	sl := uint32(len(streamed))
	for _, ds := range []uint32{cl, cl - 1, cl + 1, cl * 8} {
		blob := rawBlob(streamed, []tableEntry{{sl, ds, sum}}, checksumFlag, 1)
		var out bytes.Buffer
		_, err := open(t, blob).WriteTo(&out)
		if ds == cl && (err != nil || !bytes.Equal(out.Bytes(), content)) {
			t.Errorf("streamed frame: %v", err)
		}
		if ds != cl && err == nil {
			t.Errorf("streamed frame, table size %d instead of %d: no error", ds, cl)
		}
	}

	// Frames without a content checksum are checked against the table.
	plain, err := zstd.NewWriter(nil, zstd.WithEncoderCRC(false))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	g := plain.EncodeAll(content, nil)
	for _, c := range []struct {
		sum  uint32
		desc byte
		ok   bool
	}{{sum, checksumFlag, true}, {sum ^ 1, checksumFlag, false}, {0, 0, true}} {
		blob := rawBlob(g, []tableEntry{{uint32(len(g)), cl, c.sum}}, c.desc, 1)
		var out bytes.Buffer
		_, err := open(t, blob).WriteTo(&out)
		if c.ok && (err != nil || !bytes.Equal(out.Bytes(), content)) {
			t.Errorf("no frame checksum, table %+v: %v", c, err)
		}
		if !c.ok && !errors.Is(err, ErrFormat) {
			t.Errorf("no frame checksum, table %+v: %v, want ErrFormat", c, err)
		}
	}
}

// virtualBlob is a huge blob of which only the last bytes exist; reading
// anything else fails.
type virtualBlob struct {
	size int64
	tail []byte
	hits atomic.Int64
}

func (v *virtualBlob) ReadAt(p []byte, off int64) (int, error) {
	v.hits.Add(1)
	start := v.size - int64(len(v.tail))
	if off < start || off+int64(len(p)) > v.size {
		return 0, errors.New("virtual blob: no data here")
	}
	return copy(p, v.tail[off-start:]), nil
}

func TestHostileHugeTableBoundedMemory(t *testing.T) {
	// The footer claims 2^32-1 frames and the size claims a blob big
	// enough for them: NewReader must fail without allocating the table.
	for _, entries := range [][]byte{
		nil,                           // entries unreadable
		bytes.Repeat([]byte{0}, 4096), // entries readable but invalid
	} {
		tail := append(bytes.Clone(entries), le32(0xffffffff)...)
		tail = append(tail, checksumFlag)
		tail = append(tail, le32(seekableMagic)...)
		v := &virtualBlob{size: 1 << 50, tail: tail}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := NewReader(v, v.size)
		runtime.ReadMemStats(&after)
		if err == nil {
			t.Fatal("no error")
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
			t.Errorf("NewReader allocated %d bytes for a bogus table", alloc)
		}
	}
}

// failingWriter fails once more than limit bytes were written.
type failingWriter struct {
	n, limit int
}

var errTestWrite = errors.New("test write failure")

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.n+len(p) > f.limit {
		return 0, errTestWrite
	}
	f.n += len(p)
	return len(p), nil
}

func TestWriterErrors(t *testing.T) {
	for _, fs := range []int{-1, MaxFrameSize + 1} {
		if _, err := NewWriter(io.Discard, fs); err == nil {
			t.Errorf("NewWriter(frame size %d): no error", fs)
		}
	}

	data := randomBytes(1<<20, 3)
	w, err := NewWriter(&failingWriter{limit: 100 << 10}, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	var werr error
	for i := 0; i < 100 && werr == nil; i++ {
		_, werr = w.Write(data)
	}
	if !errors.Is(werr, errTestWrite) {
		t.Fatalf("Write: %v, want the writer's error", werr)
	}
	if _, err := w.Write(data); !errors.Is(err, errTestWrite) {
		t.Errorf("Write after error: %v, want sticky error", err)
	}
	if err := w.Close(); !errors.Is(err, errTestWrite) {
		t.Errorf("Close after error: %v", err)
	}
	if err := w.Close(); !errors.Is(err, errTestWrite) {
		t.Errorf("second Close after error: %v", err)
	}

	// The seek table write fails.
	w, _ = NewWriter(&failingWriter{limit: 30}, 0) // room for the frame only
	if _, err := w.Write([]byte("tiny")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); !errors.Is(err, errTestWrite) {
		t.Errorf("Close with failing table write: %v", err)
	}

	w, _ = NewWriter(io.Discard, 0)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := w.Write([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close: %v, want ErrClosed", err)
	}
	if _, err := w.ReadFrom(strings.NewReader("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("ReadFrom after Close: %v, want ErrClosed", err)
	}

	// ReadFrom reports the reader's errors, io.ErrUnexpectedEOF included.
	for _, rerr := range []error{errors.New("read failure"), io.ErrUnexpectedEOF} {
		w, _ = NewWriter(io.Discard, 0)
		src := io.MultiReader(strings.NewReader("some data"), iotest.ErrReader(rerr))
		if n, err := w.ReadFrom(src); n != 9 || !errors.Is(err, rerr) {
			t.Errorf("ReadFrom: %d, %v; want 9, %v", n, err, rerr)
		}
		_ = w.Close()
	}
}

func TestReaderClose(t *testing.T) {
	const fs = 64 << 10
	data := diskLike(50*fs, 14)
	r, err := NewReader(bytes.NewReader(compress(t, data, fs, 2, 0)), 0)
	if err == nil {
		t.Fatal("size 0: no error")
	}
	blob := compress(t, data, fs, 2, 0)
	r, err = NewReader(bytes.NewReader(blob), int64(len(blob)))
	if err != nil {
		t.Fatal(err)
	}
	// Start sequential reads (and so prefetches) and close right away.
	buf := make([]byte, 100<<10)
	for off := int64(0); off < 5*fs; off += int64(len(buf)) {
		if _, err := r.ReadAt(buf, off); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := r.ReadAt(buf, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("ReadAt after Close: %v", err)
	}
	if _, err := r.WriteTo(io.Discard); !errors.Is(err, ErrClosed) {
		t.Errorf("WriteTo after Close: %v", err)
	}
	if r.Size() != int64(len(data)) || r.Frames() != 50 {
		t.Errorf("Size %d Frames %d after Close", r.Size(), r.Frames())
	}
}

func TestZeroFrames(t *testing.T) {
	const fs = 256 << 10
	data := make([]byte, 10*fs+100)
	copy(data[3*fs:], "not zero")
	blob := compress(t, data, fs, 2, 0)
	r := open(t, blob)
	checkBlob(t, blob, data, fs)
	checkRandomReads(t, r, data, 500, 2*fs)
	if n := len(r.zeroKeys); n != 2 { // full frames and the short last one
		t.Errorf("%d zero frame keys, want 2", n)
	}
	// The zero shortcut still checks the seek table checksum.
	r0 := open(t, blob)
	bad := bytes.Clone(blob)
	entry := len(blob) - footerSize - 11*entrySizeSum + 5*entrySizeSum // frame 5
	bad[entry+8] ^= 1
	rb := open(t, bad)
	p := make([]byte, fs)
	for i := 0; i < 5; i++ {
		if _, err := rb.ReadAt(p, int64(i*fs)); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	if _, err := rb.ReadAt(p, 5*fs); !errors.Is(err, ErrFormat) {
		t.Errorf("zero frame with wrong table checksum: %v, want ErrFormat", err)
	}
	_ = r0
}

func TestPeakMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("slow in -short mode")
	}
	// 128 MiB of incompressible data in a file: reading it sequentially
	// and with WriteTo must keep the heap at a few frames.
	const size = 128 << 20
	// chunk fills b with the i-th MiB of the content, without garbage.
	chunk := func(b []byte, i int) []byte {
		_, _ = rand.NewChaCha8([32]byte{byte(i), byte(i >> 8), 100}).Read(b)
		return b
	}
	want := make([]byte, 1<<20)
	path := filepath.Join(t.TempDir(), "blob.zst")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := NewWriter(f, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < size>>20; i++ {
		if _, err := w.Write(chunk(want, i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			default:
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			runtime.Gosched()
		}
	}()
	buf := make([]byte, 1<<20)
	for i := 0; i < size>>20; i++ {
		if _, err := r.ReadAt(buf, int64(i)<<20); err != nil && err != io.EOF {
			t.Fatal(err)
		}
		if !bytes.Equal(buf, chunk(want, i)) {
			t.Fatalf("chunk %d differs", i)
		}
	}
	readAtPeak := peak.Load()
	if _, err := r.WriteTo(io.Discard); err != nil {
		t.Fatal(err)
	}
	close(stop)
	t.Logf("ReadAt phase peak grew %.1f MiB", float64(int64(readAtPeak)-int64(base.HeapInuse))/(1<<20))
	<-sampled
	grew := int64(peak.Load()) - int64(base.HeapInuse)
	t.Logf("heap in use grew by at most %.1f MiB", float64(grew)/(1<<20))
	if grew > 80<<20 {
		t.Errorf("heap grew by %d bytes reading a %d-byte blob", grew, size)
	}
}
