package qcow2

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rehydrator/rehydrator/formats"
	"github.com/rehydrator/rehydrator/internal/testtool"
)

// split runs Split on img and returns the recipe, the content and the
// stats, or Split's error.
func split(tb testing.TB, img []byte) (recipe, content []byte, st formats.Stats, err error) {
	tb.Helper()
	var r, c bytes.Buffer
	b, err := formats.NewBuilder(&r, &c)
	if err != nil {
		tb.Fatal(err)
	}
	if err := Split(bytes.NewReader(img), int64(len(img)), b); err != nil {
		b.Close()
		return nil, nil, formats.Stats{}, err
	}
	st = b.Stats()
	if err := b.Close(); err != nil {
		tb.Fatalf("closing the builder: %v", err)
	}
	return r.Bytes(), c.Bytes(), st, nil
}

// assemble joins recipe and content back.
func assemble(tb testing.TB, recipe, content []byte) []byte {
	tb.Helper()
	var out bytes.Buffer
	if err := formats.Assemble(&out, bytes.NewReader(recipe), bytes.NewReader(content)); err != nil {
		tb.Fatalf("Assemble: %v", err)
	}
	return out.Bytes()
}

// roundTrip splits img, assembles it back and fails unless the bytes are
// identical. It returns the reassembled file too.
func roundTrip(tb testing.TB, img []byte) (recipe, content, out []byte, st formats.Stats) {
	tb.Helper()
	recipe, content, st, err := split(tb, img)
	if err != nil {
		tb.Fatalf("Split: %v", err)
	}
	out = assemble(tb, recipe, content)
	if !bytes.Equal(out, img) {
		tb.Fatalf("reassembled file differs: %d bytes, want %d; first difference at %#x", len(out), len(img), firstDiff(out, img))
	}
	return recipe, content, out, st
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// convert makes a qcow2 image of raw with qemu-img convert and the given
// -o options, compressed with -c if compress.
func convert(tb testing.TB, raw, dst, opts string, compress bool) []byte {
	tb.Helper()
	args := []string{"convert", "-f", "raw", "-O", "qcow2", "-o", opts}
	if compress {
		args = append(args, "-c")
	}
	testtool.Run(tb, testtool.Require(tb, "qemu-img"), append(args, raw, dst)...)
	img, err := os.ReadFile(dst)
	if err != nil {
		tb.Fatal(err)
	}
	return img
}

// qemuCheck writes img to dir and runs qemu-img check on it; opts, if
// given, replace "-f qcow2 FILE" ("%s" stands for the file).
func qemuCheck(tb testing.TB, dir, name string, img []byte, opts ...string) {
	tb.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, img, 0o644); err != nil {
		tb.Fatal(err)
	}
	args := []string{"check", "-f", "qcow2", p}
	if len(opts) > 0 {
		args = []string{"check"}
		for _, o := range opts {
			args = append(args, strings.ReplaceAll(o, "%s", p))
		}
	}
	testtool.Run(tb, testtool.Require(tb, "qemu-img"), args...)
}

// mixedRaw is the guest disk the fixtures hold: size bytes in 256 KiB
// segments of zeros, text, random bytes and repeated records, so every
// cluster size sees compressible, incompressible and empty clusters.
// textAt and randomAt are the offsets of a 4 KiB block of text and of
// random bytes, distinctive enough to be looked for in a content stream.
type mixedRaw struct {
	data             []byte
	textAt, randomAt int
}

func makeRaw(size int, seed uint64) mixedRaw {
	const seg = 256 << 10
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	m := mixedRaw{data: make([]byte, size), textAt: -1, randomAt: -1}
	kinds := []int{1, 2, 3, 0} // the first segments show every kind
	for i, off := 0, 0; off < size; i, off = i+1, off+seg {
		p := m.data[off:min(off+seg, size)]
		kind := rng.IntN(4)
		if i < len(kinds) {
			kind = kinds[i]
		}
		switch kind {
		case 0: // zeros, already
		case 1:
			fillText(p, rng)
			if m.textAt < 0 {
				m.textAt = off + 8192
			}
		case 2:
			for j := range p {
				p[j] = byte(rng.Uint32())
			}
			if m.randomAt < 0 {
				m.randomAt = off + 8192
			}
		case 3:
			fillRecords(p, rng)
		}
		// Zero islands inside data, as file systems leave them.
		if kind != 0 && rng.IntN(3) == 0 {
			at := rng.IntN(len(p) / 2)
			clear(p[at : at+rng.IntN(len(p)/4)])
		}
	}
	return m
}

var words = strings.Fields(`the of and to in is was for on are with as by at from
	kernel module driver package release version system file directory config
	network device memory process thread signal buffer cache page block disk
	image cluster table entry offset header format compressed stream deflate
	install update upgrade security patch library binary source build test`)

func fillText(p []byte, rng *rand.Rand) {
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

// fillRecords writes 64-byte records with a counter and a few varying
// fields, like an inode table.
func fillRecords(p []byte, rng *rand.Rand) {
	base := rng.Uint32()
	for i := 0; i+64 <= len(p); i += 64 {
		r := p[i : i+64]
		copy(r, "REC:")
		r[4], r[5], r[6], r[7] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
		v := base + uint32(i/64)
		r[8], r[9], r[10], r[11] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
		r[12] = byte(rng.IntN(4))
		copy(r[16:], "owner=root mode=0644")
	}
}
