// Package vhdx splits Microsoft VHDX images (dynamic, fixed and
// differencing, as qemu-img -O vhdx and Hyper-V write them) into a content
// stream and a recipe for package formats.
//
// The layout, after Microsoft's "[MS-VHDX]: Virtual Hard Disk v2 (VHDX)
// File Format" and qemu's block/vhdx.c; all numbers are little-endian,
// GUIDs are stored with their first three fields little-endian:
//
//	0        file type identifier: "vhdxfile", then the creator (UTF-16)
//	64 KiB   header 1 (4 KiB, type header)
//	128 KiB  header 2
//	192 KiB  region table 1 (64 KiB, type regionTableHeader and entries)
//	256 KiB  region table 2
//	1 MiB    the regions and the log, anywhere after the first MiB, at
//	         offsets and of lengths that are multiples of 1 MiB
//
// Each header ("head") has a CRC-32C checksum over its 4 KiB (the
// checksum field taken as 0) and a sequence number; the valid one with the
// higher number is current. It tells where the log is and, in a log GUID
// that is not zero, that the log holds entries to replay: changes to the
// metadata that may not have reached their place yet. A region table
// ("regi", CRC-32C over its 64 KiB) lists regions by GUID with their file
// offset and length; two are required:
//
//	BAT       2DC27766-F623-4200-9D64-115E9BFD4A08  block allocation table
//	metadata  8B7CA206-4790-4B9A-B8FE-575F050F886E  metadata region
//
// The metadata region starts with a table ("metadata", type
// metadataTableHeader and entries) of items, each at an offset in the
// region; Split reads three of them: file parameters (block size, a power
// of two from 1 MiB to 256 MiB, and whether the disk has a parent),
// virtual disk size and logical sector size (512 or 4096). The others
// (physical sector size, virtual disk ID, page 83 data, parent locator)
// are kept as they are.
//
// The BAT is an array of uint64 entries: the low 3 bits are the block's
// state (PAYLOAD_BLOCK_NOT_PRESENT 0, UNDEFINED 1, ZERO 2, UNMAPPED 3,
// FULLY_PRESENT 6, PARTIALLY_PRESENT 7), bits 20..63 its file offset in
// MiB. After every chunk ratio payload entries (2^23 × logical sector size
// / block size) comes the entry of a sector bitmap block (1 MiB; present
// only in differencing disks, state 6). Blocks in state 6 or 7 hold the
// disk's data; the others read as zeros (or the parent's data), whatever
// their offset field says. qemu-img writes headers, region tables, a 1 MiB
// log, the BAT and metadata regions (1 MiB each) in the first 4 MiB, then
// appends blocks as the disk is written (in disk order, by qemu-img
// convert), and leaves the log GUID zero. Its subformat=fixed makes the
// file large enough for every block up front, but marks them all ZERO, so
// convert appends the blocks it writes after that space, which stays zero.
//
// Split describes every structure (identifier, headers, region tables,
// log, BAT, metadata, sector bitmaps) and every byte outside a block
// verbatim (runs of zeros as zeros), and the data of FULLY_PRESENT and
// PARTIALLY_PRESENT blocks as content, except that each 64 KiB piece of a
// block (counted from the block's start) that is all zero is recorded as
// zeros: the content stream is the disk's non-zero data, in file order. A
// block's bytes past the virtual disk size (the end of the last block) are
// not disk data and are described like the bytes between blocks. A log
// with entries to replay is kept verbatim like the rest, and the BAT is
// read as it stands in its region: Split only decides which bytes are
// content, and whatever it decides, Assemble gives the file back exactly.
//
// The layout is checked, all of it against the file's size, before
// anything is recorded: a current header, a valid region table (the first
// of the two whose checksum holds) naming the BAT and metadata regions
// once each, the metadata items Split needs, a BAT as long as the disk
// needs, and every region, the log and every present block inside the file
// and overlapping nothing else (the header section included), else Split
// returns an error. Offsets and lengths need not be multiples of 1 MiB. Split holds one entry per present block, and there can
// be no more of those than MiBs in the file.
package vhdx

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math/bits"
	"slices"

	"github.com/rehydrator/rehydrator/formats"
)

