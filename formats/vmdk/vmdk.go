// Package vmdk splits sparse VMDK extents (streamOptimized and
// monolithicSparse, as qemu-img and VMware write them) into a content stream
// and a recipe for package formats.
//
// The layout, after VMware's "Virtual Disk Format 1.1" and qemu's
// block/vmdk.c (all numbers little-endian, offsets and sizes in 512-byte
// sectors unless said otherwise):
//
//	sector 0             SparseExtentHeader ("KDMV", see header below)
//	descriptorOffset     descriptor text, descriptorSize sectors, 0-padded
//	rgdOffset, gdOffset  grain directories and grain tables (metadata)
//	overHead             first grain: the data area begins here
//
// A monolithicSparse extent holds grains of grainSize sectors, stored as
// they are, wherever the grain tables point. A streamOptimized extent
// (flags: compressed grains + markers) holds, from overHead on, a sequence
// of sector-aligned markers:
//
//	grain marker     lba u64, size u32 (> 0), then size bytes of zlib
//	                 stream holding the grain, 0-padded to a sector
//	metadata marker  numSectors u64, size u32 (= 0), type u32, 0-padded to
//	                 a sector, then numSectors sectors of metadata:
//	                 type 0 end of stream, 1 grain table, 2 grain directory,
//	                 3 footer (a copy of the header)
//
// qemu (7.2) writes the grain directory and tables up front, grains in LBA
// order, skips all-zero grains and writes no metadata markers (its file may
// end in zeros after the last grain, which read as an end-of-stream
// marker); VMware and older qemu end with grain tables, grain directory,
// footer and end-of-stream markers. All metadata is kept verbatim (zero
// runs as zeros), grain data becomes content, compressed grains through
// Builder.Deflate so they are re-created on assembly.
//
// Split walks forward only: no pointer in the file is followed backwards or
// twice, so a hostile file cannot make it loop, and every allocation is
// bounded (by the limits below, or by the file's size for the bitmap of
// grain positions in a monolithicSparse extent).
package vmdk

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"slices"

	"github.com/rehydrator/rehydrator/formats"
	"github.com/rehydrator/rehydrator/formats/zlib"
)

const sector = 512

// SparseExtentHeader, as laid out on disk (packed, 512 bytes with padding).
const (
	magic      = 0x564d444b // "KDMV" read little-endian
	headerSize = sector

	offMagic             = 0  // uint32
	offVersion           = 4  // uint32: 1, 2 (zeroed-grain GTEs) or 3 (compressed)
	offFlags             = 8  // uint32
	offCapacity          = 12 // uint64: sectors of the virtual disk
	offGrainSize         = 20 // uint64: sectors per grain
	offDescriptorOffset  = 28 // uint64
	offDescriptorSize    = 36 // uint64
	offNumGTEsPerGT      = 44 // uint32
	offRGDOffset         = 48 // uint64: redundant grain directory
	offGDOffset          = 56 // uint64: grain directory, or gdAtEnd
	offOverHead          = 64 // uint64: sectors of metadata before the grains
	offUncleanShutdown   = 72 // uint8
	offNewlineChars      = 73 // '\n', ' ', '\r', '\n' (newline detection)
	offCompressAlgorithm = 77 // uint16

	// Header flags.
	flagNewlineTest = 1 << 0
	flagRedundantGT = 1 << 1
	flagZeroGrain   = 1 << 2 // a grain table entry of 1 means a zero grain
	flagCompressed  = 1 << 16
	flagMarkers     = 1 << 17

	compressionDeflate = 1

	// gdAtEnd in gdOffset means the grain directory's offset is in the
	// footer at the end of a streamOptimized extent.
	gdAtEnd = ^uint64(0)
)

// Markers of a streamOptimized extent.
const (
	markerSize = 12 // lba u64, size u32; metadata markers add type u32 and fill a sector

	markerEOS    = 0
	markerGT     = 1
	markerGD     = 2
	markerFooter = 3
)

