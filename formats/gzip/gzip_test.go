package gzip

import (
	"bytes"
	stdgzip "compress/gzip"
	"errors"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/klauspost/pgzip"
	"github.com/rehydrator/rehydrator/formats"
	"github.com/rehydrator/rehydrator/internal/formattest"
	"github.com/rehydrator/rehydrator/internal/testtool"
)

// sample is compressible, disk-like data: text, random bytes, zero runs
// and a Go binary's bytes.
func sample(t testing.TB, n int) []byte {
	rng := rand.New(rand.NewSource(int64(n)))
	bin, err := os.ReadFile(filepath.Join(runtime.GOROOT(), "bin", "gofmt"))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for b.Len() < n {
		switch rng.Intn(4) {
		case 0:
			for i := rng.Intn(2000); i > 0; i-- {
				b.WriteString("guest data line ")
			}
		case 1:
			p := make([]byte, rng.Intn(100000))
			rng.Read(p)
			b.Write(p)
		case 2:
			b.Write(make([]byte, rng.Intn(300000)))
		case 3:
			off := rng.Intn(len(bin) - 1)
			b.Write(bin[off:min(len(bin), off+rng.Intn(200000))])
		}
	}
	return b.Bytes()[:n]
}

func pgz(t testing.TB, data []byte, level, block int, name string) []byte {
	var out bytes.Buffer
	w, err := pgzip.NewWriterLevel(&out, level)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.SetConcurrency(block, 4); err != nil {
		t.Fatal(err)
	}
	w.Name = name
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// roundTrip splits file, re-assembles it and checks it byte for byte; it
// returns Split's error, if any.
func roundTrip(t *testing.T, file []byte) (recipe, content []byte, st formats.Stats, err error) {
	t.Helper()
	if !Detect(file) {
		t.Fatal("Detect = false")
	}
	recipe, content, st, err = formattest.Split(t, Split, file)
	if err != nil {
		return nil, nil, st, err
	}
	formattest.CheckAssemble(t, recipe, content, file)
	return recipe, content, st, nil
}

func TestPgzip(t *testing.T) {
	data := sample(t, 3<<20+12345)
	for _, tc := range []struct {
		level, block, n int
	}{
		{-1, 1 << 20, len(data)},
		{-1, 256 << 10, len(data)},
		{-1, 256 << 10, 2 << 20}, // ends on a block boundary: an empty final block follows
		{9, 1 << 20, len(data)},
		{1, 512 << 10, len(data)},
		{6, 1 << 20, 1000}, // one short block
		{-1, 1 << 20, 0},   // empty
	} {
		file := pgz(t, data[:tc.n], tc.level, tc.block, "disk.img")
		recipe, content, st, err := roundTrip(t, file)
		if err != nil {
			t.Fatalf("level %d block %d: %v", tc.level, tc.block, err)
		}
		if !bytes.Equal(content, data[:tc.n]) {
			t.Errorf("level %d block %d: content is not the decompressed data", tc.level, tc.block)
		}
		if st.Kept != 0 || len(recipe) > 200 {
			t.Errorf("level %d block %d: %d blocks kept, recipe %d bytes", tc.level, tc.block, st.Kept, len(recipe))
		}
		t.Logf("level %d block %d: %d -> %d bytes, %d blocks re-created, recipe %d bytes", tc.level, tc.block, tc.n, len(file), st.Recreated, len(recipe))
	}
}

// TestAlteredBlock changes a later block's deflate bytes so they still
// inflate to the same data but no longer re-create: the split keeps it and
// the rest verbatim and the output stays exact.
func TestAlteredBlock(t *testing.T) {
	data := sample(t, 2<<20)
	file := pgz(t, data, -1, 256<<10, "")
	// Block 3 starts where the third sync marker (00 00 ff ff) ends; make
	// it a stored block of the same data instead.
	var marks []int
	for i := 0; i+4 <= len(file); i++ {
		if bytes.Equal(file[i:i+4], []byte{0, 0, 0xff, 0xff}) {
			marks = append(marks, i+4)
		}
	}
	if len(marks) < 4 {
		t.Fatalf("found %d sync markers", len(marks))
	}
	// Replace the file's third block with stored blocks of its data.
	blk := data[3*256<<10 : 4*256<<10]
	var stored []byte
	for p := blk; len(p) > 0; {
		n := min(len(p), 65535)
		stored = append(stored, 0, byte(n), byte(n>>8), ^byte(n), ^byte(n>>8))
		stored = append(stored, p[:n]...)
		p = p[n:]
	}
	stored = append(stored, 0, 0, 0, 0xff, 0xff)
	// Locate block 4 (0-based 3) by its marker positions.
	alt := append(append(append([]byte{}, file[:marks[2]]...), stored...), file[marks[3]:]...)
	_, _, st, err := roundTrip(t, alt)
	if err != nil {
		t.Fatal(err)
	}
	if st.Recreated != 3 {
		t.Errorf("re-created %d blocks, want the 3 before the altered one", st.Recreated)
	}
}

// TestGNUGzip: streams GNU gzip made (as cosa and dracut write initramfs
// images) are re-created whole at each level; other streams (here Go's
// compress/gzip) are not split.
func TestGNUGzip(t *testing.T) {
	gz := testtool.Require(t, "gzip")
	data := sample(t, 1<<20+777)
	for _, level := range []string{"-1", "-6", "-9", "-4"} {
		cmd := exec.Command(gz, level, "-n", "-c")
		cmd.Stdin = bytes.NewReader(data)
		file, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		_, content, st, err := roundTrip(t, file)
		if err != nil {
			t.Fatalf("gzip %s: %v", level, err)
		}
		if !bytes.Equal(content, data) || st.Recreated != 1 || st.Verbatim > 100 {
			t.Fatalf("gzip %s: content %d bytes (want the %d decompressed), %+v", level, len(content), len(data), st)
		}
	}
	var other bytes.Buffer
	zw, _ := stdgzip.NewWriterLevel(&other, 5)
	zw.Write(data)
	zw.Close()
	_, _, st, err := formattest.Split(t, Split, other.Bytes())
	if !errors.Is(err, formats.ErrSkip) {
		t.Fatalf("Split of compress/gzip output = %v, want ErrSkip", err)
	}
	if st.Verbatim+st.Content != 0 {
		t.Fatalf("ErrSkip but recorded %+v", st)
	}
}

// TestMember: a pgzip stream inside another file splits as a member.
func TestMember(t *testing.T) {
	data := sample(t, 1<<20+5)
	gz := pgz(t, data, -1, 256<<10, "")
	file := append(append([]byte("HEADER--"), gz...), "TRAILER"...)
	f := formats.Format{Name: "gzip", Detect: func(r io.ReaderAt, n int64) bool {
		h := make([]byte, 18)
		k, _ := r.ReadAt(h, 0)
		return Detect(h[:k])
	}, Split: Split}
	var r, c bytes.Buffer
	b, _ := formats.NewBuilder(&r, &c, f)
	b.Verbatim(file[:8])
	if err := b.Member(bytes.NewReader(gz), int64(len(gz))); err != nil {
		t.Fatal(err)
	}
	b.Verbatim(file[8+len(gz):])
	st := b.Stats()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c.Bytes(), data) || st.Recreated != 5 {
		t.Fatalf("content %d bytes, %d re-created; want the %d decompressed bytes in 5 blocks", c.Len(), st.Recreated, len(data))
	}
	formattest.CheckAssemble(t, r.Bytes(), c.Bytes(), file)
}

func FuzzSplit(f *testing.F) {
	f.Add(pgz(f, sample(f, 300<<10), -1, 256<<10, "x"))
	f.Add([]byte{0x1f, 0x8b, 8, 0x1c, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 'a', 0, 'b', 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, file []byte) {
		if !Detect(file) {
			return
		}
		formattest.FuzzRoundTrip(t, Split, file)
	})
}