const (
	kib = 1 << 10
	mib = 1 << 20

	identifierSig = "vhdxfile"
	headerSig     = "head"
	regionSig     = "regi"
	metadataSig   = "metadata"

	headerSectionSize = 1 * mib // identifier, headers, region tables, reserved
	headerSize        = 4 * kib
	regionTableSize   = 64 * kib
	metadataTableSize = 64 * kib

	maxRegionEntries   = 2047
	maxMetadataEntries = 2047

	// Region GUIDs.
	batGUID      = "2DC27766-F623-4200-9D64-115E9BFD4A08"
	metadataGUID = "8B7CA206-4790-4B9A-B8FE-575F050F886E"

	// Metadata item GUIDs Split reads.
	fileParametersGUID    = "CAA16737-FA36-4D43-B3B6-33F0AA44E76B" // block size uint32, flags uint32
	virtualDiskSizeGUID   = "2FA54224-CD1B-4876-B211-5DBED83BF4B8" // uint64
	logicalSectorSizeGUID = "8141BF1D-A96F-4709-BA47-F233A8FAAB5F" // uint32

	fileParamHasParent = 1 << 1 // file parameters flag: a differencing disk

	// BAT entry states (the low 3 bits).
	payloadNotPresent       = 0
	payloadUndefined        = 1
	payloadZero             = 2
	payloadUnmapped         = 3
	payloadFullyPresent     = 6
	payloadPartiallyPresent = 7
	sectorBitmapPresent     = 6

	sectorBitmapSize = 1 * mib

	minBlockSize = 1 * mib
	maxBlockSize = 256 * mib
	maxDiskSize  = 64 << 40

	// batChunk is how many bytes of the BAT are read at once.
	batChunk = 1 * mib
)

// Where the header section's structures lie.
var (
	headerAt      = [2]int64{64 * kib, 128 * kib}
	regionTableAt = [2]int64{192 * kib, 256 * kib}
)

// header is a VHDX header, as laid out on disk (4 KiB).
type header struct {
	Signature      [4]byte // "head"
	Checksum       uint32  // CRC-32C of the 4 KiB, this field taken as 0
	SequenceNumber uint64  // the valid header with the higher one is current
	FileWriteGUID  [16]byte
	DataWriteGUID  [16]byte
	LogGUID        [16]byte // not zero: the log has entries to replay
	LogVersion     uint16   // 0
	Version        uint16   // 1
	LogLength      uint32   // bytes, a multiple of 1 MiB
	LogOffset      uint64   // bytes, a multiple of 1 MiB
	Reserved       [4016]byte
}

// regionTableHeader starts a region table (64 KiB); entries follow.
type regionTableHeader struct {
	Signature  [4]byte // "regi"
	Checksum   uint32  // CRC-32C of the 64 KiB, this field taken as 0
	EntryCount uint32  // at most 2047
	Reserved   uint32
}

// regionTableEntry is one region.
type regionTableEntry struct {
	GUID       [16]byte
	FileOffset uint64 // bytes, a multiple of 1 MiB, at least 1 MiB
	Length     uint32 // bytes, a multiple of 1 MiB
	Required   uint32 // bit 0: a reader that does not know the region must fail
}

// metadataTableHeader starts the metadata region; entries follow.
type metadataTableHeader struct {
	Signature  [8]byte // "metadata"
	Reserved   uint16
	EntryCount uint16 // at most 2047
	Reserved2  [20]byte
}

// metadataTableEntry is one metadata item.
type metadataTableEntry struct {
	ItemID   [16]byte
	Offset   uint32 // from the region's start, at least 64 KiB (0 if Length is 0)
	Length   uint32 // at most 1 MiB
	Flags    uint32 // bit 0 IsUser, 1 IsVirtualDisk, 2 IsRequired
	Reserved uint32
}

// Detect reports whether header (the file's first ≥ 8 bytes) starts a VHDX
// file: its file type identifier.
func Detect(header []byte) bool {
	return len(header) >= len(identifierSig) && string(header[:len(identifierSig)]) == identifierSig
}

// Split describes the VHDX in src (size bytes) to b from its first byte to
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
		return fmt.Errorf("vhdx: %w", err)
	}
	return nil
}

// extent is a range of the file.
type extent struct {
	off, n int64
	what   string // for errors; "" for block number block
	block  int64
}

func (x extent) end() int64 { return x.off + x.n }

