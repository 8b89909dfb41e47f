package zlib

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/rehydrator/rehydrator/internal/testtool"
)

// Goldens made by qemu-img: the compressed pieces of a qcow2 and a
// streamOptimized VMDK written by qemu must re-compress to the same bytes.
// The container parsing here is deliberately minimal and local to the test.

// piece is one compressed cluster/grain found in an image.
type piece struct {
	guest int64  // guest byte offset of the data
	data  []byte // compressed bytes; for qcow2 an upper bound (sector-rounded)
	exact bool   // len(data) is the exact stream length (VMDK grain size)
}

// qcow2Pieces walks L1/L2 (docs/interop/qcow2.rst) and returns the
// compressed clusters plus the guest offsets of allocated uncompressed
// (data) clusters.
func qcow2Pieces(img []byte) (clusterSize int, comp []piece, plain []int64, err error) {
	be := binary.BigEndian
	if len(img) < 72 || be.Uint32(img) != 0x514649fb {
		return 0, nil, nil, fmt.Errorf("not a qcow2 image")
	}
	version := be.Uint32(img[4:])
	clusterBits := be.Uint32(img[20:])
	l1Size := int(be.Uint32(img[36:]))
	l1Off := be.Uint64(img[40:])
	if version >= 3 {
		if be.Uint64(img[72:])&(1<<4) != 0 {
			return 0, nil, nil, fmt.Errorf("extended L2 entries not supported by this test")
		}
		if hdrLen := be.Uint32(img[100:]); hdrLen > 104 && img[104] != 0 {
			return 0, nil, nil, fmt.Errorf("compression type %d is not zlib", img[104])
		}
	}
	clusterSize = 1 << clusterBits
	l2Entries := clusterSize / 8
	x := 62 - (clusterBits - 8) // compressed descriptor: offset bits 0..x-1, sectors x..61
	for i := 0; i < l1Size; i++ {
		l2Off := be.Uint64(img[l1Off+uint64(8*i):]) & 0x00fffffffffffe00
		if l2Off == 0 {
			continue
		}
		for j := 0; j < l2Entries; j++ {
			e := be.Uint64(img[l2Off+uint64(8*j):])
			guest := (int64(i)*int64(l2Entries) + int64(j)) * int64(clusterSize)
			if e>>62&1 == 1 {
				off := e & (1<<x - 1)
				extra := (e >> x) & (1<<(clusterBits-8) - 1)
				end := min((off&^511)+(extra+1)*512, uint64(len(img)))
				comp = append(comp, piece{guest: guest, data: img[off:end]})
			} else if host := e & 0x00fffffffffffe00; host != 0 && e&1 == 0 {
				plain = append(plain, guest)
			}
		}
	}
	return clusterSize, comp, plain, nil
}

// vmdkGrains walks the grain and metadata markers of a streamOptimized VMDK.
func vmdkGrains(img []byte) (grainSize int, grains []piece, err error) {
	le := binary.LittleEndian
	if len(img) < 512 || le.Uint32(img) != 0x564d444b {
		return 0, nil, fmt.Errorf("not a VMDK sparse extent")
	}
	grainSize = int(le.Uint64(img[20:])) * 512
	if alg := le.Uint16(img[77:]); alg != 1 {
		return 0, nil, fmt.Errorf("compressAlgorithm %d is not deflate", alg)
	}
	pos := int(le.Uint64(img[64:])) * 512 // overHead
	for pos+16 <= len(img) {
		lba, size := le.Uint64(img[pos:]), int(le.Uint32(img[pos+8:]))
		if size != 0 {
			if pos+12+size > len(img) {
				return 0, nil, fmt.Errorf("grain at %d overruns the file", pos)
			}
			grains = append(grains, piece{guest: int64(lba) * 512, data: img[pos+12 : pos+12+size], exact: true})
			pos = (pos + 12 + size + 511) &^ 511
			continue
		}
		switch typ := le.Uint32(img[pos+12:]); typ {
		case 0: // end of stream
			return grainSize, grains, nil
		case 1, 2, 3: // grain table, grain directory, footer: lba = sectors of metadata
			pos += 512 + int(lba)*512
		default:
			return 0, nil, fmt.Errorf("unknown marker type %d at %d", typ, pos)
		}
	}
	return 0, nil, fmt.Errorf("no end-of-stream marker")
}

func guestData(raw []byte, off int64, n int) []byte {
	b := make([]byte, n)
	if off < int64(len(raw)) {
		copy(b, raw[off:])
	}
	return b
}

