package tar

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rehydrator/rehydrator/internal/formattest"
	"github.com/rehydrator/rehydrator/internal/testtool"
)

// manyFragments returns n fragments of a file, every other 1 KiB stored,
// their bytes, and the file's size.
func manyFragments(n int) ([]Fragment, []byte, int64) {
	var frags []Fragment
	var data []byte
	for i := range n {
		frags = append(frags, Fragment{int64(i) * 2048, 1024})
		data = append(data, bytes.Repeat([]byte{byte('a' + i%26)}, 1024)...)
	}
	return frags, data, int64(n)*2048 + 4096
}

// TestSynthSparse checks a hand-built old GNU sparse entry with three
// extension headers against archive/tar, and its map and content.
func TestSynthSparse(t *testing.T) {
	frags, data, real := manyFragments(60)
	img := concat(entry("a", typeReg, magicGNU, []byte("before")),
		oldGNUSparse("sparse", real, frags, data),
		entry("b", typeReg, magicGNU, []byte("after")), endMarker)
	ms := crossCheck(t, img)
	if len(ms) != 3 || !ms[1].Sparse || ms[1].RealSize != real || len(ms[1].Map) != len(frags) {
		t.Fatalf("members %+v", ms)
	}
	for i, f := range ms[1].Map {
		if f != frags[i] {
			t.Fatalf("fragment %d is %+v, want %+v", i, f, frags[i])
		}
	}
	recipe, content, st := formattest.RoundTrip(t, Split, img)
	if want := concat([]byte("before"), data, []byte("after")); !bytes.Equal(content, want) {
		t.Fatalf("content is not the members' data")
	}
	// Header, three extension blocks and two more headers verbatim.
	if st.Verbatim != 6*blockSize {
		t.Errorf("%d bytes verbatim, want %d", st.Verbatim, 6*blockSize)
	}
	t.Logf("recipe %d bytes, stats %+v", len(recipe), st)
}

// TestEnds checks what surrounds the end marker: none at all, one cut
// short, a record's worth of zeros, and data after it (kept verbatim).
func TestEnds(t *testing.T) {
	body := concat(entry("f", typeReg, magicPOSIX, []byte("data")), entry("g", typeReg, magicPOSIX, []byte("more")))
	junk := bytes.Repeat([]byte("junk"), 300)
	for _, c := range []struct {
		name     string
		img      []byte
		verbatim int64
	}{
		{"none", body, 2 * blockSize},
		{"short", concat(body, make([]byte, 300)), 2 * blockSize},
		{"record", concat(body, make([]byte, 10240-len(body))), 2 * blockSize},
		{"after", concat(body, endMarker, junk, make([]byte, 5000), junk[:10]), 2*blockSize + int64(len(junk)+10) + 80},
		{"lone-zero-block", concat(body, make([]byte, blockSize), body), 6 * blockSize},
	} {
		t.Run(c.name, func(t *testing.T) {
			ms := members(t, c.img)
			if len(ms) != 2 || ms[1].Name != "g" {
				t.Fatalf("members %+v", ms)
			}
			_, content, st := formattest.RoundTrip(t, Split, c.img)
			if string(content) != "datamore" {
				t.Fatalf("content %q", content)
			}
			// Junk lands in block-sized pieces: the zeros around it that
			// share its blocks are kept too.
			if st.Verbatim < c.verbatim-blockSize || st.Verbatim > c.verbatim+blockSize {
				t.Errorf("%d bytes verbatim, want about %d", st.Verbatim, c.verbatim)
			}
		})
	}
}

// rec formats a pax record.
func rec(k, v string) string {
	n := len(k) + len(v) + 3
	n += len(strconv.Itoa(n))
	if len(strconv.Itoa(n)) != len(strconv.Itoa(n-1)) {
		n++
	}
	return fmt.Sprintf("%d %s=%s\n", n, k, v)
}

