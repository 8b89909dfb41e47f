package qcow2

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/rehydrator/rehydrator/formats/zlib"
	"github.com/rehydrator/rehydrator/internal/formattest"
	"github.com/rehydrator/rehydrator/internal/testtool"
)

// A small qcow2 image built by hand, so the parser is tested (and fuzzed)
// without qemu: version 3, 512-byte clusters, laid out as
//
//	cluster 0  header, feature name table
//	cluster 1  refcount table -> cluster 2
//	cluster 2  refcount block (16-bit refcounts)
//	cluster 3  L1 table (1 entry) -> cluster 4
//	cluster 4  L2 table: guest cluster 0 -> data cluster 5,
//	           1..3 -> compressed streams A, B, C, 4 -> zero cluster
//	cluster 5  data
//	cluster 6+ streams A, B, C back to back (C runs into cluster 7)
const (
	synthBits   = 9
	synthCS     = 1 << synthBits
	synthRefT   = 1 * synthCS
	synthRefB   = 2 * synthCS
	synthL1     = 3 * synthCS
	synthL2     = 4 * synthCS
	synthData   = 5 * synthCS
	synthComp   = 6 * synthCS
	synthGuest  = 64 * synthCS // one L2 table's worth
	synthCopied = 1 << 63
)

type synth struct {
	img     []byte
	guest   []byte
	streams []piece // A, B, C: exact stream extents
}

func buildSynth(tb testing.TB) synth {
	tb.Helper()
	be := binary.BigEndian
	rng := rand.New(rand.NewPCG(1, 2))
	s := synth{guest: make([]byte, synthGuest)}
	formattest.FillText(s.guest[0:synthCS], rng)
	formattest.FillText(s.guest[synthCS:2*synthCS], rng)
	formattest.FillRecords(s.guest[2*synthCS:3*synthCS], rng)
	formattest.FillText(s.guest[3*synthCS:4*synthCS], rng)

	img := make([]byte, 8*synthCS)
	h := img[:synthCS]
	copy(h, magic)
	be.PutUint32(h[4:], 3)
	be.PutUint32(h[20:], synthBits)
	be.PutUint64(h[24:], synthGuest)
	be.PutUint32(h[36:], 1) // l1_size
	be.PutUint64(h[40:], synthL1)
	be.PutUint64(h[48:], synthRefT)
	be.PutUint32(h[56:], 1) // refcount_table_clusters
	be.PutUint32(h[96:], 4) // refcount_order
	be.PutUint32(h[100:], 112)
	h[104] = compressionDeflate
	names := []struct {
		kind, bit byte
		name      string
	}{{0, 0, "dirty bit"}, {0, 1, "corrupt bit"}, {0, 5, "test feature"}, {1, 0, "lazy refcounts"}}
	be.PutUint32(h[112:], extFeatureNames)
	be.PutUint32(h[116:], uint32(48*len(names)))
	for i, n := range names {
		e := h[120+48*i:]
		e[0], e[1] = n.kind, n.bit
		copy(e[2:48], n.name)
	}
	// The end-of-extensions marker is the zeros that follow.

	be.PutUint64(img[synthRefT:], synthRefB)
	be.PutUint64(img[synthL1:], synthL2|synthCopied)
	be.PutUint64(img[synthL2:], synthData|synthCopied)
	copy(img[synthData:], s.guest[:synthCS])

	c, err := zlib.NewCompressor(zlib.QCOW2)
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	refs := make([]uint16, 8)
	for i := range 6 {
		refs[i] = 1
	}
	off := int64(synthComp)
	for g := 1; g <= 3; g++ {
		z, err := c.Compress(nil, s.guest[g*synthCS:(g+1)*synthCS])
		if err != nil {
			tb.Fatal(err)
		}
		if len(z) >= synthCS {
			tb.Fatalf("stream %d does not compress (%d bytes)", g, len(z))
		}
		copy(img[off:], z)
		end := off + int64(len(z))
		extra := (end-1)>>9 - off>>9
		be.PutUint64(img[synthL2+8*g:], 1<<62|uint64(extra)<<61|uint64(off))
		for cl := off >> synthBits; cl <= ((end-1)|511)>>synthBits; cl++ {
			refs[cl]++
		}
		s.streams = append(s.streams, piece{off, end})
		off = end
	}
	if off <= 7*synthCS || off > 8*synthCS {
		tb.Fatalf("streams end at %#x, want inside cluster 7", off)
	}
	be.PutUint64(img[synthL2+8*4:], 1) // zero cluster
	for i, r := range refs {
		be.PutUint16(img[synthRefB+2*i:], r)
	}
	s.img = img
	return s
}

