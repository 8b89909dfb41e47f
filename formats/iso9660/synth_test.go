package iso9660

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/rehydrator/rehydrator/formats"
	"github.com/rehydrator/rehydrator/internal/formattest"
)

func TestDetect(t *testing.T) {
	img := synth(false)
	if !Detect(img[:64<<10]) {
		t.Error("Detect: false on an image")
	}
	if Detect(img[:descStart*blockSize+5]) {
		t.Error("Detect: true on a header too short")
	}
	img[descStart*blockSize] = vdSupplementary
	if Detect(img) {
		t.Error("Detect: true without a primary descriptor at 32 KiB")
	}
	if Detect(make([]byte, 64<<10)) {
		t.Error("Detect: true on zeros")
	}
}

func TestSynthFiles(t *testing.T) {
	for _, boot := range []bool{true, false} {
		got, err := Files(bytes.NewReader(synth(boot)), sBlocks*blockSize)
		if err != nil {
			t.Fatal(err)
		}
		want := synthFiles
		if !boot {
			want = slices.DeleteFunc(slices.Clone(want), func(f File) bool { return strings.HasPrefix(f.Path, "[BOOT]") })
		}
		if !slices.Equal(got, want) {
			t.Errorf("boot %v: Files:\n got %v\nwant %v", boot, got, want)
		}
	}
}

func TestSynthSplit(t *testing.T) {
	img := synth(true)
	recipe, content, st := formattest.RoundTrip(t, Split, img)
	var want []byte
	for _, f := range synthFiles {
		want = append(want, img[f.Offset:f.Offset+f.Size]...)
	}
	if !bytes.Equal(content, want) {
		t.Errorf("content: %d bytes, want the %d bytes of the files in order", len(content), len(want))
	}
	t.Logf("%d-byte image: recipe %d bytes, %d verbatim, %d zero, %d content", len(img), len(recipe), st.Verbatim, st.Zero, st.Content)
}

// TestSplitMember: file extents go through Builder.Member, so a nested
// format describes them.
func TestSplitMember(t *testing.T) {
	img := synth(true)
	hello := img[sHello*blockSize:][:100]
	nested := formats.Format{
		Name: "hello",
		Detect: func(src io.ReaderAt, size int64) bool {
			p := make([]byte, 100)
			_, err := src.ReadAt(p, 0)
			return err == nil && bytes.Equal(p, hello)
		},
		Split: func(src io.ReaderAt, size int64, b *formats.Builder) error {
			p := make([]byte, size)
			if _, err := src.ReadAt(p, 0); err != nil {
				return err
			}
			return b.Verbatim(p)
		},
	}
	_, content, _ := formattest.RoundTrip(t, Split, img, nested)
	if bytes.Contains(content, hello) {
		t.Error("hello.txt is in the content: not described by the nested format")
	}
	if big := img[sBig*blockSize:][:2*blockSize+1000]; !bytes.Contains(content, big) {
		t.Error("big.dat is not in the content")
	}
}