// TestHostile feeds headers a hostile or broken archive might hold: each
// must give an error from Split and Members, not a panic or a hang.
func TestHostile(t *testing.T) {
	gnu := func(name string, typeflag byte, size any) []byte { return block(name, typeflag, size, magicGNU) }
	badsum := gnu("f", typeReg, 0)
	badsum[0] = 'g'
	frags, data, real := manyFragments(30)
	sparse := func(edit func(h []byte)) []byte {
		img := oldGNUSparse("s", real, frags, data)
		edit(img[:blockSize])
		setChecksum(img[:blockSize])
		return concat(img, endMarker)
	}
	paxEntry := func(recs string, file []byte) []byte {
		return concat(entry("pax", typeXHeader, magicPOSIX, []byte(recs)), entry("f", typeReg, magicPOSIX, file), endMarker)
	}
	endless := gnu("s", typeSparse, 0)
	endless[offGNUExtended] = 1
	setChecksum(endless)
	for range 50 {
		ext := make([]byte, blockSize)
		ext[offExtended] = 1
		endless = append(endless, ext...)
	}
	huge := make([]byte, maxSpecial+4*blockSize)
	sparse1 := rec(paxSparseMajor, "1") + rec(paxSparseMinor, "0")
	for _, c := range []struct {
		name string
		img  []byte
		want string
	}{
		{"checksum", concat(badsum, endMarker), "checksum mismatch"},
		{"checksum-field", concat(func() []byte { p := gnu("f", typeReg, 0); copy(p[offChksum:], "abcdefg"); return p }(), endMarker), "checksum field"},
		{"size-octal", concat(gnu("f", typeReg, "0000000009x\x00"), endMarker), "size field"},
		{"size-base256-overflow", concat(gnu("f", typeReg, "\x80"+strings.Repeat("\xff", 11)), endMarker), "size field"},
		{"size-base256-negative", concat(gnu("f", typeReg, strings.Repeat("\xff", 12)), endMarker), "size field"},
		{"size-base256-past-end", concat(gnu("f", typeReg, "\x80\x00\x00\x00\x7f"+strings.Repeat("\xff", 7)), endMarker), "past the end"},
		{"size-octal-past-end", concat(gnu("f", typeReg, "77777777777\x00"), endMarker), "past the end"},
		{"data-cut-short", gnu("f", typeReg, 1000)[:blockSize], "past the end"},
		{"padding-cut-short", concat(gnu("f", typeReg, 100), make([]byte, 100)), "past the end"},
		{"header-cut-short", concat(entry("f", typeReg, magicGNU, []byte("x")), gnu("g", typeReg, 0)[:300]), "cut short"},
		{"pax-too-long", concat(block("pax", typeXHeader, len(huge), magicPOSIX), huge), "more than"},
		{"longname-too-long", concat(gnu("././@LongLink", typeLongName, len(huge)), huge), "more than"},
		{"pax-record", paxEntry("garbage", nil), "bad length"},
		{"pax-record-length", paxEntry("99 path=x\n", nil), "bad length"},
		{"pax-record-newline", paxEntry("11 path=xyz", nil), "newline"},
		{"pax-size-negative", paxEntry(rec("size", "-50"), nil), "pax size"},
		{"pax-size-overflow", paxEntry(rec("size", "99999999999999999999"), nil), "pax size"},
		{"pax-size-past-end", paxEntry(rec("size", "1000000"), nil), "past the end"},
		{"sparse-not-gnu", concat(block("s", typeSparse, 0, magicPOSIX), endMarker), "not in a GNU header"},
		{"sparse-realsize", sparse(func(h []byte) { copy(h[offGNURealSize:], strings.Repeat("\xff", 12)) }), "real size"},
		{"sparse-past-realsize", sparse(func(h []byte) { copy(h[offGNURealSize:], "00000001000\x00") }), "ends past the file"},
		{"sparse-overlap", sparse(func(h []byte) { copy(h[offGNUSparse+sparseEntry:], "00000000001") }), "overlaps"},
		{"sparse-entry", sparse(func(h []byte) { copy(h[offGNUSparse:], "0000000000z") }), "map entry"},
		{"sparse-sum", sparse(func(h []byte) { copy(h[offSize:], "00000000001\x00") }), "fragments"},
		{"sparse-endless-extensions", endless, "extension header"},
		{"pax-sparse-1.0-count", paxEntry(sparse1, padded([]byte("99999999999999\n"))), "sparse map"},
		{"pax-sparse-1.0-entry", paxEntry(sparse1+rec(paxSparseRealSize, "100"), padded([]byte("1\n50\n51\n"))), "ends past the file"},
		{"pax-sparse-1.0-no-map", paxEntry(sparse1, nil), "sparse map"},
		{"pax-sparse-0.1-count", paxEntry(rec(paxSparseMap, "0,10")+rec(paxSparseNumBlocks, "2"), make([]byte, 10)), "numbers"},
		{"pax-sparse-dir", concat(entry("pax", typeXHeader, magicPOSIX, []byte(rec(paxSparseMap, "0,10"))), block("d", typeDir, 0, magicPOSIX), endMarker), "cannot be sparse"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, _, err := formattest.Split(t, Split, c.img)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Split: error %v, want one saying %q", err, c.want)
			}
			if _, err := Members(bytes.NewReader(c.img), int64(len(c.img))); err == nil {
				t.Fatalf("Members: no error")
			}
		})
	}
}

