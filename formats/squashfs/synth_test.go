package squashfs

import (
	"bytes"
	"encoding/binary"
	"io"
	"slices"
	"testing"
)

// synth builds a small image by hand, every block stored uncompressed, with
// an inode of each of the 14 types (the extended symlink, device, fifo and
// socket inodes need xattrs on such files, which mksquashfs cannot be made
// to write from a test). It returns the image and the View it should give.
func synth() (img, view []byte) {
	const bs = 4096
	le := binary.LittleEndian
	var b bytes.Buffer
	b.Write(make([]byte, superSize))
	var want bytes.Buffer

	// Data: file A has two full blocks, the second sparse, and a tail in
	// the fragment block; file B has one partial block.
	blockA := bytes.Repeat([]byte("A"), bs)
	fragData := []byte("tail-of-A..tail-of-C")
	blockB := []byte("file B, one partial block")
	startA := uint64(b.Len())
	b.Write(blockA)
	startB := uint64(b.Len())
	b.Write(blockB)
	fragStart := uint64(b.Len())
	b.Write(fragData)

	want.Write(blockA)
	want.Write(make([]byte, bs))
	want.WriteString("tail-of-A")
	want.Write(blockB)
	want.WriteString("tail-of-C")

	// Inode table: one uncompressed metadata block.
	var it bytes.Buffer
	num := uint32(0)
	hdr := func(typ uint16) {
		num++
		var h [16]byte
		le.PutUint16(h[:], typ)
		le.PutUint16(h[2:], 0o644)
		le.PutUint32(h[12:], num)
		it.Write(h[:])
	}
	u16 := func(v uint16) { it.Write(le.AppendUint16(nil, v)) }
	u32 := func(v uint32) { it.Write(le.AppendUint32(nil, v)) }
	u64 := func(v uint64) { it.Write(le.AppendUint64(nil, v)) }

	hdr(typeLFile) // A: 2 blocks + 9-byte tail at fragment 0 offset 0
	u64(startA)
	u64(2*bs + 9)
	u64(bs) // sparse bytes
	u32(1)  // nlink
	u32(0)  // fragment
	u32(0)  // offset
	u32(0xffffffff)
	u32(bs | blockRawBit)
	u32(0)
	hdr(typeSymlink)
	u32(1)
	u32(3)
	it.WriteString("abc")
	hdr(typeLSymlink)
	u32(1)
	u32(2)
	it.WriteString("xy")
	u32(0)
	hdr(typeFile) // B: one partial block, no fragment
	u32(uint32(startB))
	u32(noFragment)
	u32(0)
	u32(uint32(len(blockB)))
	u32(uint32(len(blockB)) | blockRawBit)
	for _, t := range []uint16{typeBlkDev, typeChrDev} {
		hdr(t)
		u32(1)
		u32(0x0103)
	}
	for _, t := range []uint16{typeLBlkDev, typeLChrDev} {
		hdr(t)
		u32(1)
		u32(0x0103)
		u32(0)
	}
	for _, t := range []uint16{typeFifo, typeSocket} {
		hdr(t)
		u32(1)
	}
	for _, t := range []uint16{typeLFifo, typeLSocket} {
		hdr(t)
		u32(1)
		u32(0)
	}
	hdr(typeFile) // C: empty
	u32(0)
	u32(noFragment)
	u32(0)
	u32(0)
	hdr(typeFile) // D: tail only, fragment 0 offset 11
	u32(0)
	u32(0)
	u32(11)
	u32(9)
	hdr(typeLDir) // with one index entry
	u32(2)
	u32(3)
	u32(0)
	u32(0)
	u16(1)
	u16(0)
	u32(0xffffffff)
	u32(0)
	u32(0)
	u32(3)
	it.WriteString("name")
	hdr(typeDir) // root
	u32(0)
	u32(2)
	u16(3)
	u16(0)
	u32(num + 2)

	inodeTable := uint64(b.Len())
	b.Write(le.AppendUint16(nil, uint16(it.Len())|metaRawBit))
	b.Write(it.Bytes())
	dirTable := uint64(b.Len())
	b.Write(le.AppendUint16(nil, 3|metaRawBit))
	b.WriteString("dir")
	fragMeta := uint64(b.Len())
	b.Write(le.AppendUint16(nil, 16|metaRawBit))
	b.Write(le.AppendUint64(nil, fragStart))
	b.Write(le.AppendUint32(nil, uint32(len(fragData))|blockRawBit))
	b.Write(make([]byte, 4))
	fragTable := uint64(b.Len())
	b.Write(le.AppendUint64(nil, fragMeta))
	used := uint64(b.Len())
	b.Write(make([]byte, 4096-b.Len()%4096)) // padding, as mksquashfs does

	img = b.Bytes()
	le.PutUint32(img[offMagic:], magic)
	le.PutUint32(img[offInodes:], num)
	le.PutUint32(img[offBlockSize:], bs)
	le.PutUint32(img[offFragments:], 1)
	le.PutUint16(img[offComp:], uint16(Gzip))
	le.PutUint16(img[offBlockLog:], 12)
	le.PutUint16(img[offMajor:], 4)
	le.PutUint64(img[offBytesUsed:], used)
	le.PutUint64(img[offInodeTable:], inodeTable)
	le.PutUint64(img[offDirTable:], dirTable)
	le.PutUint64(img[offFragTable:], fragTable)
	return img, want.Bytes()
}