// Limits that keep hostile input from allocating without bound.
const (
	// maxGrainSize is the largest grain accepted, in bytes. Real grains are
	// 64 KiB (128 sectors); the spec allows powers of two above 4 KiB.
	maxGrainSize = 2 << 20
	// maxGrainData bounds the size field of a grain marker: compressed data
	// is at most slightly larger than the grain, so twice the grain, and
	// never more than a formats deflate piece.
	maxGrainData = 4 << 20
	// maxDescriptor bounds the embedded descriptor (qemu reads at most
	// 1 MiB of descriptor text; real ones are under 1 KiB).
	maxDescriptor = 1 << 20
	// maxGTEsPerGT bounds grain table entries (always 512 in practice).
	maxGTEsPerGT = 1 << 16
)

// deflateSet is the formats.ParamSets index of zlib's compress(), which
// streamOptimized writers use; -1 (grains kept verbatim) if absent.
var deflateSet = slices.Index(formats.ParamSets, zlib.VMDK)

// Detect reports whether header (the file's first ≥512 bytes) starts a
// sparse VMDK extent.
func Detect(header []byte) bool {
	if len(header) < headerSize {
		return false
	}
	le := binary.LittleEndian
	v := le.Uint32(header[offVersion:])
	return le.Uint32(header[offMagic:]) == magic && v >= 1 && v <= 3
}

// header holds the fields of SparseExtentHeader that Split uses. The rest
// (unclean-shutdown flag, newline-detection characters) is kept verbatim
// with the header sector.
type header struct {
	version           uint32
	flags             uint32
	capacity          uint64
	grainSize         uint64
	descriptorOffset  uint64
	descriptorSize    uint64
	numGTEsPerGT      uint32
	rgdOffset         uint64
	gdOffset          uint64
	overHead          uint64
	compressAlgorithm uint16
}

func parseHeader(p []byte) header {
	le := binary.LittleEndian
	return header{
		version:           le.Uint32(p[offVersion:]),
		flags:             le.Uint32(p[offFlags:]),
		capacity:          le.Uint64(p[offCapacity:]),
		grainSize:         le.Uint64(p[offGrainSize:]),
		descriptorOffset:  le.Uint64(p[offDescriptorOffset:]),
		descriptorSize:    le.Uint64(p[offDescriptorSize:]),
		numGTEsPerGT:      le.Uint32(p[offNumGTEsPerGT:]),
		rgdOffset:         le.Uint64(p[offRGDOffset:]),
		gdOffset:          le.Uint64(p[offGDOffset:]),
		overHead:          le.Uint64(p[offOverHead:]),
		compressAlgorithm: le.Uint16(p[offCompressAlgorithm:]),
	}
}

// sectorsToBytes converts a sector count or offset to bytes, or returns
// false if that is beyond limit (which keeps the sum from overflowing).
func sectorsToBytes(n uint64, limit int64) (int64, bool) {
	if n > uint64(limit)/sector {
		return 0, false
	}
	return int64(n) * sector, true
}

// Split describes the VMDK in src (size bytes) to b from its first byte to
// its last, in order.
func Split(src io.ReaderAt, size int64, b *formats.Builder) error {
	if size < headerSize {
		return fmt.Errorf("vmdk: file is %d bytes, shorter than the %d-byte header", size, headerSize)
	}
	s := &splitter{r: reader{src: src, size: size}, b: b, size: size}
	p, err := s.r.bytes(0, headerSize)
	if err != nil {
		return err
	}
	if m := binary.LittleEndian.Uint32(p[offMagic:]); m != magic {
		return fmt.Errorf("vmdk: not a sparse extent (magic %#08x, want %#08x)", m, magic)
	}
	h := parseHeader(p)
	if h.version < 1 || h.version > 3 {
		// A version this package does not know: keep it all.
		return s.flush(s.raw(0, size))
	}

	// The fields every walk relies on.
	grainSize, ok := sectorsToBytes(h.grainSize, maxGrainSize)
	if h.grainSize == 0 || !ok {
		return fmt.Errorf("vmdk: grain size %d sectors out of range (1..%d)", h.grainSize, maxGrainSize/sector)
	}
	s.grainSize = grainSize
	s.dataStart = headerSize
	if h.descriptorSize != 0 {
		off, okOff := sectorsToBytes(h.descriptorOffset, size)
		n, okSize := sectorsToBytes(h.descriptorSize, maxDescriptor)
		switch {
		case !okSize:
			return fmt.Errorf("vmdk: descriptor of %d sectors exceeds %d bytes", h.descriptorSize, maxDescriptor)
		case off < headerSize || !okOff || n > size-off:
			return fmt.Errorf("vmdk: descriptor (%d sectors at sector %d) lies outside the %d-byte file", h.descriptorSize, h.descriptorOffset, size)
		}
		s.dataStart = max(s.dataStart, off+n)
	}
	// Grains start after the metadata: at overHead, or at the end of the
	// file if overHead points past it.
	if oh, ok := sectorsToBytes(h.overHead, size); ok {
		s.dataStart = max(s.dataStart, oh)
	} else {
		s.dataStart = size
	}
	s.dataStart = min(s.dataStart, size)
	if h.compressAlgorithm == compressionDeflate {
		s.deflate = deflateSet
	} else {
		s.deflate = -1
	}

	if h.flags&flagMarkers != 0 {
		err = s.stream()
	} else {
		err = s.sparse(h)
	}
	return s.flush(err)
}