func TestSynthRoundTrip(t *testing.T) {
	s := buildSynth(t)
	if qemu, err := exec.LookPath("qemu-img"); err == nil {
		// The hand-made image is a valid one holding the guest disk.
		dir := t.TempDir()
		img := formattest.WriteFile(t, filepath.Join(dir, "s.qcow2"), s.img)
		raw := formattest.WriteFile(t, filepath.Join(dir, "s.raw"), s.guest)
		formattest.Check(t, img)
		testtool.Run(t, qemu, "compare", "-f", "qcow2", "-F", "raw", img, raw)
	}
	h, err := readHeader(bytes.NewReader(s.img), int64(len(s.img)))
	if err != nil {
		t.Fatal(err)
	}
	if len(h.extensions) != 1 || h.extensions[0].typ != extFeatureNames || h.featureNames[feature{0, 5}] != "test feature" {
		t.Errorf("extensions %+v, feature names %q", h.extensions, h.featureNames)
	}
	_, content, st := formattest.RoundTrip(t, Split, s.img)
	if st.Recreated != 3 || st.Kept != 0 {
		t.Errorf("recreated %d kept %d, want 3 and 0", st.Recreated, st.Kept)
	}
	// Content: the data cluster, then the three inflated clusters.
	if want := s.guest[:4*synthCS]; !bytes.Equal(content, want) {
		t.Errorf("content is %d bytes, want the guest's first 4 clusters", len(content))
	}
}

// TestSynthKept: a stream that inflates but that zlib does not re-create
// (Go's compress/flate made it), and one that does not inflate, stay in the
// recipe and still round-trip.
func TestSynthKept(t *testing.T) {
	s := buildSynth(t)
	img := bytes.Clone(s.img)
	// Stream C is the last: Go's stream takes its place, running on to
	// the end of the file if need be, and its descriptor is updated.
	c := s.streams[2]
	z := goDeflate(t, s.guest[3*synthCS:4*synthCS], img[c.off:])
	if z == nil {
		t.Fatalf("no Go stream fits the %d bytes after stream C", int64(len(img))-c.off)
	}
	clear(img[c.off:])
	copy(img[c.off:], z)
	extra := (c.off+int64(len(z))-1)>>9 - c.off>>9
	binary.BigEndian.PutUint64(img[synthL2+8*3:], 1<<62|uint64(extra)<<61|uint64(c.off))
	b := s.streams[1]
	for i := b.off; i < b.end; i++ {
		img[i] = 0xff // no longer a deflate stream
	}
	_, content, st := formattest.RoundTrip(t, Split, img)
	if st.Recreated != 1 || st.Kept != 1 {
		t.Errorf("recreated %d kept %d, want 1 and 1", st.Recreated, st.Kept)
	}
	if want := s.guest[:2*synthCS]; !bytes.Equal(content, want) {
		t.Errorf("content is %d bytes, want the data cluster and stream A inflated", len(content))
	}
}

