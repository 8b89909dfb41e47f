package vhd

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/rehydrator/rehydrator/internal/formattest"
)

func TestStructSizes(t *testing.T) {
	if n := binary.Size(footer{}); n != footerSize {
		t.Errorf("footer is %d bytes, want %d", n, footerSize)
	}
	if n := binary.Size(dynamicHeader{}); n != headerSize {
		t.Errorf("dynamic header is %d bytes, want %d", n, headerSize)
	}
}

func TestDetect(t *testing.T) {
	dyn := synth{diskType: diskDynamic, blockSize: 4096, blocks: smallBlocks(3, 4096)}.build(t)
	fixed := synth{diskType: diskFixed, blocks: [][]byte{make([]byte, 4096)}}.build(t)
	for _, c := range []struct {
		name          string
		img           []byte
		detect, footr bool
	}{
		{"dynamic", dyn, true, true},
		{"fixed", fixed, false, true},
		{"short", []byte("conect"), false, false},
		{"qcow2", append([]byte("QFI\xfb"), make([]byte, 1020)...), false, false},
	} {
		if got := Detect(c.img); got != c.detect {
			t.Errorf("%s: Detect = %v", c.name, got)
		}
		if got := DetectFooter(c.img); got != c.footr {
			t.Errorf("%s: DetectFooter = %v", c.name, got)
		}
	}
}

// TestSynth round-trips small images of each kind and checks what becomes
// content.
func TestSynth(t *testing.T) {
	blocks := smallBlocks(6, 4096)
	var allocated []byte
	for _, b := range blocks {
		allocated = append(allocated, b...)
	}
	fixedDisk := bytes.Repeat([]byte("fixed disk data "), 8192) // 128 KiB
	clear(fixedDisk[64<<10:])                                   // a zero piece
	fixedDisk = append(fixedDisk, "tail"...)

	for _, c := range []struct {
		name    string
		img     []byte
		content []byte
	}{
		{"fixed", synth{diskType: diskFixed, blocks: [][]byte{fixedDisk}}.build(t),
			append(fixedDisk[:64<<10:64<<10], "tail"...)},
		{"fixed-smaller-size", synth{diskType: diskFixed, blocks: [][]byte{fixedDisk}, size: 64 << 10}.build(t),
			fixedDisk[:64<<10]},
		{"fixed-empty", synth{diskType: diskFixed, blocks: [][]byte{nil}}.build(t), nil},
		{"dynamic", synth{diskType: diskDynamic, blockSize: 4096, blocks: blocks}.build(t), allocated},
		{"differencing", synth{diskType: diskDifferencing, blockSize: 4096, blocks: blocks}.build(t), allocated},
		// The last block's bytes past the disk's size are not content.
		{"dynamic-short-size", synth{diskType: diskDynamic, blockSize: 4096, blocks: blocks, size: 4*4096 + 100}.build(t),
			allocated[:3*4096+100]},
		{"dynamic-no-blocks", synth{diskType: diskDynamic, blockSize: 2 << 20, blocks: make([][]byte, 10)}.build(t), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, content, _ := formattest.RoundTrip(t, Split, c.img)
			if !bytes.Equal(content, c.content) {
				t.Errorf("content is %d bytes, want %d", len(content), len(c.content))
			}
		})
	}

	// A dynamic disk cut short of its footer still splits: qemu opens it.
	img := synth{diskType: diskDynamic, blockSize: 4096, blocks: blocks}.build(t)
	formattest.RoundTrip(t, Split, img[:len(img)-footerSize])
}