// splitter walks one file. pos is how far it has been described.
type splitter struct {
	r         reader
	b         *formats.Builder
	size      int64
	grainSize int64 // bytes
	dataStart int64 // first byte after the header, descriptor and overHead
	deflate   int   // formats.ParamSets index for grains, or -1
	m         meta
	pos       int64
}

// stream walks the markers of a streamOptimized extent.
func (s *splitter) stream() error {
	if err := s.raw(0, s.dataStart); err != nil {
		return err
	}
	le := binary.LittleEndian
	for s.pos < s.size && s.size-s.pos >= markerSize {
		at := s.pos
		p, err := s.r.bytes(at, markerSize)
		if err != nil {
			return err
		}
		lba, size := le.Uint64(p), le.Uint32(p[8:])
		if size != 0 {
			if err := s.grain(at, size); err != nil {
				return err
			}
			continue
		}

		// Metadata marker: one sector, then lba (numSectors) sectors.
		if s.size-at < sector {
			break
		}
		p, err = s.r.bytes(at, sector)
		if err != nil {
			return err
		}
		typ := le.Uint32(p[markerSize:])
		if typ > markerFooter {
			break // unknown: keep the rest
		}
		if typ == markerEOS {
			break // nothing follows the end of stream but padding
		}
		n, ok := sectorsToBytes(lba, s.size-at-sector)
		if !ok {
			return fmt.Errorf("vmdk: %s marker at %#x: %d sectors run past the end of the file", markerName(typ), at, lba)
		}
		if err := s.raw(at, sector+n); err != nil {
			return err
		}
	}
	return s.raw(s.pos, s.size-s.pos)
}

func markerName(typ uint32) string {
	return [...]string{"end-of-stream", "grain table", "grain directory", "footer"}[typ]
}

// grain describes the grain marker at at with size bytes of data: the
// marker verbatim, the data as a deflate piece (or verbatim if it is not a
// stream of the expected kind), the padding to the next sector as zeros.
func (s *splitter) grain(at int64, size uint32) error {
	limit := min(2*s.grainSize, maxGrainData)
	if int64(size) > limit {
		return fmt.Errorf("vmdk: grain marker at %#x: data size %d exceeds %d bytes (twice the grain size)", at, size, limit)
	}
	end := at + markerSize + int64(size)
	if end > s.size {
		return fmt.Errorf("vmdk: grain marker at %#x: %d bytes of data run past the end of the file (%d bytes)", at, size, s.size)
	}
	if err := s.raw(at, markerSize); err != nil {
		return err
	}
	data, err := s.r.bytes(at+markerSize, int(size))
	if err != nil {
		return err
	}
	n := 0
	if s.deflate >= 0 {
		if n, err = s.deflateAt(data); err != nil {
			return err
		}
	}
	// Bytes that are not (or not all) one deflate stream are kept.
	if err := s.raw(s.pos, int64(len(data)-n)); err != nil {
		return err
	}
	return s.pad(end, min(roundUp(end), s.size)-end)
}

// deflateAt records the compressed grain at the start of data (which
// begins at s.pos) and returns its length, or 0 if data does not start with
// a zlib stream.
func (s *splitter) deflateAt(data []byte) (int, error) {
	if err := s.flushAll(); err != nil {
		return 0, err
	}
	n, err := s.b.Deflate(s.deflate, data, int(s.grainSize))
	s.pos += int64(n)
	return n, err
}