// goDeflate compresses data with Go's compress/flate into a stream other
// than the one at the start of room and no longer than room; nil if none
// fits.
func goDeflate(tb testing.TB, data, room []byte) []byte {
	tb.Helper()
	for _, level := range []int{flate.BestCompression, 8, 7, 6, 5, 4, 3, 2, flate.BestSpeed} {
		var z bytes.Buffer
		fw, _ := flate.NewWriter(&z, level)
		fw.Write(data)
		fw.Close()
		if z.Len() <= len(room) && !bytes.Equal(z.Bytes(), room[:z.Len()]) {
			return z.Bytes()
		}
	}
	return nil
}

func TestDetect(t *testing.T) {
	s := buildSynth(t)
	for _, tc := range []struct {
		in   []byte
		want bool
	}{
		{s.img, true},
		{s.img[:8], true},
		{s.img[:7], false},
		{nil, false},
		{[]byte("QFI\xfb\x00\x00\x00\x01"), false}, // qcow version 1
		{[]byte("QFI\xfb\x00\x00\x00\x04"), false},
		{[]byte("QFI\xfa\x00\x00\x00\x03"), false},
	} {
		if got := Detect(tc.in); got != tc.want {
			t.Errorf("Detect(%q) = %v, want %v", tc.in[:min(len(tc.in), 8)], got, tc.want)
		}
	}
}