// TestHostile: broken or hostile layouts give errors.
func TestHostile(t *testing.T) {
	be := binary.BigEndian
	base := func() []byte {
		return synth{diskType: diskDynamic, blockSize: 4096, blocks: smallBlocks(4, 4096)}.build(t)
	}
	batAt := 3 * sector
	setFooters := func(img []byte, at int, v uint64, width int) {
		for _, off := range []int{0, len(img) - footerSize} {
			if width == 4 {
				be.PutUint32(img[off+at:], uint32(v))
			} else {
				be.PutUint64(img[off+at:], v)
			}
		}
	}
	for _, c := range []struct {
		name, want string
		edit       func([]byte) []byte
	}{
		{"tiny", "shorter than", func(p []byte) []byte { return p[:100] }},
		{"no-footer", "no footer", func(p []byte) []byte { return append(p[footerSize:], make([]byte, 512)...) }},
		{"disk-type", "unknown disk type", func(p []byte) []byte { setFooters(p, 60, 7, 4); return p }},
		{"header-outside", "dynamic header", func(p []byte) []byte { setFooters(p, 16, 1<<40, 8); return p }},
		{"header-in-footer", "dynamic header", func(p []byte) []byte { setFooters(p, 16, uint64(len(p)-700), 8); return p }},
		{"header-on-copy", "cookie", func(p []byte) []byte { setFooters(p, 16, 0, 8); return p }},
		{"header-cookie", "cookie", func(p []byte) []byte { p[footerSize] = 'X'; return p }},
		{"block-size", "block size", func(p []byte) []byte { be.PutUint32(p[footerSize+32:], 3000); return p }},
		{"block-size-zero", "block size", func(p []byte) []byte { be.PutUint32(p[footerSize+32:], 0); return p }},
		{"huge-bat", "BAT of", func(p []byte) []byte { be.PutUint32(p[footerSize+28:], 0xFFFFFFF0); return p }},
		{"bat-outside", "BAT of", func(p []byte) []byte { be.PutUint64(p[footerSize+16:], 1<<50); return p }},
		{"bat-on-header", "BAT at 0x5fc overlaps dynamic header", func(p []byte) []byte {
			copy(p[batAt-4:], p[batAt:batAt+16])
			be.PutUint64(p[footerSize+16:], uint64(batAt-4))
			return p
		}},
		{"block-past-end", "runs past", func(p []byte) []byte { be.PutUint32(p[batAt:], uint32(len(p)/sector)); return p }},
		{"block-far", "runs past", func(p []byte) []byte { be.PutUint32(p[batAt:], 0xFFFFFFF0); return p }},
		{"block-into-footer", "runs past", func(p []byte) []byte { be.PutUint32(p[batAt:], uint32(len(p)/sector-2)); return p }},
		{"block-twice", "overlaps", func(p []byte) []byte { copy(p[batAt+4:batAt+8], p[batAt:batAt+4]); return p }},
		{"block-overlap", "overlaps", func(p []byte) []byte { be.PutUint32(p[batAt+4:], be.Uint32(p[batAt:])+1); return p }},
		{"block-on-bat", "overlaps", func(p []byte) []byte { be.PutUint32(p[batAt:], 3); return p }},
		{"block-on-copy", "overlaps", func(p []byte) []byte { be.PutUint32(p[batAt:], 0); return p }},
		{"fixed-too-big", "fixed disk of", func(p []byte) []byte {
			return synth{diskType: diskFixed, blocks: [][]byte{make([]byte, 4096)}, size: 4097}.build(t)
		}},
		{"fixed-no-end-footer", "without a footer", func(p []byte) []byte {
			img := synth{diskType: diskFixed, blocks: [][]byte{make([]byte, 4096)}}.build(t)
			return append(img[4096:], make([]byte, 4096)...) // footer at 0 only
		}},
		{"dynamic-no-copy", "footer copy", func(p []byte) []byte { clear(p[:footerSize]); return p }},
	} {
		t.Run(c.name, func(t *testing.T) {
			img := c.edit(base())
			_, _, _, err := formattest.Split(t, Split, img)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Split: %v, want an error with %q", err, c.want)
			}
		})
	}
}

// A BAT with many allocated entries is refused before it is held: entries
// beyond what fits in the file fail at the first one past.
func TestManyBlocks(t *testing.T) {
	img := synth{diskType: diskDynamic, blockSize: 512, blocks: make([][]byte, 4096)}.build(t)
	be := binary.BigEndian
	for i := 0; i < 4096; i++ {
		be.PutUint32(img[3*sector+4*i:], uint32(3+(4*4096)/sector+i)) // each block 2 sectors, overlapping the next
	}
	if _, _, _, err := formattest.Split(t, Split, img); err == nil {
		t.Fatal("Split accepted overlapping blocks")
	}
}