// sparse walks an extent without markers (monolithicSparse): grains are
// where the grain tables say, everything else is metadata.
func (s *splitter) sparse(h header) error {
	grains, err := s.grainMap(h)
	if err != nil {
		return err
	}
	for sec, ok := grains.next(0); ok; sec, ok = grains.next(sec + 1) {
		off := sec * sector
		if off < s.pos {
			continue // overlaps the grain before
		}
		if err := s.raw(s.pos, off-s.pos); err != nil {
			return err
		}
		if h.flags&flagCompressed != 0 && s.deflate >= 0 {
			// Compressed grains without markers: the stream's own end
			// tells its length; what follows, up to the next grain, is
			// kept.
			data, err := s.r.bytes(off, int(min(2*s.grainSize, maxGrainData, s.size-off)))
			if err != nil {
				return err
			}
			if _, err := s.deflateAt(data); err != nil {
				return err
			}
			continue
		}
		// A grain, stored as it is (the last one may be cut short).
		if err := s.content(off, min(s.grainSize, s.size-off)); err != nil {
			return err
		}
	}
	return s.raw(s.pos, s.size-s.pos)
}

// grainMap reads the grain directory and tables and marks the sectors where
// grains start. Grains must lie in the data area; grain tables that lie
// outside the file or overlap one another are ignored. The directory must
// fit in the file: its size follows from the header.
func (s *splitter) grainMap(h header) (bitmap, error) {
	sectors := (s.size + sector - 1) / sector
	grains := newBitmap(sectors)
	if h.gdOffset == 0 || h.gdOffset == gdAtEnd {
		return grains, nil // no directory: everything is kept
	}
	if h.numGTEsPerGT == 0 || h.numGTEsPerGT > maxGTEsPerGT {
		return grains, fmt.Errorf("vmdk: %d grain table entries per table out of range (1..%d)", h.numGTEsPerGT, maxGTEsPerGT)
	}
	gtes := uint64(h.numGTEsPerGT)
	gtBytes := int64(gtes) * 4
	grainCount := ceilDiv(h.capacity, h.grainSize)
	tables := ceilDiv(grainCount, gtes)
	gdOff, ok := sectorsToBytes(h.gdOffset, s.size)
	if !ok || tables > uint64(s.size-gdOff)/4 {
		return grains, fmt.Errorf("vmdk: grain directory (%d tables at sector %d) runs past the end of the %d-byte file", tables, h.gdOffset, s.size)
	}

	// Grain table offsets, one per directory entry in use. Tables start on
	// distinct sectors, so there are at most as many as sectors.
	var gts []int64
	le := binary.LittleEndian
	for i := uint64(0); i < tables; {
		k := min(tables-i, chunk/4)
		p, err := s.r.bytes(gdOff+int64(i)*4, int(k)*4)
		if err != nil {
			return grains, err
		}
		for j := range k {
			e := uint64(le.Uint32(p[4*j:]))
			if e == 0 {
				continue
			}
			if int64(len(gts)) >= sectors {
				return grains, fmt.Errorf("vmdk: grain directory at %#x: more grain tables than sectors in the file", gdOff)
			}
			gts = append(gts, int64(e)*sector)
		}
		i += k
	}
	slices.Sort(gts)
	end := int64(0)
	for _, off := range gts {
		if off < end || off > s.size-gtBytes {
			continue
		}
		end = off + gtBytes
		p, err := s.r.bytes(off, int(gtBytes))
		if err != nil {
			return grains, err
		}
		for j := range gtes {
			g := int64(le.Uint32(p[4*j:]))
			if g*sector >= s.dataStart && g < sectors {
				grains.set(g)
			}
		}
	}
	return grains, nil
}

// bitmap is a set of sectors.
type bitmap []uint64

func newBitmap(n int64) bitmap { return make(bitmap, (n+63)/64) }

func (m bitmap) set(i int64) { m[i/64] |= 1 << (i % 64) }

// next returns the first member ≥ i.
func (m bitmap) next(i int64) (int64, bool) {
	for w := i / 64; w < int64(len(m)); w++ {
		v := m[w]
		if w == i/64 {
			v &= ^uint64(0) << (i % 64)
		}
		if v != 0 {
			return w*64 + int64(bits.TrailingZeros64(v)), true
		}
	}
	return 0, false
}

func roundUp(off int64) int64 { return (off + sector - 1) &^ (sector - 1) }

func ceilDiv(a, b uint64) uint64 { return a/b + min(a%b, 1) }
