package vmdk

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/rehydrator/rehydrator/formats/zlib"
)

const (
	testGrain   = 64 << 10 // qemu-img's grain: 128 sectors
	testRawSize = 64 << 20
)

// Synthetic extents, small enough for unit tests and fuzz seeds.

type synth struct {
	grainSectors uint64
	grains       [][]byte // grain data; nil = unallocated (zero) grain
	compressed   bool     // streamOptimized; else monolithicSparse
	tail         bool     // stream: GT, GD, footer and EOS markers
}

func putHeader(p []byte, version, flags uint32, capacity, grainSize, descOff, descSize uint64, gtes uint32, rgd, gd, overHead uint64, alg uint16) {
	le := binary.LittleEndian
	le.PutUint32(p[offMagic:], magic)
	le.PutUint32(p[offVersion:], version)
	le.PutUint32(p[offFlags:], flags)
	le.PutUint64(p[offCapacity:], capacity)
	le.PutUint64(p[offGrainSize:], grainSize)
	le.PutUint64(p[offDescriptorOffset:], descOff)
	le.PutUint64(p[offDescriptorSize:], descSize)
	le.PutUint32(p[offNumGTEsPerGT:], gtes)
	le.PutUint64(p[offRGDOffset:], rgd)
	le.PutUint64(p[offGDOffset:], gd)
	le.PutUint64(p[offOverHead:], overHead)
	copy(p[offNewlineChars:], "\n \r\n")
	le.PutUint16(p[offCompressAlgorithm:], alg)
}

func (s synth) build(tb testing.TB) []byte {
	tb.Helper()
	le := binary.LittleEndian
	gsz := s.grainSectors * sector
	capacity := uint64(len(s.grains)) * s.grainSectors
	desc := []byte("# Disk DescriptorFile\nversion=1\ncreateType=\"streamOptimized\"\n")
	img := make([]byte, 2*sector)
	copy(img[sector:], desc)
	gt := make([]byte, 4*sector) // 512 entries
	if !s.compressed {
		// header, descriptor, GD (1 sector) at 2, GT (4 sectors) at 3.
		putHeader(img, 1, flagNewlineTest, capacity, s.grainSectors, 1, 1, 512, 0, 2, 7, 0)
		img = append(img, make([]byte, 5*sector)...)
		le.PutUint32(img[2*sector:], 3)
		for i, g := range s.grains {
			if g == nil {
				continue
			}
			le.PutUint32(img[3*sector+4*i:], uint32(len(img)/sector))
			g = append(g[:len(g):len(g)], make([]byte, int(gsz)-len(g))...)
			img = append(img, g...)
		}
		return img
	}
	putHeader(img, 3, flagNewlineTest|flagCompressed|flagMarkers, capacity, s.grainSectors, 1, 1, 512, 0, gdAtEnd, 2, compressionDeflate)
	c, err := zlib.NewCompressor(zlib.VMDK)
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	padTo := func() {
		img = append(img, make([]byte, int(roundUp(int64(len(img))))-len(img))...)
	}
	for i, g := range s.grains {
		if g == nil {
			continue
		}
		z, err := c.Compress(nil, g)
		if err != nil {
			tb.Fatal(err)
		}
		le.PutUint32(gt[4*i:], uint32(len(img)/sector))
		img = le.AppendUint64(img, uint64(i)*s.grainSectors)
		img = le.AppendUint32(img, uint32(len(z)))
		img = append(img, z...)
		padTo()
	}
	if s.tail {
		meta := func(typ uint32, data []byte) {
			m := make([]byte, sector)
			le.PutUint64(m, uint64(len(data)/sector))
			le.PutUint32(m[12:], typ)
			img = append(img, m...)
			img = append(img, data...)
		}
		gtAt := uint32(len(img)/sector + 1)
		meta(markerGT, gt)
		gd := make([]byte, sector)
		le.PutUint32(gd, gtAt)
		gdAt := uint64(len(img)/sector + 1)
		meta(markerGD, gd)
		footer := bytes.Clone(img[:sector])
		le.PutUint64(footer[offGDOffset:], gdAt)
		meta(markerFooter, footer)
		meta(markerEOS, nil)
	}
	return img
}

// smallGrains returns n grains of sectors*512 bytes of mixed data.
func smallGrains(n int, sectors uint64) [][]byte {
	rng := rand.New(rand.NewPCG(3, 4))
	gs := make([][]byte, n)
	for i := range gs {
		g := make([]byte, sectors*sector)
		switch i % 4 {
		case 0:
			for j := range g {
				g[j] = "vmdk grain text "[j%16]
			}
		case 1:
			for j := range g {
				g[j] = byte(rng.Uint32())
			}
		case 2:
			continue // unallocated
		case 3:
			g[7] = 1
		}
		gs[i] = g
	}
	return gs
}