// TestDetect: tar headers of every flavour are detected; random blocks,
// zeros, text and the first sectors of disk images and other containers
// are not.
func TestDetect(t *testing.T) {
	for _, c := range []struct {
		name string
		p    []byte
		want bool
	}{
		{"posix", block("f", typeReg, 5, magicPOSIX), true},
		{"gnu", block("f", typeReg, 5, magicGNU), true},
		{"gnu-base256-size", block("f", typeReg, "\x80\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x00", magicGNU), true},
		{"v7", block("f", typeReg, 5, ""), true},
		{"v7-nul-type", block("f", typeRegA, 5, ""), true},
		{"zero", make([]byte, blockSize), false},
		{"short", block("f", typeReg, 5, magicPOSIX)[:blockSize-1], false},
		{"bad-checksum", func() []byte { p := block("f", typeReg, 5, magicPOSIX); p[1] = 'x'; return p }(), false},
		{"other-version", block("f", typeReg, 5, "ustar\x00xx"), false},
		{"bad-mtime", func() []byte {
			p := block("f", typeReg, 5, magicGNU)
			copy(p[offMtime:], "9")
			setChecksum(p)
			return p
		}(), false},
		{"v7-empty-name", block("", typeReg, 5, ""), false},
		{"v7-control-name", block("a\nb", typeReg, 5, ""), false},
		{"v7-junk-after-name", func() []byte { p := block("f", typeReg, 5, ""); p[50] = 'x'; setChecksum(p); return p }(), false},
		{"v7-type-x", block("f", typeXHeader, 5, ""), false},
		{"v7-uname", func() []byte { p := block("f", typeReg, 5, ""); copy(p[265:], "root"); setChecksum(p); return p }(), false},
		{"v7-base256", block("f", typeReg, "\x80\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x05", ""), false},
		{"text", []byte(strings.Repeat("<?xml version=\"1.0\"?> some text\n", 20)), false},
		{"gzip", append([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3}, make([]byte, 600)...), false},
	} {
		if got := Detect(c.p); got != c.want {
			t.Errorf("%s: Detect = %v, want %v", c.name, got, c.want)
		}
	}

	rng := rand.New(rand.NewPCG(9, 10))
	p := make([]byte, blockSize)
	for i := range 20000 {
		for j := range p {
			p[j] = byte(rng.Uint32())
		}
		if i%2 == 1 {
			// Sparse random: mostly zeros, as disk sectors are.
			for j := range p {
				if rng.IntN(8) != 0 {
					p[j] = 0
				}
			}
		}
		if Detect(p) {
			t.Fatalf("Detect = true on random block %q", p)
		}
	}

	// First sectors of disk images and containers real tools write.
	dir := t.TempDir()
	first := func(name string) []byte {
		return formattest.ReadFile(t, filepath.Join(dir, name))[:4096]
	}
	sector := func(name string, tool string, args ...string) {
		t.Run(name, func(t *testing.T) {
			testtool.Run(t, testtool.Require(t, tool), args...)
			img := first(name)
			for off := 0; off < len(img); off += blockSize {
				if Detect(img[off:]) {
					t.Errorf("Detect = true on %s at %#x", name, off)
				}
			}
		})
	}
	raw := func(name string, size int64, fill bool) string {
		p := filepath.Join(dir, name)
		data := make([]byte, size)
		if fill {
			for i := range data {
				data[i] = byte(rng.Uint32())
			}
		}
		formattest.WriteFile(t, p, data)
		return p
	}
	sector("vmdk", "qemu-img", "create", "-q", "-f", "vmdk", "-o", "subformat=streamOptimized", filepath.Join(dir, "vmdk"), "16M")
	sector("qcow2", "qemu-img", "create", "-q", "-f", "qcow2", filepath.Join(dir, "qcow2"), "16M")
	sector("vfat", "mkfs.vfat", raw("vfat", 4<<20, false))
	sector("gpt", "sgdisk", "-n", "1:2048:4095", "-n", "2:4096:0", "-t", "1:ef00", raw("gpt", 8<<20, true))
	t.Run("mbr", func(t *testing.T) {
		sfdisk := testtool.Require(t, "sfdisk")
		path := raw("mbr", 8<<20, true)
		// Random boot code; sfdisk writes the table and signature.
		cmd := exec.Command(sfdisk, "-q", path)
		cmd.Stdin = strings.NewReader("label: dos\n,4M,83\n,,83\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("sfdisk: %v\n%s", err, out)
		}
		if Detect(first("mbr")) {
			t.Error("Detect = true on an MBR")
		}
	})
}
