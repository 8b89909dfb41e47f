package formattest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"unicode"

	"github.com/rehydrator/rehydrator/formats"
	"github.com/rehydrator/rehydrator/internal/zeros"
)

// fakeTB records the failure of what runs with it and stops it there, as
// testing.T does.
type fakeTB struct {
	testing.TB
	msg string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (f *fakeTB) Fatal(args ...any) {
	f.msg = fmt.Sprint(args...)
	runtime.Goexit()
}

// failure runs fn with a fakeTB and returns its failure message, "" if it
// did not fail.
func failure(t *testing.T, fn func(tb testing.TB)) string {
	f := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	return f.msg
}

// header8 is a toy format: 8 bytes verbatim, then content.
func header8(src io.ReaderAt, size int64, b *formats.Builder) error {
	if size < 8 {
		return errors.New("toy: short")
	}
	h := make([]byte, 8)
	if _, err := src.ReadAt(h, 0); err != nil {
		return err
	}
	if err := b.Verbatim(h); err != nil {
		return err
	}
	return b.Content(io.NewSectionReader(src, 8, size-8), size-8)
}

// lossy describes all but the last byte.
func lossy(src io.ReaderAt, size int64, b *formats.Builder) error {
	return b.Content(io.NewSectionReader(src, 0, size-1), size-1)
}

func TestFirstDiff(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"abc", "abc", 3}, {"abc", "abd", 2}, {"xbc", "abc", 0}, {"ab", "abc", 2}, {"abc", "a", 1},
	} {
		if got := FirstDiff([]byte(c.a), []byte(c.b)); got != c.want {
			t.Errorf("FirstDiff(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	img := []byte("HEADER!!the content")
	recipe, content, st := RoundTrip(t, header8, img)
	if string(content) != "the content" || st.Verbatim != 8 || st.Content != 11 || len(recipe) == 0 {
		t.Errorf("content %q, stats %+v", content, st)
	}
	dir := t.TempDir()
	_, content2, _ := RoundTripFile(t, header8, img, filepath.Join(dir, "out"))
	if !bytes.Equal(content2, content) || !bytes.Equal(ReadFile(t, filepath.Join(dir, "out")), img) {
		t.Error("RoundTripFile differs from RoundTrip")
	}
	if _, _, _, err := Split(t, header8, img[:7]); err == nil {
		t.Error("Split of a short file: no error")
	}
	FuzzRoundTrip(t, header8, img[:7]) // refused: no failure

	if msg := failure(t, func(tb testing.TB) { RoundTrip(tb, lossy, img) }); !strings.Contains(msg, "first difference at 0x12") {
		t.Errorf("RoundTrip of a lossy split: %q, want the first difference at 0x12", msg)
	}
	if msg := failure(t, func(tb testing.TB) { FuzzRoundTrip(tb, lossy, img) }); !strings.Contains(msg, "first difference at 0x12") {
		t.Errorf("FuzzRoundTrip of a lossy split: %q, want the first difference at 0x12", msg)
	}
	if msg := failure(t, func(tb testing.TB) { RoundTrip(tb, header8, img[:3]) }); !strings.Contains(msg, "Split: toy: short") {
		t.Errorf("RoundTrip of a refused file: %q", msg)
	}
	if msg := failure(t, func(tb testing.TB) {
		CheckAssemble(tb, recipe, content, append(bytes.Clone(img), 'x'))
	}); !strings.Contains(msg, "first difference at 0x13") {
		t.Errorf("CheckAssemble of a longer file: %q", msg)
	}
}

func TestBounded(t *testing.T) {
	img := make([]byte, 1000)
	readAll := func(src io.ReaderAt, size int64) (int, error) {
		return src.ReadAt(make([]byte, size), 0)
	}
	if n, err := Bounded(t, "readAll", img, 1000, 1<<20, readAll); n != 1000 || err != nil {
		t.Fatalf("Bounded returns %d, %v; want readAll's 1000, nil", n, err)
	}
	if msg := failure(t, func(tb testing.TB) { Bounded(tb, "readAll", img, 999, 1<<20, readAll) }); msg != "readAll read 1000 bytes of a 1000-byte file" {
		t.Errorf("over the read bound: %q", msg)
	}
	big := func(io.ReaderAt, int64) ([]byte, error) {
		return make([]byte, 4<<20), nil
	}
	if msg := failure(t, func(tb testing.TB) { Bounded(tb, "big", img, 0, 1<<20, big) }); !strings.HasPrefix(msg, "big allocated") {
		t.Errorf("over the allocation bound: %q", msg)
	}
}

func TestMixedDisk(t *testing.T) {
	const size = 8<<20 + 12345
	d := MixedDisk(size, 1)
	if len(d) != size || !bytes.Equal(d, MixedDisk(size, 1)) || bytes.Equal(d, MixedDisk(size, 2)) {
		t.Fatal("MixedDisk is not deterministic by seed, or not size bytes")
	}
	u := unit(size)
	if u != 128<<10 {
		t.Fatalf("unit %d, want 128 KiB", u)
	}
	if !zeros.Is(d[8*u:16*u]) || !zeros.Is(d[46*u:48*u]) {
		t.Error("the zero regions are not zero")
	}
	isText := func(p []byte) bool {
		return !bytes.ContainsFunc(p, func(r rune) bool {
			return !unicode.IsLower(r) && !unicode.IsDigit(r) && !strings.ContainsRune(" .\n", r)
		})
	}
	if at := TextAt(size); at != 40*u || !isText(d[at:44*u]) || !isText(d[64*u:]) || bytes.IndexByte(d[64*u:], 0) >= 0 {
		t.Error("the text regions are not text")
	}
	if at := RandomAt(size); at != 44*u || zeros.Is(d[at:at+512]) || isText(d[at:at+512]) {
		t.Error("the random region is not random")
	}
	// Every kind of piece, in the mixed regions.
	kinds := map[string]int{}
	for _, r := range [][2]int{{0, 8 * u}, {16 * u, 40 * u}, {48 * u, 64 * u}} {
		for off := r[0]; off < r[1]; off += Piece {
			p := d[off:min(off+Piece, r[1])]
			nz := len(p) - bytes.Count(p, []byte{0})
			switch {
			case nz == 0:
				kinds["zero"]++
			case nz == 1:
				kinds["one byte"]++
			case bytes.HasPrefix(p, []byte("REC:")):
				kinds["records"]++
			case isText(bytes.Trim(p, "\x00")) && p[0] == 0:
				kinds["partly zero"]++
			case isText(p):
				kinds["text"]++
			case p[1] == 0 && p[9] == 0 && p[17] == 0:
				kinds["table"]++
			default:
				kinds["random"]++
			}
		}
	}
	for _, k := range []string{"zero", "one byte", "records", "partly zero", "text", "table", "random"} {
		if kinds[k] == 0 {
			t.Errorf("no %s piece in %v", k, kinds)
		}
	}
	// Small sizes work, down to a disk of tail only.
	for _, n := range []int{0, 1, 511, 32 << 10, 2 << 20} {
		if got := MixedDisk(n, 7); len(got) != n {
			t.Errorf("MixedDisk(%d) is %d bytes", n, len(got))
		}
	}
}

func TestNonZeroPieces(t *testing.T) {
	disk := make([]byte, 10)
	disk[1], disk[9] = 'a', 'b'
	if got := string(NonZeroPieces(disk, 4)); got != "\x00a\x00\x00\x00b" {
		t.Errorf("NonZeroPieces = %q", got)
	}
	if got := NonZeroPieces(make([]byte, 100), 8); got != nil {
		t.Errorf("NonZeroPieces of zeros = %q", got)
	}
}

func TestCheckGuest(t *testing.T) {
	disk := []byte("disk")
	CheckGuest(t, []byte("disk\x00\x00"), disk, 6)
	for _, guest := range []string{"disk\x00", "disk\x00\x01", "dis", "Disk\x00\x00"} {
		if msg := failure(t, func(tb testing.TB) { CheckGuest(tb, []byte(guest), disk, 6) }); msg == "" {
			t.Errorf("CheckGuest accepts %q", guest)
		}
	}
}

// TestQemu: the qemu-img helpers make, check, describe and read back an
// image of a MixedDisk.
func TestQemu(t *testing.T) {
	QemuImg(t)
	dir := t.TempDir()
	const size = 1<<20 + 512
	disk := MixedDisk(size, 3)
	raw := WriteFile(t, filepath.Join(dir, "sub", "disk.raw"), disk)
	path := filepath.Join(dir, "disk.qcow2")
	img := Convert(t, raw, path, "qcow2", "cluster_size=65536", "-c")
	if !bytes.HasPrefix(img, []byte("QFI\xfb")) {
		t.Fatal("Convert did not make a qcow2 image")
	}
	Check(t, "-f", "qcow2", path)
	if info := Info(t, path); info != (ImageInfo{"qcow2", size}) {
		t.Errorf("Info = %+v", info)
	}
	CheckGuest(t, ConvertToRaw(t, path, filepath.Join(dir, "back.raw"), "qcow2"), disk, size)
}
