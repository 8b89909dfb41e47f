package vmdk

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rehydrator/rehydrator/formats"
	"github.com/rehydrator/rehydrator/formats/zlib"
)

const (
	testGrain   = 64 << 10 // qemu-img's grain: 128 sectors
	testRawSize = 64 << 20
)

// makeRaw writes a raw disk of size bytes mixing the kinds of grain a
// release image has: all-zero grains (qemu skips them), text, random
// (incompressible), structured binary, grains partly zero, and grains that
// are zero but for one byte. Deterministic.
func makeRaw(tb testing.TB, path string, size int) []byte {
	tb.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	words := strings.Fields("the quick brown fox jumps over a lazy dog kernel module firmware " +
		"libc package release config systemd usr lib share doc locale bin etc var")
	disk := make([]byte, size)
	text := func(p []byte) {
		var sb bytes.Buffer
		for sb.Len() < len(p) {
			sb.WriteString(words[rng.IntN(len(words))])
			if rng.IntN(12) == 0 {
				sb.WriteByte('\n')
			} else {
				sb.WriteByte(' ')
			}
		}
		copy(p, sb.Bytes())
	}
	for g := 0; g < size/testGrain; g++ {
		p := disk[g*testGrain : (g+1)*testGrain]
		switch k := rng.IntN(20); {
		case g < 2 || k < 5: // zero
		case k < 10:
			text(p)
		case k < 13:
			for i := range p {
				p[i] = byte(rng.Uint32())
			}
		case k < 16: // tables of small integers
			for i := 0; i+8 <= len(p); i += 8 {
				binary.LittleEndian.PutUint64(p[i:], uint64(i/8)*uint64(1+g%7)+uint64(rng.IntN(4)))
			}
		case k < 18: // partly zero
			text(p[rng.IntN(len(p)/2):][:len(p)/4])
		default: // one byte
			p[rng.IntN(len(p))] = byte(1 + rng.IntN(255))
		}
	}
	if path != "" {
		if err := os.WriteFile(path, disk, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return disk
}

// nonZeroGrains is the content a streamOptimized VMDK of disk holds: its
// grains that are not all zero, in order.
func nonZeroGrains(disk []byte, grain int) []byte {
	var out []byte
	for off := 0; off < len(disk); off += grain {
		g := disk[off:min(off+grain, len(disk))]
		if !allZero(g) {
			out = append(out, g...)
		}
	}
	return out
}

// split runs Split on img and returns the recipe, the content and the stats.
func split(tb testing.TB, img []byte) (recipe, content []byte, st formats.Stats, err error) {
	tb.Helper()
	var r, c bytes.Buffer
	b, err := formats.NewBuilder(&r, &c)
	if err != nil {
		tb.Fatal(err)
	}
	err = Split(bytes.NewReader(img), int64(len(img)), b)
	st = b.Stats()
	if cerr := b.Close(); err == nil {
		err = cerr
	}
	return r.Bytes(), c.Bytes(), st, err
}

// roundTrip splits img, assembles it back and fails unless the bytes match.
func roundTrip(tb testing.TB, img []byte) (recipe, content []byte, st formats.Stats) {
	tb.Helper()
	recipe, content, st, err := split(tb, img)
	if err != nil {
		tb.Fatalf("Split: %v", err)
	}
	var out bytes.Buffer
	if err := formats.Assemble(&out, bytes.NewReader(recipe), bytes.NewReader(content)); err != nil {
		tb.Fatalf("Assemble: %v", err)
	}
	if !bytes.Equal(out.Bytes(), img) {
		tb.Fatalf("Assemble gave %d bytes, differing from the %d-byte original at %d", out.Len(), len(img), firstDiff(out.Bytes(), img))
	}
	return recipe, content, st
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func writeFile(tb testing.TB, dir, name string, data []byte) string {
	tb.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		tb.Fatal(err)
	}
	return p
}

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
