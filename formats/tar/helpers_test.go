package tar

import (
	gotar "archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rehydrator/rehydrator/formats"
	"github.com/rehydrator/rehydrator/internal/formattest"
)

// members lists img's members, failing the test on error.
func members(tb testing.TB, img []byte) []Member {
	tb.Helper()
	ms, err := Members(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		tb.Fatalf("Members: %v", err)
	}
	return ms
}

// expand re-creates a sparse member's file from its map and stored data.
func expand(m Member, stored []byte) []byte {
	out := make([]byte, m.RealSize)
	for _, f := range m.Map {
		copy(out[f.Offset:f.Offset+f.Length], stored[:f.Length])
		stored = stored[f.Length:]
	}
	return out
}

// crossCheck reads img with archive/tar and fails unless Members agrees on
// every entry: name, type, and the bytes (a sparse member's expanded file).
func crossCheck(tb testing.TB, img []byte) []Member {
	tb.Helper()
	ms := members(tb, img)
	tr := gotar.NewReader(bytes.NewReader(img))
	for i := 0; ; i++ {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			if i != len(ms) {
				tb.Fatalf("archive/tar lists %d entries, Members %d", i, len(ms))
			}
			break
		}
		if err != nil {
			tb.Fatalf("archive/tar, entry %d: %v", i, err)
		}
		if i >= len(ms) {
			tb.Fatalf("archive/tar lists more than Members' %d entries: %q", len(ms), h.Name)
		}
		m := ms[i]
		if m.Name != h.Name || m.Typeflag != h.Typeflag {
			tb.Fatalf("entry %d: Members says %q type %q, archive/tar %q type %q", i, m.Name, m.Typeflag, h.Name, h.Typeflag)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			tb.Fatalf("archive/tar, reading %q: %v", h.Name, err)
		}
		stored := img[m.Offset : m.Offset+m.Size]
		switch {
		case m.Typeflag == typeXGlobal:
			// archive/tar gives its records, not its data.
		case m.Sparse:
			if h.Size != m.RealSize || !bytes.Equal(expand(m, stored), data) {
				tb.Fatalf("sparse %q: Members' map and data (%d bytes, %d real) do not expand to archive/tar's %d bytes",
					m.Name, m.Size, m.RealSize, len(data))
			}
		case !bytes.Equal(stored, data):
			tb.Fatalf("%q: Members' %d bytes at %#x differ from archive/tar's %d", m.Name, m.Size, m.Offset, len(data))
		}
	}
	return ms
}

// storedData is every member's stored data, concatenated in order: the
// content stream of an archive split without nested formats.
func storedData(img []byte, ms []Member) []byte {
	var out []byte
	for _, m := range ms {
		if m.Typeflag != typeXGlobal {
			out = append(out, img[m.Offset:m.Offset+m.Size]...)
		}
	}
	return out
}

// checkArchive cross-checks img with archive/tar, round-trips it without
// nested formats, and checks that the content is the members' data and the
// recipe no more than the headers (plus padding ops).
func checkArchive(tb testing.TB, img []byte) ([]Member, formats.Stats) {
	tb.Helper()
	ms := crossCheck(tb, img)
	recipe, content, st := formattest.RoundTrip(tb, Split, img)
	if want := storedData(img, ms); !bytes.Equal(content, want) {
		tb.Fatalf("content (%d bytes) is not the members' data (%d bytes), first difference at %d", len(content), len(want), formattest.FirstDiff(content, want))
	}
	if st.Content+st.Zero+st.Verbatim != int64(len(img)) {
		tb.Fatalf("stats %+v do not add up to the archive's %d bytes", st, len(img))
	}
	tb.Logf("%d bytes, %d members: recipe %d bytes, content %d, verbatim %d, zero %d",
		len(img), len(ms), len(recipe), st.Content, st.Verbatim, st.Zero)
	return ms, st
}