func TestSynth(t *testing.T) {
	img, want := synth()
	if !Detect(img) {
		t.Fatal("Detect: false")
	}
	im, err := Open(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	if im.Compression() != Gzip || im.BlockSize() != 4096 {
		t.Errorf("compression %v, block size %d", im.Compression(), im.BlockSize())
	}
	var inodes []uint32
	for _, f := range im.Layout() {
		inodes = append(inodes, f.Inode)
	}
	if want := []uint32{1, 4, 13, 14}; !slices.Equal(inodes, want) {
		t.Errorf("file inodes %v, want %v", inodes, want)
	}
	got, err := io.ReadAll(io.NewSectionReader(im.Files(), 0, im.Files().Size()))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("View:\n%q\nwant\n%q", got, want)
	}

	// Damage: every error is an error, never a panic.
	le := binary.LittleEndian
	for _, c := range []struct {
		name string
		mod  func(p []byte)
	}{
		{"magic", func(p []byte) { p[0] = 'x' }},
		{"block log", func(p []byte) { le.PutUint16(p[offBlockLog:], 13) }},
		{"block size", func(p []byte) { le.PutUint32(p[offBlockSize:], 3000) }},
		{"bytes used", func(p []byte) { le.PutUint64(p[offBytesUsed:], 1<<40) }},
		{"inode count", func(p []byte) { le.PutUint32(p[offInodes:], 1000) }},
		{"few inodes", func(p []byte) { le.PutUint32(p[offInodes:], 3) }},
		{"fragment count", func(p []byte) { le.PutUint32(p[offFragments:], 5000) }},
		{"tables swapped", func(p []byte) {
			le.PutUint64(p[offDirTable:], le.Uint64(p[offInodeTable:]))
		}},
		{"lzo", func(p []byte) { le.PutUint16(p[offComp:], uint16(LZO)) }},
		{"compression 9", func(p []byte) { le.PutUint16(p[offComp:], 9) }},
		{"block outside", func(p []byte) { le.PutUint64(p[le.Uint64(p[offInodeTable:])+2+16:], 1<<30) }},
	} {
		p := bytes.Clone(img)
		c.mod(p)
		if _, err := Open(bytes.NewReader(p), int64(len(p))); err == nil {
			t.Errorf("%s: Open succeeded", c.name)
		}
	}
	// A compressed data block that is not zlib: Open succeeds (blocks
	// are decoded lazily), reading fails.
	p := bytes.Clone(img)
	at := le.Uint64(p[offInodeTable:]) + 2 + 16 + 40
	le.PutUint32(p[at:], 4096)
	im, err = Open(bytes.NewReader(p), int64(len(p)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(io.NewSectionReader(im.Files(), 0, im.Files().Size())); err == nil {
		t.Error("reading a bad block: no error")
	}
}