// TestHostile: corrupt or hostile images are refused with a clear error,
// not a panic, and without reading or allocating beyond the file's size.
func TestHostile(t *testing.T) {
	be := binary.BigEndian
	s := buildSynth(t)
	put64 := func(off int, v uint64) func([]byte) []byte {
		return func(p []byte) []byte { be.PutUint64(p[off:], v); return p }
	}
	put32 := func(off int, v uint32) func([]byte) []byte {
		return func(p []byte) []byte { be.PutUint32(p[off:], v); return p }
	}
	for _, tc := range []struct {
		name   string
		mutate func([]byte) []byte
		want   string
	}{
		{"short", func(p []byte) []byte { return p[:60] }, "too short for a header"},
		{"magic", func(p []byte) []byte { p[3] = 0; return p }, "not a qcow2 image"},
		{"version", put32(4, 4), "not a qcow2 image"},
		{"cluster bits", put32(20, 30), "cluster_bits 30 out of range"},
		{"header length", put32(100, 4096), "header_length 4096 invalid"},
		{"header length odd", put32(100, 107), "header_length 107 invalid"},
		{"refcount order", put32(96, 7), "refcount_order 7"},
		{"crypt", put32(32, 9), "crypt_method 9"},
		{"compression type", func(p []byte) []byte { p[104] = 2; return p }, "unknown compression_type 2"},
		{"compression bit", func(p []byte) []byte { p[104] = 1; return p }, "disagrees with incompatible feature bit 3"},
		{"unknown feature", put64(72, 1<<5), `bit 5 "test feature"`},
		{"unnamed feature", put64(72, 1<<40), `bit 40 ""`},
		{"extension", put32(116, 1000), "header extension 0x6803f857 at 0x70"},
		{"backing name", func(p []byte) []byte { be.PutUint64(p[8:], 500); be.PutUint32(p[16:], 100); return p }, "backing file name"},
		{"no refcount table", put32(56, 0), "no refcount table"},
		{"refcount table size", put32(56, 1<<30), "refcount table of 1073741824 clusters"},
		{"refcount table unaligned", put64(48, synthRefT+8), "refcount table at 0x208 is not cluster-aligned"},
		{"refcount table past EOF", put32(56, 100), "refcount table at 0x200: 51200 bytes run past the end"},
		{"refcount table on header", put64(48, 0), "refcount table at 0x0: overlaps the header cluster"},
		{"refcount block on L1", put64(synthRefT, synthL1), "the active L1 table at 0x600: overlaps a refcount block"},
		{"L1 size", put32(36, 1<<30), "more than the limit"},
		{"L1 past EOF", put32(36, 1<<20), "the active L1 table at 0x600: 8388608 bytes run past the end"},
		{"L1 unaligned", put64(40, synthL1+1), "is not cluster-aligned"},
		{"L1 on refcount table", put64(40, synthRefT), "the active L1 table at 0x200: overlaps the refcount table"},
		{"L2 is L1", put64(synthL1, synthL1), "L2 table at 0x600: overlaps an L1 table"},
		{"L2 past EOF", put64(synthL1, 1<<40), "L2 table at 0x10000000000 is not a cluster-aligned cluster inside the file"},
		{"data on L2", put64(synthL2, synthL2), "data cluster at 0x800: overlaps an L2 table"},
		{"compressed in header", put64(synthL2+8, 1<<62|0x10), "compressed cluster at 0x10: overlaps the header cluster"},
		{"compressed on data", put64(synthL2+8, 1<<62|synthData+3), "compressed cluster at 0xa03: overlaps a data cluster"},
		{"snapshots", put32(60, 1<<20), "1048576 snapshots exceed"},
		{"snapshot table past EOF", func(p []byte) []byte { be.PutUint32(p[60:], 1); be.PutUint64(p[64:], 8*synthCS); return p }, "snapshot table at 0x1000: entry 0 runs past the end of the file"},
		{"snapshot L1 on L2", func(p []byte) []byte {
			// A snapshot table in cluster 7's tail is not allowed to
			// share the compressed cluster; put it in a new cluster.
			p = append(p, make([]byte, synthCS)...)
			be.PutUint32(p[60:], 1)
			be.PutUint64(p[64:], 8*synthCS)
			be.PutUint64(p[8*synthCS:], synthL2)
			be.PutUint32(p[8*synthCS+8:], 1)
			return p
		}, "the active L1 table at 0x600: entry 0: L2 table at 0x800: overlaps an L1 table"},
		{"snapshot L1 on L1", func(p []byte) []byte {
			p = append(p, make([]byte, synthCS)...)
			be.PutUint32(p[60:], 1)
			be.PutUint64(p[64:], 8*synthCS)
			be.PutUint64(p[8*synthCS:], synthL1)
			be.PutUint32(p[8*synthCS+8:], 1)
			return p
		}, "snapshot 0's L1 table at 0x600: overlaps an L1 table"},
		{"snapshot extra data", func(p []byte) []byte {
			p = append(p, make([]byte, synthCS)...)
			be.PutUint32(p[60:], 1)
			be.PutUint64(p[64:], 8*synthCS)
			be.PutUint32(p[8*synthCS+36:], 5000)
			return p
		}, "5000 bytes of extra data exceed 1024"},
		{"truncated", func(p []byte) []byte { return p[:synthL2+100] }, "L2 table at 0x800 is not a cluster-aligned cluster inside the file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := tc.mutate(bytes.Clone(s.img))
			_, _, _, err := formattest.Split(t, Split, img)
			if err == nil {
				t.Fatalf("Split succeeded, want an error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "qcow2: ") {
				t.Fatalf("error %q, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestHostileAllocation: the largest tables a header may announce are
// refused or read only as far as the file holds them.
func TestHostileAllocation(t *testing.T) {
	be := binary.BigEndian
	s := buildSynth(t)
	for _, mutate := range []func([]byte){
		func(p []byte) { be.PutUint32(p[36:], maxL1Bytes/8) },
		func(p []byte) { be.PutUint32(p[56:], maxRefTableBytes>>synthBits) },
		func(p []byte) { be.PutUint32(p[60:], maxSnapshots); be.PutUint64(p[64:], 7*synthCS) },
		func(p []byte) { be.PutUint32(p[20:], maxClusterBits) },
	} {
		img := bytes.Clone(s.img)
		mutate(img)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err := readLayout(bytes.NewReader(img), int64(len(img)))
		runtime.ReadMemStats(&after)
		if err == nil {
			t.Errorf("readLayout accepted a hostile header")
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
			t.Errorf("readLayout allocated %d bytes for a %d-byte file (%v)", n, len(img), err)
		}
	}
}