func (x extent) String() string {
	if x.what == "" {
		return fmt.Sprintf("block %d", x.block)
	}
	return x.what
}

// layout is what Split needs of a VHDX.
type layout struct {
	h          header // the current header
	blockSize  int64
	diskSize   int64
	sectorSize int64 // logical
	hasParent  bool
	data       []extent // disk data in blocks, in file order
}

// readLayout reads and checks the headers, the region table, the metadata
// and the BAT.
func readLayout(src io.ReaderAt, size int64) (*layout, error) {
	if size < headerSectionSize {
		return nil, fmt.Errorf("vhdx: file is %d bytes, shorter than the %d-byte header section", size, headerSectionSize)
	}
	p := make([]byte, regionTableSize)
	if err := readAt(src, p[:len(identifierSig)], 0); err != nil {
		return nil, err
	}
	if !Detect(p) {
		return nil, fmt.Errorf("vhdx: file type identifier %q, want %q", p[:len(identifierSig)], identifierSig)
	}
	l := &layout{}
	used := []extent{{off: 0, n: headerSectionSize, what: "header section"}}

	// The current header.
	current := -1
	for i, at := range headerAt {
		q := p[:headerSize]
		if err := readAt(src, q, at); err != nil {
			return nil, err
		}
		var h header
		decode(q, &h)
		if string(h.Signature[:]) != headerSig || !checksumOK(q) {
			continue
		}
		if current < 0 || h.SequenceNumber > l.h.SequenceNumber {
			current, l.h = i, h
		}
	}
	if current < 0 {
		return nil, fmt.Errorf("vhdx: no valid header at %#x or %#x", headerAt[0], headerAt[1])
	}
	if l.h.Version != 1 {
		return nil, fmt.Errorf("vhdx: header at %#x: version %d, want 1", headerAt[current], l.h.Version)
	}
	if l.h.LogLength > 0 {
		if l.h.LogOffset > uint64(size) || uint64(size)-l.h.LogOffset < uint64(l.h.LogLength) {
			return nil, fmt.Errorf("vhdx: log (%d bytes at %#x) lies outside the %d-byte file", l.h.LogLength, l.h.LogOffset, size)
		}
		used = append(used, extent{off: int64(l.h.LogOffset), n: int64(l.h.LogLength), what: "log"})
	}

	// The region table: the first valid one.
	var bat, meta *regionTableEntry
	found := false
	for _, at := range regionTableAt {
		if err := readAt(src, p, at); err != nil {
			return nil, err
		}
		var rt regionTableHeader
		decode(p, &rt)
		if string(rt.Signature[:]) != regionSig || !checksumOK(p) || rt.EntryCount > maxRegionEntries {
			continue
		}
		found = true
		for i := range int(rt.EntryCount) {
			var r regionTableEntry
			decode(p[16+32*i:], &r)
			id := guidString(r.GUID)
			if r.FileOffset > uint64(size) || uint64(size)-r.FileOffset < uint64(r.Length) {
				return nil, fmt.Errorf("vhdx: region table at %#x: region %s (%d bytes at %#x) lies outside the %d-byte file", at, id, r.Length, r.FileOffset, size)
			}
			what := "region " + id
			switch id {
			case batGUID, metadataGUID:
				ptr := &bat
				what = "BAT region"
				if id == metadataGUID {
					ptr, what = &meta, "metadata region"
				}
				if *ptr != nil {
					return nil, fmt.Errorf("vhdx: region table at %#x: two %ss", at, what)
				}
				*ptr = &r
			}
			used = append(used, extent{off: int64(r.FileOffset), n: int64(r.Length), what: what})
		}
		break
	}
	switch {
	case !found:
		return nil, fmt.Errorf("vhdx: no valid region table at %#x or %#x", regionTableAt[0], regionTableAt[1])
	case bat == nil:
		return nil, fmt.Errorf("vhdx: region table names no BAT region")
	case meta == nil:
		return nil, fmt.Errorf("vhdx: region table names no metadata region")
	}
	if err := checkOverlaps(used); err != nil {
		return nil, err
	}

	if err := l.readMetadata(src, p, meta); err != nil {
		return nil, err
	}
	blocks, err := l.readBAT(src, size, bat)
	if err != nil {
		return nil, err
	}
	if err := checkOverlaps(append(used, blocks...)); err != nil {
		return nil, err
	}
	slices.SortFunc(l.data, func(a, b extent) int { return cmpInt(a.off, b.off) })
	return l, nil
}

