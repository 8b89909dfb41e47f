// Package vhd splits Microsoft Virtual Hard Disk images (VHD: fixed,
// dynamic and differencing, as qemu-img -O vpc, Hyper-V and the Azure
// tools write them) into a content stream and a recipe for package
// formats.
//
// The layout, after Microsoft's "Virtual Hard Disk Image Format
// Specification" (version 1.0, October 2006) and qemu's block/vpc.c; all
// numbers are big-endian, offsets are in bytes unless said otherwise:
//
//	fixed disk      the disk's data (current size bytes), then the footer
//	dynamic disk    a copy of the footer (512 bytes) at 0,
//	                the dynamic header (1024 bytes) at the footer's data offset,
//	                the block allocation table (BAT) at the header's table offset,
//	                blocks, anywhere after that,
//	                the footer (512 bytes) at the end
//
// The footer (type footer) starts with the cookie "conectix" and tells the
// disk type (2 fixed, 3 dynamic, 4 differencing), the disk's current size
// and, for a dynamic disk, where the dynamic header is. Its checksum is the
// one's complement of the sum of its bytes, the checksum field left out.
// qemu-img writes creator application "qemu" ("qem2" with force_size, which
// keeps the size as given instead of rounding it to a CHS geometry).
//
// The dynamic header (type dynamicHeader, cookie "cxsparse") gives the
// BAT's offset, its number of entries (one per block) and the block size (a
// power of two; 2 MiB by default). The BAT is an array of uint32 sector
// numbers; 0xFFFFFFFF marks a block not allocated, which reads as zeros (or
// as the parent's data, for a differencing disk). An allocated block at
// sector s is a sector bitmap (one bit per sector of the block, set where
// the block has data, padded to a multiple of 512 bytes) at s*512 followed
// by the block's data. qemu lays out footer copy, header, BAT (padded with
// 0xFF to a sector) and blocks in that order and appends blocks as the disk
// is written; a differencing disk adds parent locators, whose data lies
// between the other structures.
//
// Split describes the footers, the dynamic header, the BAT, the sector
// bitmaps and every byte outside a block verbatim (runs of zeros as zeros),
// and block data as content, except that each 64 KiB piece of a block
// (counted from the block's start) that is all zero is recorded as zeros:
// the content stream is the disk's non-zero data, in file order. A fixed
// disk's data is one block at offset 0. A block's bytes past the disk's
// current size (the end of the last block, or of a fixed disk's data
// before its footer) are not disk data and are described like the bytes
// between blocks. The footer at the end tells the disk type and size; a
// dynamic disk cut short of it (qemu opens those) is read by its copy at 0.
//
// Checksums are not checked: footer and header are kept verbatim, so a
// wrong checksum comes back as it was. The layout is checked instead, all
// of it against the file's size before anything is recorded: the header,
// the BAT and every allocated block must lie inside the file, after the
// footer copy and before the footer, and none may overlap another, else
// Split returns an error. Split holds one entry per allocated block, and
// there can be no more of those than fit in the file.
package vhd

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"slices"

	"github.com/rehydrator/rehydrator/formats"
)

const (
	sector = 512

	footerSize = 512
	headerSize = 1024 // dynamic header

	footerCookie = "conectix"
	headerCookie = "cxsparse"

	// Disk types.
	diskFixed        = 2
	diskDynamic      = 3
	diskDifferencing = 4

	// unallocated is a BAT entry for a block not in the file.
	unallocated = 0xFFFFFFFF

	// batChunk is how many bytes of the BAT are read at once.
	batChunk = 1 << 20
)

// footer is the hard disk footer, as laid out on disk (512 bytes).
type footer struct {
	Cookie             [8]byte // "conectix"
	Features           uint32  // 2 (reserved bit, always set); 1 = temporary disk
	FileFormatVersion  uint32  // 0x00010000
	DataOffset         uint64  // dynamic header's offset; 0xFFFFFFFFFFFFFFFF for a fixed disk
	TimeStamp          uint32  // seconds since 2000-01-01 00:00 UTC
	CreatorApplication [4]byte // "qemu", "qem2", "win ", "vpc ", ...
	CreatorVersion     uint32
	CreatorHostOS      [4]byte // "Wi2k", "Mac "
	OriginalSize       uint64  // disk size at creation, bytes
	CurrentSize        uint64  // disk size, bytes
	Cylinders          uint16  // CHS geometry
	Heads              uint8
	SectorsPerTrack    uint8
	DiskType           uint32 // diskFixed, diskDynamic or diskDifferencing
	Checksum           uint32 // ^(sum of the footer's bytes, this field left out)
	UniqueID           [16]byte
	SavedState         uint8
	Reserved           [427]byte
}

