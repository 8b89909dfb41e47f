package vhdx

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"
)

// Synthetic images, for unit tests and fuzz seeds.

type synth struct {
	blockSize  uint32   // ≥ 1 MiB
	sectorSize uint32   // 512 or 4096
	diskSize   uint64   // 0: the blocks' total
	blocks     [][]byte // block data (nil = not present); shorter ones are zero-padded
	hasParent  bool     // a differencing disk: its sector bitmap blocks present
	logLength  uint32   // 0 or a MiB multiple: a log region at 1 MiB
	logGUID    bool     // a log with entries to replay
}

// guidBytes lays a GUID in its usual form out as stored.
func guidBytes(tb testing.TB, s string) [16]byte {
	var g [16]byte
	var d1 uint32
	var d2, d3 uint16
	var d4 [8]byte
	if _, err := fmt.Sscanf(s, "%08X-%04X-%04X-%02X%02X-%02X%02X%02X%02X%02X%02X", &d1, &d2, &d3,
		&d4[0], &d4[1], &d4[2], &d4[3], &d4[4], &d4[5], &d4[6], &d4[7]); err != nil {
		tb.Fatalf("GUID %s: %v", s, err)
	}
	le := binary.LittleEndian
	le.PutUint32(g[:], d1)
	le.PutUint16(g[4:], d2)
	le.PutUint16(g[6:], d3)
	copy(g[8:], d4[:])
	return g
}

func put(tb testing.TB, img []byte, at int64, v any) {
	tb.Helper()
	p, err := binary.Append(nil, binary.LittleEndian, v)
	if err != nil {
		tb.Fatal(err)
	}
	copy(img[at:], p)
}

// setChecksum stores the CRC-32C of the n bytes at at into their bytes 4..7.
func setChecksum(img []byte, at, n int64) {
	binary.LittleEndian.PutUint32(img[at+4:], checksum(img[at:at+n]))
}

// fixChecksums sets the checksums of the headers and region tables that
// have their signatures.
func fixChecksums(img []byte) {
	for _, at := range headerAt {
		if int64(len(img)) >= at+headerSize && string(img[at:at+4]) == headerSig {
			setChecksum(img, at, headerSize)
		}
	}
	for _, at := range regionTableAt {
		if int64(len(img)) >= at+regionTableSize && string(img[at:at+4]) == regionSig {
			setChecksum(img, at, regionTableSize)
		}
	}
}

func roundUp(n, to int64) int64 { return (n + to - 1) / to * to }

func (s synth) build(tb testing.TB) []byte {
	tb.Helper()
	bs := int64(s.blockSize)
	ss := s.sectorSize
	if ss == 0 {
		ss = 512
	}
	ds := s.diskSize
	if ds == 0 {
		ds = uint64(len(s.blocks)) * uint64(bs)
	}
	ratio := int64(1<<23) * int64(ss) / bs
	dataBlocks := (int64(ds) + bs - 1) / bs
	entries := dataBlocks + (dataBlocks-1)/ratio
	if s.hasParent {
		entries = (dataBlocks + ratio - 1) / ratio * (ratio + 1)
	}
	batAt := int64(headerSectionSize + s.logLength)
	batLen := roundUp(entries*8, 4*kib)
	metaAt := batAt + batLen
	metaLen := int64(metadataTableSize + 4*kib)
	next := roundUp(metaAt+metaLen, mib)
	size := next
	for _, b := range s.blocks {
		if b != nil {
			size += bs
		}
	}
	if s.hasParent {
		size += (dataBlocks + ratio - 1) / ratio * sectorBitmapSize
	}
	img := make([]byte, size)

	copy(img, identifierSig)
	copy(img[8:], "s\x00y\x00n\x00t\x00h\x00")
	for i, at := range headerAt {
		h := header{SequenceNumber: uint64(i + 1), Version: 1, LogLength: s.logLength}
		copy(h.Signature[:], headerSig)
		h.FileWriteGUID[0], h.DataWriteGUID[0] = 1, 2
		if s.logLength > 0 {
			h.LogOffset = headerSectionSize
		}
		if s.logGUID {
			h.LogGUID[0] = 3
		}
		put(tb, img, at, &h)
	}
	if s.logLength > 0 {
		copy(img[headerSectionSize:], "loge")
	}
	for _, at := range regionTableAt {
		put(tb, img, at, &regionTableHeader{Signature: [4]byte([]byte(regionSig)), EntryCount: 2})
		put(tb, img, at+16, &regionTableEntry{GUID: guidBytes(tb, batGUID), FileOffset: uint64(batAt), Length: uint32(batLen), Required: 1})
		put(tb, img, at+48, &regionTableEntry{GUID: guidBytes(tb, metadataGUID), FileOffset: uint64(metaAt), Length: uint32(metaLen), Required: 1})
	}

	// Metadata: the three items Split reads and the physical sector size.
	t := metadataTableHeader{EntryCount: 4}
	copy(t.Signature[:], metadataSig)
	put(tb, img, metaAt, &t)
	flags := uint32(0)
	if s.hasParent {
		flags = fileParamHasParent
	}
	for i, it := range []struct {
		id string
		v  any
	}{
		{fileParametersGUID, [2]uint32{s.blockSize, flags}},
		{virtualDiskSizeGUID, ds},
		{logicalSectorSizeGUID, ss},
		{"CDA348C7-445D-4471-9CC9-E9885251C556", uint32(4096)},
	} {
		off := uint32(metadataTableSize + 8*i)
		put(tb, img, metaAt+32+32*int64(i), &metadataTableEntry{ItemID: guidBytes(tb, it.id), Offset: off, Length: uint32(binary.Size(it.v)), Flags: 4})
		put(tb, img, metaAt+int64(off), it.v)
	}

	// Blocks, in disk order; a differencing disk's sector bitmaps first.
	le := binary.LittleEndian
	if s.hasParent {
		for c := int64(0); c < (dataBlocks+ratio-1)/ratio; c++ {
			le.PutUint64(img[batAt+8*(c*(ratio+1)+ratio):], uint64(next)|sectorBitmapPresent)
			img[next] = 0xff
			next += sectorBitmapSize
		}
	}
	for i, b := range s.blocks {
		n := int64(i) + int64(i)/ratio
		if b == nil {
			le.PutUint64(img[batAt+8*n:], payloadZero)
			continue
		}
		state := uint64(payloadFullyPresent)
		if s.hasParent {
			state = payloadPartiallyPresent
		}
		le.PutUint64(img[batAt+8*n:], uint64(next)|state)
		copy(img[next:next+bs], b)
		next += bs
	}
	fixChecksums(img)
	return img
}