// readMetadata reads the items Split needs from the metadata region r,
// using buf (64 KiB).
func (l *layout) readMetadata(src io.ReaderAt, buf []byte, r *regionTableEntry) error {
	at := int64(r.FileOffset)
	if r.Length < metadataTableSize {
		return fmt.Errorf("vhdx: metadata region at %#x: %d bytes, shorter than its %d-byte table", at, r.Length, metadataTableSize)
	}
	if err := readAt(src, buf, at); err != nil {
		return err
	}
	var t metadataTableHeader
	decode(buf, &t)
	if string(t.Signature[:]) != metadataSig {
		return fmt.Errorf("vhdx: metadata table at %#x: signature %q, want %q", at, t.Signature[:], metadataSig)
	}
	if t.EntryCount > maxMetadataEntries {
		return fmt.Errorf("vhdx: metadata table at %#x: %d entries, more than %d", at, t.EntryCount, maxMetadataEntries)
	}
	// The items, by GUID: at most one of each.
	items := map[string][]byte{
		fileParametersGUID:    nil,
		virtualDiskSizeGUID:   nil,
		logicalSectorSizeGUID: nil,
	}
	want := map[string]uint32{fileParametersGUID: 8, virtualDiskSizeGUID: 8, logicalSectorSizeGUID: 4}
	for i := range int(t.EntryCount) {
		var e metadataTableEntry
		decode(buf[32+32*i:], &e)
		id := guidString(e.ItemID)
		n, ok := want[id]
		if !ok {
			continue
		}
		if items[id] != nil {
			return fmt.Errorf("vhdx: metadata table at %#x: item %s twice", at, id)
		}
		if e.Length != n || e.Offset < metadataTableSize || uint64(e.Offset)+uint64(n) > uint64(r.Length) {
			return fmt.Errorf("vhdx: metadata table at %#x: item %s (%d bytes at %#x) is not %d bytes inside the %d-byte region", at, id, e.Length, e.Offset, n, r.Length)
		}
		v := make([]byte, n)
		if err := readAt(src, v, at+int64(e.Offset)); err != nil {
			return err
		}
		items[id] = v
	}
	for id, v := range items {
		if v == nil {
			return fmt.Errorf("vhdx: metadata table at %#x: no item %s", at, id)
		}
	}
	le := binary.LittleEndian
	bs := le.Uint32(items[fileParametersGUID])
	l.hasParent = le.Uint32(items[fileParametersGUID][4:])&fileParamHasParent != 0
	ds := le.Uint64(items[virtualDiskSizeGUID])
	ss := le.Uint32(items[logicalSectorSizeGUID])
	switch {
	case bs < minBlockSize || bs > maxBlockSize || bits.OnesCount32(bs) != 1:
		return fmt.Errorf("vhdx: metadata at %#x: block size %d is not a power of two from %d to %d", at, bs, minBlockSize, maxBlockSize)
	case ss != 512 && ss != 4096:
		return fmt.Errorf("vhdx: metadata at %#x: logical sector size %d, want 512 or 4096", at, ss)
	case ds == 0 || ds > maxDiskSize || ds%uint64(ss) != 0:
		return fmt.Errorf("vhdx: metadata at %#x: virtual disk size %d is not a multiple of %d from 1 to %d sectors", at, ds, ss, maxDiskSize/uint64(ss))
	}
	l.blockSize, l.diskSize, l.sectorSize = int64(bs), int64(ds), int64(ss)
	return nil
}