// dynamicHeader is the dynamic disk header, as laid out on disk (1024
// bytes).
type dynamicHeader struct {
	Cookie            [8]byte // "cxsparse"
	DataOffset        uint64  // unused: 0xFFFFFFFFFFFFFFFF
	TableOffset       uint64  // the BAT's offset
	HeaderVersion     uint32  // 0x00010000
	MaxTableEntries   uint32  // BAT entries: blocks of the disk
	BlockSize         uint32  // bytes of data per block, not counting its sector bitmap
	Checksum          uint32  // as the footer's
	ParentUniqueID    [16]byte
	ParentTimeStamp   uint32
	Reserved          uint32
	ParentUnicodeName [512]byte   // UTF-16BE
	ParentLocators    [8][24]byte // platform code, data space, data length, reserved, data offset
	Reserved2         [256]byte
}

// Detect reports whether header (the file's first bytes) starts with a
// copy of the footer, as dynamic and differencing disks do. A fixed disk
// has its one footer at the end: see DetectFooter.
func Detect(header []byte) bool {
	return len(header) >= len(footerCookie) && string(header[:len(footerCookie)]) == footerCookie
}

// DetectFooter reports whether tail (the file's last ≥ 512 bytes) ends with
// a VHD footer, as every VHD does.
func DetectFooter(tail []byte) bool {
	return len(tail) >= footerSize && Detect(tail[len(tail)-footerSize:])
}

// Split describes the VHD in src (size bytes) to b from its first byte to
// its last, in order. The layout is read and checked first: an error about
// the file's structure leaves b untouched; an error reading src afterwards
// leaves b partly written, to be discarded.
func Split(src io.ReaderAt, size int64, b *formats.Builder) error {
	l, err := readLayout(src, size)
	if err != nil {
		return err
	}
	data := make([]formats.Extent, len(l.data))
	for i, x := range l.data {
		data[i] = formats.Extent{Off: x.off, N: x.n}
	}
	if err := b.Disk(src, size, data); err != nil {
		return fmt.Errorf("vhd: %w", err)
	}
	return nil
}

// extent is a range of the file.
type extent struct {
	off, n int64
	what   string // for errors; "" for block number block
	block  int64
}

func (x extent) String() string {
	if x.what == "" {
		return fmt.Sprintf("block %d", x.block)
	}
	return x.what
}

func (x extent) end() int64 { return x.off + x.n }

// layout is where a VHD's disk data lies.
type layout struct {
	f    footer
	data []extent // disk data, in file order
}

