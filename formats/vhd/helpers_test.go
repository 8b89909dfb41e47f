package vhd

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// checksum returns the checksum of a footer or dynamic header p: the one's
// complement of the sum of its bytes, the 4 bytes at checksumAt left out.
func checksum(p []byte, checksumAt int) uint32 {
	var sum uint32
	for i, c := range p {
		if i < checksumAt || i >= checksumAt+4 {
			sum += uint32(c)
		}
	}
	return ^sum
}

// Offsets of the checksum fields, for checksum.
const (
	footerChecksumAt = 64
	headerChecksumAt = 36
)

// encode lays v out big-endian, as on disk.
func encode(tb testing.TB, v any) []byte {
	tb.Helper()
	p, err := binary.Append(nil, binary.BigEndian, v)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// Synthetic images, small enough for unit tests and fuzz seeds.

type synth struct {
	diskType  uint32
	blockSize uint32   // dynamic: bytes per block
	blocks    [][]byte // dynamic: block data (nil = unallocated); fixed: blocks[0] is the disk
	size      uint64   // current size; 0: the blocks' total
}

func (s synth) footer(tb testing.TB, dataOffset uint64) []byte {
	size := s.size
	if size == 0 {
		if s.diskType == diskFixed {
			size = uint64(len(s.blocks[0]))
		} else {
			size = uint64(len(s.blocks)) * uint64(s.blockSize)
		}
	}
	f := footer{
		Features: 2, FileFormatVersion: 0x10000, DataOffset: dataOffset, TimeStamp: 0x329519c9,
		CreatorVersion: 0x50003, OriginalSize: size, CurrentSize: size,
		Cylinders: 16, Heads: 16, SectorsPerTrack: 63, DiskType: s.diskType,
		UniqueID: [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
	}
	copy(f.Cookie[:], footerCookie)
	copy(f.CreatorApplication[:], "qemu")
	copy(f.CreatorHostOS[:], "Wi2k")
	p := encode(tb, &f)
	binary.BigEndian.PutUint32(p[footerChecksumAt:], checksum(p, footerChecksumAt))
	return p
}

func (s synth) build(tb testing.TB) []byte {
	tb.Helper()
	if s.diskType == diskFixed {
		return append(bytes.Clone(s.blocks[0]), s.footer(tb, ^uint64(0))...)
	}
	be := binary.BigEndian
	img := s.footer(tb, footerSize)
	h := dynamicHeader{DataOffset: ^uint64(0), TableOffset: 3 * sector, HeaderVersion: 0x10000,
		MaxTableEntries: uint32(len(s.blocks)), BlockSize: s.blockSize}
	copy(h.Cookie[:], headerCookie)
	hp := encode(tb, &h)
	be.PutUint32(hp[headerChecksumAt:], checksum(hp, headerChecksumAt))
	img = append(img, hp...)
	bat := bytes.Repeat([]byte{0xff}, (4*len(s.blocks)+sector-1)/sector*sector)
	img = append(img, bat...)
	bitmap := (int(s.blockSize)/sector/8 + sector - 1) / sector * sector
	for i, b := range s.blocks {
		if b == nil {
			continue
		}
		be.PutUint32(img[3*sector+4*i:], uint32(len(img)/sector))
		img = append(img, bytes.Repeat([]byte{0xff}, bitmap)...)
		img = append(img, b...)
		img = append(img, make([]byte, int(s.blockSize)-len(b))...)
	}
	return append(img, img[:footerSize]...)
}

// smallBlocks returns n blocks of size bytes of mixed data; every third is
// unallocated.
func smallBlocks(n, size int) [][]byte {
	rng := rand.New(rand.NewPCG(3, 4))
	bs := make([][]byte, n)
	for i := range bs {
		b := make([]byte, size)
		switch i % 3 {
		case 0:
			for j := range b {
				b[j] = "vhd block text "[j%15]
			}
		case 1:
			for j := range b {
				b[j] = byte(rng.Uint32())
			}
		case 2:
			continue
		}
		bs[i] = b
	}
	return bs
}