// tree writes a directory of entries that every format stores: files
// small, empty, block-sized and not, text and binary, nested directories,
// a name that needs ustar's prefix, a symlink and a hard link.
func tree(tb testing.TB, dir string, long bool) {
	tb.Helper()
	rng := rand.New(rand.NewPCG(5, 6))
	bin := func(n int) []byte { return formattest.RandomBytes(rng, n) }
	formattest.WriteFile(tb, filepath.Join(dir, "small.txt"), []byte("a small text file\n"))
	formattest.WriteFile(tb, filepath.Join(dir, "empty"), nil)
	formattest.WriteFile(tb, filepath.Join(dir, "block"), bin(512))
	formattest.WriteFile(tb, filepath.Join(dir, "odd"), bin(513))
	formattest.WriteFile(tb, filepath.Join(dir, "sub", "dir", "file.bin"), bin(10000))
	formattest.WriteFile(tb, filepath.Join(dir, "sub", "text"), []byte(strings.Repeat("lorem ipsum dolor sit amet\n", 200)))
	if err := os.Symlink("small.txt", filepath.Join(dir, "link")); err != nil {
		tb.Fatal(err)
	}
	if err := os.Link(filepath.Join(dir, "small.txt"), filepath.Join(dir, "hard")); err != nil {
		tb.Fatal(err)
	}
	if !long {
		return
	}
	// 140 characters of directory and 90 of name: ustar's prefix.
	formattest.WriteFile(tb, filepath.Join(dir, strings.Repeat("d", 70), strings.Repeat("e", 69), strings.Repeat("f", 90)), bin(700))
}

// treeLong adds what only GNU and pax store: a 300-character name and a
// symlink target of 150.
func treeLong(tb testing.TB, dir string) {
	tb.Helper()
	formattest.WriteFile(tb, filepath.Join(dir, strings.Repeat("g", 200), strings.Repeat("h", 100)), []byte("long name\n"))
	if err := os.Symlink(strings.Repeat("t", 150), filepath.Join(dir, "longlink")); err != nil {
		tb.Fatal(err)
	}
}

// Synthetic archives, for hostile cases and fuzz seeds.

// block returns a header block with the given fields, its checksum set.
// size is the raw 12-byte size field (octal if it is a number).
func block(name string, typeflag byte, size any, magic string) []byte {
	p := make([]byte, blockSize)
	copy(p[offName:], name)
	copy(p[offMode:], "0000644\x00")
	copy(p[offUID:], "0000000\x00")
	copy(p[offGID:], "0000000\x00")
	switch s := size.(type) {
	case int:
		copy(p[offSize:], fmt.Sprintf("%011o\x00", s))
	case string:
		copy(p[offSize:offSize+lenSize], s)
	}
	copy(p[offMtime:], "14000000000\x00")
	p[offTypeflag] = typeflag
	copy(p[offMagic:], magic)
	if magic != "" {
		copy(p[265:], "root")
		copy(p[297:], "root")
	}
	setChecksum(p)
	return p
}

func setChecksum(p []byte) {
	copy(p[offChksum:offChksum+lenChksum], "        ")
	sum, _ := checksum(p)
	copy(p[offChksum:], fmt.Sprintf("%06o\x00 ", sum))
}

// padded returns data zero-padded to a block.
func padded(data []byte) []byte {
	return append(bytes.Clone(data), make([]byte, padLen(int64(len(data))))...)
}

// entry returns a header and its padded data.
func entry(name string, typeflag byte, magic string, data []byte) []byte {
	return append(block(name, typeflag, len(data), magic), padded(data)...)
}

var endMarker = make([]byte, 2*blockSize)

// oldGNUSparse returns an old GNU sparse entry of a file of real bytes with
// the fragments frags (data: their bytes, concatenated), its map in the
// header and extension blocks as GNU tar writes it.
func oldGNUSparse(name string, real int64, frags []Fragment, data []byte) []byte {
	hdr := block(name, typeSparse, len(data), magicGNU)
	put := func(p []byte, f Fragment) {
		copy(p, fmt.Sprintf("%011o\x00%011o\x00", f.Offset, f.Length))
	}
	copy(hdr[offGNURealSize:], fmt.Sprintf("%011o\x00", real))
	var exts [][]byte
	for i, f := range frags {
		switch {
		case i < gnuSparseEntries:
			put(hdr[offGNUSparse+i*sparseEntry:], f)
		default:
			j := (i - gnuSparseEntries) % extEntries
			if j == 0 {
				exts = append(exts, make([]byte, blockSize))
			}
			put(exts[len(exts)-1][j*sparseEntry:], f)
		}
	}
	if len(exts) > 0 {
		hdr[offGNUExtended] = 1
		for _, e := range exts[:len(exts)-1] {
			e[offExtended] = 1
		}
	}
	setChecksum(hdr)
	out := hdr
	for _, e := range exts {
		out = append(out, e...)
	}
	return append(out, padded(data)...)
}

func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