func TestQemuImgGoldens(t *testing.T) {
	qemuImg := testtool.Require(t, "qemu-img")
	if v, err := exec.Command(qemuImg, "--version").Output(); err == nil {
		t.Logf("%s", bytes.SplitN(v, []byte("\n"), 2)[0])
	}
	dir := t.TempDir()
	// 8 MiB + 20 KiB: the last cluster/grain is partial.
	raw := diskImage(8<<20+20<<10, 7)
	// Incompressible clusters, and clusters whose deflate output lands
	// right around qemu's cluster_size-1 limit (random prefix, zero tail),
	// so the compress-or-store decision is exercised at its edge.
	copy(raw[1<<20:], randomData(192<<10, 1))
	for i := 0; i < 12; i++ {
		off := 2<<20 + i<<16
		n := 65440 + 8*i
		copy(raw[off:off+n], randomData(n, uint64(100+i)))
		clear(raw[off+n : off+65536])
	}
	copy(raw[len(raw)-20<<10:], textData(20<<10, 5))
	rawPath := filepath.Join(dir, "disk.raw")
	if err := os.WriteFile(rawPath, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	convert := func(name string, args ...string) []byte {
		t.Helper()
		out := filepath.Join(dir, name)
		args = append([]string{"convert", "-f", "raw"}, args...)
		args = append(args, rawPath, out)
		if b, err := exec.Command(qemuImg, args...).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img %v: %v\n%s", args, err, b)
		}
		img, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return img
	}

	qcow2Variants := []struct{ name, opts string }{
		{"qcow2-64k", ""},
		{"qcow2-4k", "cluster_size=4096"},
		{"qcow2-2m", "cluster_size=2M"},
	}
	for _, v := range qcow2Variants {
		t.Run(v.name, func(t *testing.T) {
			args := []string{"-c", "-O", "qcow2"}
			if v.opts != "" {
				args = append(args, "-o", v.opts)
			}
			img := convert(v.name+".qcow2", args...)
			cs, comp, plain, err := qcow2Pieces(img)
			if err != nil {
				t.Fatal(err)
			}
			c, err := NewCompressor(QCOW2)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			match, maxComp := 0, 0
			for _, p := range comp {
				if n, ok := checkPiece(t, c, QCOW2, raw, p, cs); ok {
					match++
					maxComp = max(maxComp, n)
				}
			}
			// qemu stores a cluster uncompressed when deflate's output does
			// not fit in cluster_size-1 bytes; that decision must agree too.
			plainAgree, minPlain := 0, 0
			for _, g := range plain {
				out, err := c.Compress(nil, guestData(raw, g, cs))
				if err != nil {
					t.Fatal(err)
				}
				if minPlain == 0 || len(out) < minPlain {
					minPlain = len(out)
				}
				if len(out) > cs-1 {
					plainAgree++
				} else {
					t.Errorf("cluster at %#x: qemu stored it uncompressed, but it compresses to %d <= %d bytes", g, len(out), cs-1)
				}
			}
			if len(comp) == 0 {
				t.Fatal("no compressed clusters found")
			}
			t.Logf("%s (cluster %d): %d/%d compressed clusters byte-identical (%.1f%%); %d/%d uncompressed clusters also incompressible for us (largest compressed %d, smallest stored-as-plain %d, limit %d)",
				v.name, cs, match, len(comp), 100*float64(match)/float64(len(comp)), plainAgree, len(plain), maxComp, minPlain, cs-1)
		})
	}

	t.Run("vmdk-streamOptimized", func(t *testing.T) {
		img := convert("disk.vmdk", "-O", "vmdk", "-o", "subformat=streamOptimized")
		gs, grains, err := vmdkGrains(img)
		if err != nil {
			t.Fatal(err)
		}
		if len(grains) == 0 {
			t.Fatal("no grains found")
		}
		c, err := NewCompressor(VMDK)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		match := 0
		for _, p := range grains {
			// The last grain may be partial: compare against what inflated.
			if _, ok := checkPiece(t, c, VMDK, raw, p, gs); ok {
				match++
			}
		}
		t.Logf("vmdk streamOptimized (grain %d): %d/%d grains byte-identical (%.1f%%)",
			gs, match, len(grains), 100*float64(match)/float64(len(grains)))
	})
}

// checkPiece inflates one compressed piece, checks it against the raw
// image, re-compresses it and compares bytes. It returns the stream length.
func checkPiece(t *testing.T, c *Compressor, p Params, raw []byte, pc piece, unit int) (int, bool) {
	t.Helper()
	data, consumed, err := Inflate(nil, pc.data, p, unit)
	if err != nil {
		t.Errorf("piece at guest %#x: inflate: %v", pc.guest, err)
		return 0, false
	}
	if pc.exact && consumed != len(pc.data) {
		t.Errorf("piece at guest %#x: stream is %d bytes, container says %d", pc.guest, consumed, len(pc.data))
	}
	if want := guestData(raw, pc.guest, len(data)); !bytes.Equal(data, want) {
		t.Errorf("piece at guest %#x: inflated data differs from the raw image (parser bug?)", pc.guest)
		return 0, false
	}
	re, err := c.Compress(nil, data)
	if err != nil {
		t.Errorf("piece at guest %#x: compress: %v", pc.guest, err)
		return 0, false
	}
	if !bytes.Equal(re, pc.data[:consumed]) {
		t.Errorf("piece at guest %#x: re-compressed %d bytes differ from qemu's %d bytes at offset %d (is qemu-img linked against stock zlib? zlib-ng-compat output differs)",
			pc.guest, len(re), consumed, firstDiff(re, pc.data[:consumed]))
		return 0, false
	}
	return consumed, true
}