// TestSynthOverlap: extents that share bytes are described once.
func TestSynthOverlap(t *testing.T) {
	img := synth(false)
	// c.txt (block 35) grows over split.dat's first section (block 36),
	// which then is partly past it; joliet-only.txt moves into c.txt.
	patch(t, img, sSub, "C.TXT;1", func(r []byte) { both32(r[drSize:], blockSize+1000) })
	patch(t, img, sJolietRoot, string(ucs2("joliet-only.txt;1")), func(r []byte) { both32(r[drExtent:], sC) })
	files, err := Files(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	_, content, _ := formattest.RoundTrip(t, Split, img)
	end := int64(sSplit1*blockSize + blockSize)
	var want []byte
	var pos int64
	for _, f := range files {
		if f.Offset+f.Size <= pos {
			continue
		}
		want = append(want, img[max(pos, f.Offset):f.Offset+f.Size]...)
		pos = f.Offset + f.Size
	}
	if !bytes.Equal(content, want) {
		t.Errorf("content: %d bytes, want %d", len(content), len(want))
	}
	if pos < end {
		t.Errorf("files end at %#x, want %#x", pos, end)
	}
}

// patch changes the record named name in the directory block.
func patch(tb testing.TB, img []byte, block int, name string, f func(r []byte)) {
	tb.Helper()
	p := img[block*blockSize:][:blockSize]
	for at := 0; at < blockSize && p[at] != 0; at += int(p[at]) {
		r := p[at : at+int(p[at])]
		if string(r[drName:drName+int(r[drNameLen])]) == name {
			f(r)
			return
		}
	}
	tb.Fatalf("no record %q in block %d", name, block)
}

// hostile returns synthetic images broken in the ways a hostile image
// may be, each with whether Files must fail.
func hostile(tb testing.TB) []struct {
	name string
	img  []byte
	fail bool
} {
	var out []struct {
		name string
		img  []byte
		fail bool
	}
	add := func(name string, fail bool, f func(img []byte)) {
		img := synth(true)
		f(img)
		out = append(out, struct {
			name string
			img  []byte
			fail bool
		}{name, img, fail})
	}
	le := binary.LittleEndian
	add("file past the end", true, func(img []byte) {
		patch(tb, img, sRoot, "HELLO.TXT;1", func(r []byte) { both32(r[drSize:], 0xffffffff) })
	})
	add("file extent past the end", true, func(img []byte) {
		patch(tb, img, sRoot, "EFI.IMG;1", func(r []byte) { both32(r[drExtent:], 0xfffffff0) })
	})
	add("huge root", true, func(img []byte) { both32(img[sPVD*blockSize+offRoot+drSize:], 0xffffffff) })
	add("root loop", false, func(img []byte) {
		patch(tb, img, sSub, "C.TXT;1", func(r []byte) {
			both32(r[drExtent:], sRoot)
			r[drFlags] = flagDir
		})
	})
	add("overlapping directories", true, func(img []byte) {
		patch(tb, img, sSub, "SELF", func(r []byte) {
			both32(r[drExtent:], sRoot-1)
			both32(r[drSize:], 2*blockSize)
		})
	})
	add("relocation loop", false, func(img []byte) {
		patch(tb, img, sRoot, "DEEP", func(r []byte) {
			cl := bytes.Index(r, []byte("CL\x0c\x01"))
			both32(r[cl+4:], sRoot)
		})
	})
	// hello.txt's continuation area holds a CE entry that goes on to
	// block, off, n.
	continued := func(img []byte, block, off, n uint32) {
		patch(tb, img, sRoot, "HELLO.TXT;1", func(r []byte) {
			ce := bytes.Index(r, []byte("CE\x1c\x01"))
			copy(r[ce:], ceEntry(sCont, 100, 28))
		})
		copy(img[sCont*blockSize+100:], ceEntry(block, off, n))
	}
	add("continuation loop", true, func(img []byte) { continued(img, sCont, 100, 28) })
	add("continuation past the block", true, func(img []byte) { continued(img, sCont, 2000, 100) })
	add("continuation past the end", true, func(img []byte) { continued(img, 0xffffffff, 0, 100) })
	add("record across a block", true, func(img []byte) {
		p := img[sSub*blockSize:][:blockSize]
		at := 0
		for p[at] != 0 {
			at += int(p[at])
		}
		filler := rec([]byte("F.TXT;1"), sC, 10, 0, make([]byte, 210))
		for ; at+len(filler) <= blockSize; at += len(filler) {
			copy(p[at:], filler)
		}
		copy(p[at:], filler)
	})
	add("short record", true, func(img []byte) { img[sSub*blockSize] = 20 })
	add("block size 512", true, func(img []byte) { le.PutUint16(img[sPVD*blockSize+offBlockSize:], 512) })
	add("no terminator", true, func(img []byte) { img[sTerm*blockSize] = vdSupplementary })
	add("bad catalog checksum", true, func(img []byte) { img[sCatalog*blockSize+4]++ })
	add("endless catalog", true, func(img []byte) {
		le.PutUint16(img[sCatalog*blockSize+2*entrySize+2:], 0xffff)
		for i := 3; i < blockSize/entrySize; i++ {
			img[sCatalog*blockSize+i*entrySize] = 0
		}
	})
	add("catalog past the end", true, func(img []byte) { le.PutUint32(img[sBoot*blockSize+offCatalog:], 0xffffffff) })
	add("boot image past the end", true, func(img []byte) {
		le.PutUint32(img[sCatalog*blockSize+entrySize+8:], sBlocks)
	})
	add("long name", true, func(img []byte) {
		// A name continued in its continuation area, again and again.
		var area []byte
		for len(area)+255+28 < blockSize {
			area = append(area, nmEntry(1, strings.Repeat("n", 250))...)
		}
		area = append(area, ceEntry(sCont, 0, uint32(len(area)+28))...)
		copy(img[sCont*blockSize:], area)
		patch(tb, img, sRoot, "HELLO.TXT;1", func(r []byte) { copy(r[len(r)-28:], ceEntry(sCont, 0, uint32(len(area)))) })
	})
	out = append(out, struct {
		name string
		img  []byte
		fail bool
	}{"truncated", synth(true)[:sEFI*blockSize], true})
	return out
}

func TestHostile(t *testing.T) {
	for _, h := range hostile(t) {
		files, err := Files(bytes.NewReader(h.img), int64(len(h.img)))
		if h.fail {
			if err == nil {
				t.Errorf("%s: Files succeeded: %v", h.name, files)
			} else if !errors.Is(err, errFormat) && !errors.Is(err, errShort) {
				t.Errorf("%s: Files: %v, not a format error", h.name, err)
			}
			if _, _, _, err := formattest.Split(t, Split, h.img); err == nil {
				t.Errorf("%s: Split succeeded", h.name)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: Files: %v", h.name, err)
			continue
		}
		formattest.RoundTrip(t, Split, h.img)
	}
}