// readLayout reads and checks the footer, and a dynamic disk's header and
// BAT.
func readLayout(src io.ReaderAt, size int64) (*layout, error) {
	if size < footerSize {
		return nil, fmt.Errorf("vhd: file is %d bytes, shorter than the %d-byte footer", size, footerSize)
	}
	tail := make([]byte, footerSize)
	if err := readAt(src, tail, size-footerSize); err != nil {
		return nil, err
	}
	head := make([]byte, footerSize)
	hasCopy := false
	if size >= 2*footerSize {
		if err := readAt(src, head, 0); err != nil {
			return nil, err
		}
		hasCopy = Detect(head)
	}
	// The footer at the end is the one that counts; a dynamic disk cut
	// short of it (qemu opens those) still has its copy at 0.
	l := &layout{}
	end := size - footerSize // where the footer starts
	var used []extent        // structures, to check for overlaps
	switch {
	case Detect(tail):
		decode(tail, &l.f)
		used = append(used, extent{off: end, n: footerSize, what: "footer"})
	case hasCopy:
		decode(head, &l.f)
		end = size
	default:
		return nil, fmt.Errorf("vhd: no footer: %q at %#x", tail[:len(footerCookie)], size-footerSize)
	}
	switch l.f.DiskType {
	case diskFixed:
		if end == size {
			return nil, fmt.Errorf("vhd: fixed disk without a footer at its end")
		}
		if l.f.CurrentSize > uint64(end) {
			return nil, fmt.Errorf("vhd: fixed disk of %d bytes, but the file holds %d bytes before its footer", l.f.CurrentSize, end)
		}
		if l.f.CurrentSize > 0 {
			l.data = []extent{{off: 0, n: int64(l.f.CurrentSize), what: "disk data"}}
		}
		return l, nil
	case diskDynamic, diskDifferencing:
	default:
		return nil, fmt.Errorf("vhd: footer at %#x: unknown disk type %d", size-footerSize, l.f.DiskType)
	}
	if !hasCopy {
		return nil, fmt.Errorf("vhd: dynamic disk without the footer copy at 0")
	}
	used = append(used, extent{off: 0, n: footerSize, what: "footer copy"})

	// The dynamic header.
	ho := l.f.DataOffset
	if ho > uint64(end) || uint64(end)-ho < headerSize {
		return nil, fmt.Errorf("vhd: dynamic header at %#x lies outside the %d bytes before the footer", ho, end)
	}
	used = append(used, extent{off: int64(ho), n: headerSize, what: "dynamic header"})
	p := make([]byte, headerSize)
	if err := readAt(src, p, int64(ho)); err != nil {
		return nil, err
	}
	var h dynamicHeader
	decode(p, &h)
	if string(h.Cookie[:]) != headerCookie {
		return nil, fmt.Errorf("vhd: dynamic header at %#x: cookie %q, want %q", ho, h.Cookie[:], headerCookie)
	}
	bs := int64(h.BlockSize)
	if bs < sector || bits.OnesCount32(h.BlockSize) != 1 {
		return nil, fmt.Errorf("vhd: dynamic header at %#x: block size %d is not a power of two ≥ %d", ho, bs, sector)
	}
	// One bit per sector, in whole sectors.
	bitmap := (bs/sector/8 + sector - 1) &^ (sector - 1)
	blockBytes := bitmap + bs

	// The BAT.
	to, entries := h.TableOffset, int64(h.MaxTableEntries)
	if to > uint64(end) || uint64(end)-to < uint64(entries)*4 {
		return nil, fmt.Errorf("vhd: BAT of %d entries at %#x lies outside the %d bytes before the footer", entries, to, end)
	}
	used = append(used, extent{off: int64(to), n: entries * 4, what: "BAT"})
	maxBlocks := end / blockBytes // as many as fit in the file
	buf := make([]byte, min(entries*4, batChunk))
	for i := int64(0); i < entries; {
		k := min(entries-i, int64(len(buf))/4)
		q := buf[:4*k]
		if err := readAt(src, q, int64(to)+4*i); err != nil {
			return nil, err
		}
		for j := range k {
			s := binary.BigEndian.Uint32(q[4*j:])
			if s == unallocated {
				continue
			}
			blk := i + j
			off := int64(s) * sector
			if off > end-blockBytes {
				return nil, fmt.Errorf("vhd: BAT entry %d: block at %#x (%d bytes) runs past the %d bytes before the footer", blk, off, blockBytes, end)
			}
			if int64(len(l.data)) >= maxBlocks {
				return nil, fmt.Errorf("vhd: BAT at %#x: more blocks allocated than the file holds (%d)", to, maxBlocks)
			}
			l.data = append(l.data, extent{off: off + bitmap, n: diskBytes(blk, bs, l.f.CurrentSize), block: blk})
			used = append(used, extent{off: off, n: blockBytes, block: blk})
		}
		i += k
	}
	if err := checkOverlaps(used); err != nil {
		return nil, err
	}
	slices.SortFunc(l.data, func(a, b extent) int { return cmpInt(a.off, b.off) })
	return l, nil
}

// diskBytes returns how many bytes of block blk (of bs bytes) lie within a
// disk of size bytes.
func diskBytes(blk, bs int64, size uint64) int64 {
	start := uint64(blk) * uint64(bs)
	if blk >= 1<<32 || start >= size { // blk < 2^32 keeps start from overflowing
		return 0
	}
	return int64(min(uint64(bs), size-start))
}

// checkOverlaps fails if any two of xs overlap.
func checkOverlaps(xs []extent) error {
	slices.SortFunc(xs, func(a, b extent) int { return cmpInt(a.off, b.off) })
	for i := 1; i < len(xs); i++ {
		if a, b := xs[i-1], xs[i]; b.off < a.end() {
			return fmt.Errorf("vhd: %v at %#x overlaps %v at %#x (%d bytes)", b, b.off, a, a.off, a.n)
		}
	}
	return nil
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// decode fills v from p, big-endian; p holds at least binary.Size(v) bytes.
func decode(p []byte, v any) {
	if _, err := binary.Decode(p, binary.BigEndian, v); err != nil {
		panic(err) // the callers' buffers fit their types
	}
}