// readBAT reads the BAT region r: it fills in l.data and returns the
// ranges present blocks and sector bitmaps take.
func (l *layout) readBAT(src io.ReaderAt, size int64, r *regionTableEntry) ([]extent, error) {
	// The chunk ratio: payload blocks per sector bitmap block. The limits
	// on block and sector size keep it from 16 to 2^15.
	ratio := int64(1<<23) * l.sectorSize / l.blockSize
	dataBlocks := (l.diskSize + l.blockSize - 1) / l.blockSize
	entries := dataBlocks + (dataBlocks-1)/ratio
	if l.hasParent {
		entries = (dataBlocks + ratio - 1) / ratio * (ratio + 1)
	}
	at := int64(r.FileOffset)
	if entries > int64(r.Length)/8 {
		return nil, fmt.Errorf("vhdx: BAT region at %#x: %d bytes hold fewer than the %d entries a %d-byte disk of %d-byte blocks needs",
			at, r.Length, entries, l.diskSize, l.blockSize)
	}
	var used []extent
	maxBlocks := size / mib // blocks are ≥ 1 MiB and do not overlap
	buf := make([]byte, min(entries*8, batChunk))
	for i := int64(0); i < entries; {
		k := min(entries-i, int64(len(buf))/8)
		q := buf[:8*k]
		if err := readAt(src, q, at+8*i); err != nil {
			return nil, err
		}
		for j := range k {
			v := binary.LittleEndian.Uint64(q[8*j:])
			n := i + j
			state, off := v&7, int64(v>>20)
			var x extent
			if n%(ratio+1) == ratio {
				// A sector bitmap block.
				if state != sectorBitmapPresent {
					continue
				}
				x = extent{n: sectorBitmapSize, what: fmt.Sprintf("sector bitmap block %d", n/(ratio+1))}
			} else {
				switch state {
				case payloadNotPresent, payloadUndefined, payloadZero, payloadUnmapped:
					continue
				case payloadFullyPresent, payloadPartiallyPresent:
				default:
					return nil, fmt.Errorf("vhdx: BAT entry %d at %#x: unknown state %d", n, at+8*n, state)
				}
				x = extent{n: l.blockSize, block: n - n/(ratio+1)}
			}
			if size < x.n || off > (size-x.n)/mib {
				return nil, fmt.Errorf("vhdx: BAT entry %d at %#x: %v (%d bytes at %d MiB) runs past the end of the %d-byte file", n, at+8*n, x, x.n, off, size)
			}
			if int64(len(used)) >= maxBlocks {
				return nil, fmt.Errorf("vhdx: BAT at %#x: more blocks present than the file holds (%d)", at, maxBlocks)
			}
			x.off = off * mib
			used = append(used, x)
			if x.what == "" {
				l.data = append(l.data, extent{off: x.off, n: diskBytes(x.block, l.blockSize, l.diskSize), block: x.block})
			}
		}
		i += k
	}
	return used, nil
}

// diskBytes returns how many bytes of block blk (of bs bytes) lie within a
// disk of size bytes.
func diskBytes(blk, bs, size int64) int64 {
	// blk*bs < size + bs ≤ 2^47: no overflow.
	return max(0, min(bs, size-blk*bs))
}

// checkOverlaps fails if any two of xs overlap.
func checkOverlaps(xs []extent) error {
	slices.SortFunc(xs, func(a, b extent) int { return cmpInt(a.off, b.off) })
	for i := 1; i < len(xs); i++ {
		if a, b := xs[i-1], xs[i]; b.off < a.end() {
			return fmt.Errorf("vhdx: %v at %#x overlaps %v at %#x (%d bytes)", b, b.off, a, a.off, a.n)
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

// checksumOK reports whether p (a header or region table) holds its
// CRC-32C at offset 4, computed with those 4 bytes as zero.
func checksumOK(p []byte) bool {
	return binary.LittleEndian.Uint32(p[4:]) == checksum(p)
}

// checksum returns the CRC-32C of p with its checksum field (bytes 4..7)
// as zero.
func checksum(p []byte) uint32 {
	t := crc32.MakeTable(crc32.Castagnoli)
	c := crc32.Update(0, t, p[:4])
	c = crc32.Update(c, t, make([]byte, 4))
	return crc32.Update(c, t, p[8:])
}

// guidString formats a GUID as stored (first three fields little-endian)
// in its usual form.
func guidString(g [16]byte) string {
	le := binary.LittleEndian
	return fmt.Sprintf("%08X-%04X-%04X-%X-%X", le.Uint32(g[:]), le.Uint16(g[4:]), le.Uint16(g[6:]), g[8:10], g[10:])
}

// decode fills v from p, little-endian; p holds at least binary.Size(v)
// bytes.
func decode(p []byte, v any) {
	if _, err := binary.Decode(p, binary.LittleEndian, v); err != nil {
		panic(err) // the callers' buffers fit their types
	}
}
