package vhdx

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/rehydrator/rehydrator/formats"
	"github.com/rehydrator/rehydrator/internal/zeros"
)

// testRawSize is the test disk's size: 64 MiB and an unaligned tail.
const testRawSize = 64*mib + 12345

// makeRaw writes a raw disk of testRawSize bytes to path: MiB-long regions
// of zeros (whole unallocated blocks in a dynamic image), text and random
// bytes, and regions that mix 64 KiB pieces of zeros, text, random bytes,
// tables of small integers and pieces zero but for one byte; it ends in
// text that stops mid-sector. Deterministic. It returns the disk.
func makeRaw(tb testing.TB, path string) []byte {
	tb.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	words := strings.Fields("the quick brown fox jumps over a lazy dog kernel module firmware " +
		"libc package release config systemd usr lib share doc locale bin etc var")
	disk := make([]byte, testRawSize)
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
	random := func(p []byte) {
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
	}
	mixed := func(p []byte, zeroPct int) {
		const piece = 64 << 10
		for off := 0; off < len(p); off += piece {
			q := p[off:min(off+piece, len(p))]
			switch k := rng.IntN(100); {
			case k < zeroPct:
			case k < zeroPct+(100-zeroPct)/4:
				text(q)
			case k < zeroPct+(100-zeroPct)/2:
				random(q)
			case k < zeroPct+3*(100-zeroPct)/4:
				for i := 0; i+8 <= len(q); i += 8 {
					binary.LittleEndian.PutUint64(q[i:], uint64(i/8)*uint64(1+off%7)+uint64(rng.IntN(4)))
				}
			default:
				q[rng.IntN(len(q))] = byte(1 + rng.IntN(255))
			}
		}
	}
	mixed(disk[:8*mib], 25)
	// 8..24 MiB: zero.
	mixed(disk[24*mib:40*mib], 25)
	text(disk[40*mib : 44*mib])
	random(disk[44*mib : 46*mib])
	mixed(disk[48*mib:64*mib], 60)
	text(disk[64*mib:])
	if err := os.WriteFile(path, disk, 0o644); err != nil {
		tb.Fatal(err)
	}
	return disk
}

// nonZeroPieces is the content of an image of disk: its 64 KiB pieces
// that are not all zero, in order.
func nonZeroPieces(disk []byte) []byte {
	var out []byte
	for off := 0; off < len(disk); off += formats.DiskZeroPiece {
		p := disk[off:min(off+formats.DiskZeroPiece, len(disk))]
		if !zeros.Is(p) {
			out = append(out, p...)
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

// assemble joins recipe and content.
func assemble(tb testing.TB, recipe, content []byte) []byte {
	tb.Helper()
	var out bytes.Buffer
	if err := formats.Assemble(&out, bytes.NewReader(recipe), bytes.NewReader(content)); err != nil {
		tb.Fatalf("Assemble: %v", err)
	}
	return out.Bytes()
}

// roundTrip splits img, assembles it back and fails unless the bytes match.
func roundTrip(tb testing.TB, img []byte) (recipe, content []byte, st formats.Stats) {
	tb.Helper()
	recipe, content, st, err := split(tb, img)
	if err != nil {
		tb.Fatalf("Split: %v", err)
	}
	if got := assemble(tb, recipe, content); !bytes.Equal(got, img) {
		tb.Fatalf("Assemble gave %d bytes, differing from the %d-byte original at %#x", len(got), len(img), firstDiff(got, img))
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
