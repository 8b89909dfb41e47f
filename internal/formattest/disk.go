package formattest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rehydrator/rehydrator/internal/zeros"
)

// Piece is the size of the pieces MixedDisk mixes its kinds of data in:
// 64 KiB, a VMDK grain as qemu-img writes it and formats.DiskZeroPiece.
const Piece = 64 << 10

// MixedDisk returns a deterministic raw disk of size bytes, made from seed,
// that mixes what a release image's disk holds, two thirds of it data. It
// is laid out in 64 units of size/64 bytes, rounded down to a 512-byte
// sector:
//
//	units  0-8   mixed pieces, a quarter of them zero
//	units  8-16  zeros: whole unallocated blocks and clusters
//	units 16-40  mixed pieces, a tenth of them zero
//	units 40-44  text (TextAt)
//	units 44-46  random bytes (RandomAt)
//	units 46-48  zeros
//	units 48-64  mixed pieces, 40% of them zero
//	the rest     text, ending mid-sector unless size is a multiple of 512
//
// Mixed pieces are Piece bytes long (the last of a region may be shorter),
// each zero, text (FillText), random (incompressible), a table of small
// integers, records (FillRecords), text in a quarter of the piece and zeros
// around it, or zeros but for one byte.
func MixedDisk(size int, seed uint64) []byte {
	g := diskGen{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	d, u := make([]byte, size), unit(size)
	g.mixed(d[:8*u], 25)
	g.mixed(d[16*u:40*u], 10)
	g.text(d[40*u : 44*u])
	g.random(d[44*u : 46*u])
	g.mixed(d[48*u:64*u], 40)
	g.text(d[64*u:])
	return d
}

// WriteMixedDisk writes MixedDisk(size, seed) to dir/disk.raw and returns
// the file's path and the disk.
func WriteMixedDisk(tb testing.TB, dir string, size int, seed uint64) (path string, disk []byte) {
	tb.Helper()
	disk = MixedDisk(size, seed)
	return WriteFile(tb, filepath.Join(dir, "disk.raw"), disk), disk
}

// TextAt is the offset of a MixedDisk's text region, size/16 bytes long
// (rounded down to a sector): at least 4 KiB if size is 256 KiB or more.
func TextAt(size int) int { return 40 * unit(size) }

// RandomAt is the offset of a MixedDisk's region of random bytes,
// size/32 bytes long (rounded down to a sector).
func RandomAt(size int) int { return 44 * unit(size) }

// unit is the length of a 64th of a MixedDisk of size bytes.
func unit(size int) int { return size / 64 &^ 511 }

// diskGen fills a MixedDisk's regions.
type diskGen struct{ rng *rand.Rand }

// words are what FillText writes.
var words = strings.Fields(`the of and to in is was for on are with as by at from
	kernel module driver package release version system file directory config
	network device memory process thread signal buffer cache page block disk
	image cluster table entry offset header format compressed stream deflate
	install update upgrade security patch library binary source build test`)

// FillText fills p with sentences of words drawn with rng, some ending in
// a number, a line each.
func FillText(p []byte, rng *rand.Rand) {
	var b bytes.Buffer
	for b.Len() < len(p) {
		n := 5 + rng.IntN(12)
		for i := 0; i < n; i++ {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(words[rng.IntN(len(words))])
		}
		if rng.IntN(4) == 0 {
			fmt.Fprintf(&b, " %d", rng.IntN(100000))
		}
		b.WriteString(".\n")
	}
	copy(p, b.Bytes())
}

// FillRecords fills p with 64-byte records holding a counter and a few
// fields varying with rng, like an inode table.
func FillRecords(p []byte, rng *rand.Rand) {
	base := rng.Uint32()
	for i := 0; i+64 <= len(p); i += 64 {
		r := p[i : i+64]
		copy(r, "REC:")
		binary.BigEndian.PutUint32(r[4:], uint32(i))
		binary.BigEndian.PutUint32(r[8:], base+uint32(i/64))
		r[12] = byte(rng.IntN(4))
		copy(r[16:], "owner=root mode=0644")
	}
}

// text fills p with FillText.
func (g *diskGen) text(p []byte) { FillText(p, g.rng) }

// RandomBytes returns n bytes drawn from rng.
func RandomBytes(rng *rand.Rand, n int) []byte {
	p := make([]byte, n)
	fillRandom(p, rng)
	return p
}

// fillRandom fills p with bytes drawn from rng.
func fillRandom(p []byte, rng *rand.Rand) {
	for i := range p {
		p[i] = byte(rng.Uint32())
	}
}

// random fills p with random bytes.
func (g *diskGen) random(p []byte) { fillRandom(p, g.rng) }

// mixed fills p's Piece-long pieces each with one kind of data; zeroPct
// percent of them (on average) stay zero, the others are of the six other
// kinds in equal shares.
func (g *diskGen) mixed(p []byte, zeroPct int) {
	for off := 0; off < len(p); off += Piece {
		q := p[off:min(off+Piece, len(p))]
		k := g.rng.IntN(100)
		if k < zeroPct {
			continue
		}
		switch (k - zeroPct) * 6 / (100 - zeroPct) {
		case 0:
			g.text(q)
		case 1:
			g.random(q)
		case 2: // a table of small integers
			for i := 0; i+8 <= len(q); i += 8 {
				binary.LittleEndian.PutUint64(q[i:], uint64(i/8)*uint64(1+off%7)+uint64(g.rng.IntN(4)))
			}
		case 3:
			FillRecords(q, g.rng)
		case 4: // partly zero
			g.text(q[g.rng.IntN(len(q)/2+1):][:len(q)/4])
		default: // zero but for one byte
			q[g.rng.IntN(len(q))] = byte(1 + g.rng.IntN(255))
		}
	}
}

// NonZeroPieces is the content a sparse image of disk holds when it keeps
// the disk's piece-long pieces that are not all zero (the last one may be
// shorter), in order.
func NonZeroPieces(disk []byte, piece int) []byte {
	var out []byte
	for off := 0; off < len(disk); off += piece {
		p := disk[off:min(off+piece, len(disk))]
		if !zeros.Is(p) {
			out = append(out, p...)
		}
	}
	return out
}

// CheckGuest fails tb unless guest, a disk as qemu-img reads it from an
// image, is size bytes: disk, then zeros.
func CheckGuest(tb testing.TB, guest, disk []byte, size int64) {
	tb.Helper()
	if int64(len(guest)) != size || len(guest) < len(disk) || !bytes.Equal(guest[:len(disk)], disk) || !zeros.Is(guest[len(disk):]) {
		tb.Fatalf("qemu-img reads back %d bytes, not the %d-byte disk zero-padded to %d", len(guest), len(disk), size)
	}
}