// smallBlocks returns n blocks of mixed data, size bytes or shorter;
// every third is not present.
func smallBlocks(n, size int) [][]byte {
	rng := rand.New(rand.NewPCG(3, 4))
	bs := make([][]byte, n)
	for i := range bs {
		switch i % 3 {
		case 0:
			bs[i] = bytes.Repeat([]byte("vhdx block text "), size/16)
		case 1:
			b := make([]byte, size/3) // the rest is zeros
			for j := range b {
				b[j] = byte(rng.Uint32())
			}
			bs[i] = b
		}
	}
	return bs
}

// Sparse images for fuzzing: a VHDX is megabytes of mostly zeros, too big
// to mutate as it is. A sparse image is
//
//	"SPRS", flags (1: set checksums), size uint32,
//	then records: offset uint32, length uint16, length bytes
//
// all little-endian; it expands to size bytes (at most maxSparse) of zeros
// with each record's bytes at its offset (cut at the end).
const (
	sparseMagic = "SPRS"
	maxSparse   = 8 * mib
)

// expand returns the image p describes, or p itself if it is not sparse.
func expand(p []byte) []byte {
	if len(p) < 9 || string(p[:4]) != sparseMagic {
		return p
	}
	le := binary.LittleEndian
	flags, size := p[4], min(int64(le.Uint32(p[5:])), maxSparse)
	img := make([]byte, size)
	for p = p[9:]; len(p) >= 6; {
		off, n := int64(le.Uint32(p)), min(int(le.Uint16(p[4:])), len(p)-6)
		if off < size {
			copy(img[off:], p[6:6+n])
		}
		p = p[6+n:]
	}
	if flags&1 != 0 {
		fixChecksums(img)
	}
	return img
}

// sparse describes img as a sparse image.
func sparse(img []byte, fix bool) []byte {
	le := binary.LittleEndian
	out := []byte(sparseMagic)
	out = append(out, 0)
	if fix {
		out[4] = 1
	}
	out = le.AppendUint32(out, uint32(len(img)))
	for i := 0; i < len(img); {
		if img[i] == 0 {
			i++
			continue
		}
		// A record up to the next 16 zeros, at most 64 KiB - 1.
		var zero [16]byte
		j := i
		for j < len(img) && j-i < 0xffff && !bytes.Equal(img[j:min(j+16, len(img))], zero[:min(16, len(img)-j)]) {
			j++
		}
		out = le.AppendUint32(out, uint32(i))
		out = le.AppendUint16(out, uint16(j-i))
		out = append(out, img[i:j]...)
		i = j
	}
	return out
}
