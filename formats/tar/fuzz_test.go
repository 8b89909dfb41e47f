package tar

import (
	gotar "archive/tar"
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/rehydrator/rehydrator/internal/formattest"
)

// goArchives returns small archives archive/tar writes: ustar, pax with
// long names, records and a global header, GNU with long names and
// base-256 numbers.
func goArchives(tb testing.TB) [][]byte {
	tb.Helper()
	mtime := time.Unix(1700000000, 0)
	var out [][]byte
	for _, f := range []gotar.Format{gotar.FormatUSTAR, gotar.FormatPAX, gotar.FormatGNU} {
		var buf bytes.Buffer
		w := gotar.NewWriter(&buf)
		hdrs := []*gotar.Header{
			{Name: "dir/", Typeflag: gotar.TypeDir, Mode: 0o755, ModTime: mtime},
			{Name: "dir/file", Typeflag: gotar.TypeReg, Mode: 0o644, Size: 600, ModTime: mtime},
			{Name: "link", Typeflag: gotar.TypeSymlink, Linkname: "dir/file", ModTime: mtime},
			{Name: "empty", Typeflag: gotar.TypeReg, ModTime: mtime},
		}
		switch f {
		case gotar.FormatPAX:
			hdrs = append([]*gotar.Header{{Typeflag: gotar.TypeXGlobalHeader, PAXRecords: map[string]string{"comment": "global"}}}, hdrs...)
			hdrs = append(hdrs,
				&gotar.Header{Name: strings.Repeat("p", 300), Typeflag: gotar.TypeReg, Size: 10, ModTime: mtime, PAXRecords: map[string]string{"comment": "x"}},
				&gotar.Header{Name: "ü-utf8", Typeflag: gotar.TypeReg, Size: 3, ModTime: mtime})
		case gotar.FormatGNU:
			hdrs = append(hdrs,
				&gotar.Header{Name: strings.Repeat("n", 200), Typeflag: gotar.TypeReg, Size: 10, ModTime: mtime},
				&gotar.Header{Name: "l", Typeflag: gotar.TypeSymlink, Linkname: strings.Repeat("k", 150), ModTime: mtime},
				&gotar.Header{Name: "bigid", Typeflag: gotar.TypeReg, Uid: 1 << 30, Size: 1, ModTime: mtime})
		}
		for _, h := range hdrs {
			h.Format = f
			if err := w.WriteHeader(h); err != nil {
				tb.Fatalf("%v: %s: %v", f, h.Name, err)
			}
			if h.Typeflag == gotar.TypeReg {
				if _, err := w.Write(bytes.Repeat([]byte{'d'}, int(h.Size))); err != nil {
					tb.Fatal(err)
				}
			}
		}
		if err := w.Close(); err != nil {
			tb.Fatal(err)
		}
		out = append(out, buf.Bytes())
	}
	return out
}

// TestGoArchives cross-checks and round-trips the archives archive/tar
// writes, and a pax size record that overrides the header's size field.
func TestGoArchives(t *testing.T) {
	for _, img := range goArchives(t) {
		checkArchive(t, img)
	}
	img := concat(entry("pax", typeXHeader, magicPOSIX, []byte(rec("size", "5")+rec("path", "renamed"))),
		block("f", typeReg, 0, magicPOSIX), padded([]byte("12345")), endMarker)
	ms, _ := checkArchive(t, img)
	if len(ms) != 1 || ms[0].Name != "renamed" || ms[0].Size != 5 {
		t.Fatalf("members %+v: want renamed, 5 bytes", ms)
	}
}

// FuzzSplit: Split and Members never panic and agree on which archives
// they accept, accepted members lie inside the archive, and when Split
// accepts an archive, Assemble gives it back exactly.
//
// Run with -fuzzminimizetime 1x: with the default (60s) a short run spends
// its time minimizing new inputs and reports almost no executions.
func FuzzSplit(f *testing.F) {
	for _, img := range goArchives(f) {
		f.Add(img)
	}
	frags, data, real := manyFragments(30)
	f.Add(concat(oldGNUSparse("s", real, frags, data), entry("f", typeReg, magicGNU, []byte("x")), endMarker))
	f.Add(concat(oldGNUSparse("s", 8192, []Fragment{{0, 512}, {4096, 512}, {8192, 0}}, make([]byte, 1024)), endMarker))
	sparse1 := rec(paxSparseMajor, "1") + rec(paxSparseMinor, "0") + rec(paxSparseRealSize, "4096") + rec(paxSparseName, "real")
	f.Add(concat(entry("pax", typeXHeader, magicPOSIX, []byte(sparse1)),
		entry("f", typeReg, magicPOSIX, concat(padded([]byte("2\n0\n10\n2048\n5\n")), []byte("0123456789abcde"))), endMarker))
	f.Add(concat(entry("pax", typeXHeader, magicPOSIX, []byte(rec(paxSparseMap, "0,3,100,2")+rec(paxSparseNumBlocks, "2")+rec(paxSparseSize, "200"))),
		entry("f", typeReg, magicPOSIX, []byte("abcde")), endMarker))
	f.Add(concat(entry("f", typeReg, "", []byte("v7 file")), entry("d/", typeRegA, "", nil), endMarker))
	// Hostile headers.
	endless := block("s", typeSparse, 0, magicGNU)
	endless[offGNUExtended] = 1
	setChecksum(endless)
	ext := make([]byte, blockSize)
	ext[offExtended] = 1
	f.Add(concat(endless, ext, ext, ext))
	f.Add(concat(block("f", typeReg, "\x80\x00\x00\x00\x7f"+strings.Repeat("\xff", 7), magicGNU), endMarker))
	f.Add(concat(block("f", typeReg, strings.Repeat("\xff", 12), magicGNU), endMarker))
	f.Add(concat(block("f", typeReg, "\x80"+strings.Repeat("\xff", 11), magicGNU), endMarker))
	f.Add(concat(oldGNUSparse("s", 10, []Fragment{{0, 512}, {4096, 512}}, make([]byte, 1024)), endMarker))
	f.Add(concat(entry("pax", typeXHeader, magicPOSIX, []byte(rec("size", "99999999"))), block("f", typeReg, 0, magicPOSIX), endMarker))
	f.Add(concat(entry("f", typeReg, magicPOSIX, []byte("data")), endMarker, []byte("trailing junk")))

	f.Fuzz(func(t *testing.T, img []byte) {
		ms, merr := Members(bytes.NewReader(img), int64(len(img)))
		recipe, content, _, err := formattest.Split(t, Split, img)
		if (err == nil) != (merr == nil) {
			t.Fatalf("Split says %v, Members %v", err, merr)
		}
		if err != nil {
			return
		}
		for _, m := range ms {
			if m.Offset < 0 || m.Size < 0 || m.Offset+m.Size > int64(len(img)) {
				t.Fatalf("member %q: %d bytes at %d, outside the %d-byte archive", m.Name, m.Size, m.Offset, len(img))
			}
		}
		formattest.CheckAssemble(t, recipe, content, img)
	})
}
