package vhdx

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/rehydrator/rehydrator/formats"
	"github.com/rehydrator/rehydrator/internal/formattest"
)

func TestStructSizes(t *testing.T) {
	for _, c := range []struct {
		v    any
		want int
	}{
		{header{}, headerSize},
		{regionTableHeader{}, 16},
		{regionTableEntry{}, 32},
		{metadataTableHeader{}, 32},
		{metadataTableEntry{}, 32},
	} {
		if n := binary.Size(c.v); n != c.want {
			t.Errorf("%T is %d bytes, want %d", c.v, n, c.want)
		}
	}
	// The largest tables fit their 64 KiB.
	if 16+32*maxRegionEntries > regionTableSize || 32+32*maxMetadataEntries > metadataTableSize {
		t.Error("table entries overflow their table")
	}
}

func TestGUID(t *testing.T) {
	// The BAT region's GUID as qemu-img stores it.
	stored := [16]byte{0x66, 0x77, 0xc2, 0x2d, 0x23, 0xf6, 0x00, 0x42, 0x9d, 0x64, 0x11, 0x5e, 0x9b, 0xfd, 0x4a, 0x08}
	if got := guidString(stored); got != batGUID {
		t.Errorf("guidString = %s, want %s", got, batGUID)
	}
	for _, g := range []string{batGUID, metadataGUID, fileParametersGUID, virtualDiskSizeGUID, logicalSectorSizeGUID} {
		if got := guidString(guidBytes(t, g)); got != g {
			t.Errorf("%s comes back as %s", g, got)
		}
	}
}

func TestChecksum(t *testing.T) {
	// The field at 4..7 counts as zero. (Real checksums are TestQemu's:
	// readLayout accepts qemu-img's files only if theirs hold.)
	p := []byte("1234\xff\xff\xff\xff9")
	want := []byte("1234\x00\x00\x00\x009")
	if a, b := checksum(p), checksum(want); a != b {
		t.Errorf("checksum depends on its field: %#x, %#x", a, b)
	}
	img := synth{blockSize: mib, blocks: smallBlocks(2, mib)}.build(t)
	if !checksumOK(img[headerAt[0]:][:headerSize]) || !checksumOK(img[regionTableAt[1]:][:regionTableSize]) {
		t.Error("synthetic image's checksums do not check")
	}
}

func TestDetect(t *testing.T) {
	if !Detect([]byte("vhdxfile\x00\x00")) || Detect([]byte("vhdxfil")) || Detect([]byte("conectix")) {
		t.Error("Detect")
	}
}

// TestSynth round-trips small images of each kind and checks what becomes
// content.
func TestSynth(t *testing.T) {
	blocks := smallBlocks(5, mib) // present: 0, 1, 3, 4
	content := func(blocks [][]byte, bs int) []byte {
		var out []byte
		for _, b := range blocks {
			if b != nil {
				out = append(out, formattest.NonZeroPieces(append(bytes.Clone(b), make([]byte, bs-len(b))...), formats.DiskZeroPiece)...)
			}
		}
		return out
	}
	present := func(n int) []byte { return content(blocks[:n], mib) }
	for _, c := range []struct {
		name    string
		s       synth
		content []byte
	}{
		{"dynamic", synth{blockSize: mib, blocks: blocks}, present(5)},
		{"log", synth{blockSize: mib, blocks: blocks, logLength: mib}, present(5)},
		{"log-to-replay", synth{blockSize: mib, blocks: blocks, logLength: mib, logGUID: true}, present(5)},
		{"4k-sectors", synth{blockSize: 2 * mib, sectorSize: 4096, blocks: smallBlocks(2, 2*mib)}, content(smallBlocks(2, 2*mib), 2*mib)},
		{"differencing", synth{blockSize: mib, blocks: blocks, hasParent: true}, present(5)},
		// The last block's bytes past the disk's size are not content.
		{"short-disk", synth{blockSize: mib, blocks: blocks[:1], diskSize: 100 << 10}, blocks[0][:100<<10]},
		{"no-blocks", synth{blockSize: 32 * mib, blocks: make([][]byte, 3)}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, content, _ := formattest.RoundTrip(t, Split, c.s.build(t))
			if !bytes.Equal(content, c.content) {
				t.Errorf("content is %d bytes, want %d", len(content), len(c.content))
			}
		})
	}
}

// TestHostile: broken or hostile layouts give errors.
func TestHostile(t *testing.T) {
	le := binary.LittleEndian
	s := synth{blockSize: mib, blocks: smallBlocks(4, mib)}
	// Where the synthetic image keeps things.
	const (
		batAt   = headerSectionSize
		metaAt  = batAt + 4*kib
		rtEntry = 16 // first region table entry (BAT), in each table
	)
	bothTables := func(img []byte, off int64, v any) {
		for _, at := range regionTableAt {
			put(t, img, at+off, v)
		}
	}
	for _, c := range []struct {
		name, want string
		edit       func([]byte) []byte // then the checksums are set, but for "crc-" cases
	}{
		{"tiny", "shorter than", func(p []byte) []byte { return p[:100] }},
		{"identifier", "file type identifier", func(p []byte) []byte { p[0] = 'V'; return p }},
		{"crc-headers", "no valid header", func(p []byte) []byte { p[headerAt[0]+9] ^= 1; p[headerAt[1]+100] ^= 1; return p }},
		{"header-version", "version 2", func(p []byte) []byte {
			for _, at := range headerAt {
				le.PutUint16(p[at+66:], 2)
			}
			return p
		}},
		{"log-outside", "log", func(p []byte) []byte {
			for _, at := range headerAt {
				le.PutUint32(p[at+68:], mib)
				le.PutUint64(p[at+72:], uint64(len(p)))
			}
			return p
		}},
		{"log-on-bat", "overlaps", func(p []byte) []byte {
			for _, at := range headerAt {
				le.PutUint32(p[at+68:], mib)
				le.PutUint64(p[at+72:], batAt)
			}
			return p
		}},
		{"crc-region-tables", "no valid region table", func(p []byte) []byte { p[regionTableAt[0]+100] ^= 1; p[regionTableAt[1]+9] ^= 1; return p }},
		{"region-count", "no valid region table", func(p []byte) []byte {
			bothTables(p, 8, uint32(maxRegionEntries+1))
			return p
		}},
		{"no-bat", "no BAT", func(p []byte) []byte { bothTables(p, rtEntry, [16]byte{1}); return p }},
		{"two-bats", "two BAT regions", func(p []byte) []byte {
			bothTables(p, rtEntry+32, guidBytes(t, batGUID))
			return p
		}},
		{"region-outside", "lies outside", func(p []byte) []byte { bothTables(p, rtEntry+16, uint64(1<<40)); return p }},
		{"region-in-header", "overlaps header section", func(p []byte) []byte { bothTables(p, rtEntry+16, uint64(4096)); return p }},
		{"regions-overlap", "overlaps", func(p []byte) []byte { bothTables(p, rtEntry+32+16, uint64(batAt)); return p }},
		{"metadata-sig", "metadata table", func(p []byte) []byte { p[metaAt] = 'M'; return p }},
		{"metadata-count", "entries", func(p []byte) []byte { le.PutUint16(p[metaAt+10:], 3000); return p }},
		{"metadata-missing", "no item", func(p []byte) []byte { p[metaAt+32] ^= 1; return p }},
		{"metadata-twice", "twice", func(p []byte) []byte { copy(p[metaAt+64:metaAt+80], p[metaAt+32:metaAt+48]); return p }},
		{"metadata-item-outside", "inside", func(p []byte) []byte { le.PutUint32(p[metaAt+32+16:], 1<<30); return p }},
		{"metadata-item-in-table", "inside", func(p []byte) []byte { le.PutUint32(p[metaAt+32+16:], 100); return p }},
		{"block-size", "block size", func(p []byte) []byte { le.PutUint32(p[metaAt+metadataTableSize:], 3*mib); return p }},
		{"block-size-small", "block size", func(p []byte) []byte { le.PutUint32(p[metaAt+metadataTableSize:], 4096); return p }},
		{"sector-size", "logical sector size", func(p []byte) []byte { le.PutUint32(p[metaAt+metadataTableSize+16:], 1024); return p }},
		{"disk-size-zero", "virtual disk size", func(p []byte) []byte { le.PutUint64(p[metaAt+metadataTableSize+8:], 0); return p }},
		{"disk-size-huge", "virtual disk size", func(p []byte) []byte { le.PutUint64(p[metaAt+metadataTableSize+8:], 1<<62); return p }},
		{"bat-too-short", "fewer than", func(p []byte) []byte { le.PutUint64(p[metaAt+metadataTableSize+8:], 1<<40); return p }},
		{"block-state", "unknown state", func(p []byte) []byte { p[batAt] = p[batAt]&^7 | 4; return p }},
		{"block-past-end", "runs past", func(p []byte) []byte {
			le.PutUint64(p[batAt:], uint64(len(p))|payloadFullyPresent)
			return p
		}},
		{"block-far", "runs past", func(p []byte) []byte { le.PutUint64(p[batAt:], ^uint64(0)&^7|payloadFullyPresent); return p }},
		{"block-twice", "overlaps", func(p []byte) []byte { copy(p[batAt+8:batAt+16], p[batAt:batAt+8]); return p }},
		{"block-on-header", "overlaps", func(p []byte) []byte { le.PutUint64(p[batAt:], payloadFullyPresent); return p }},
		{"block-on-bat", "overlaps", func(p []byte) []byte { le.PutUint64(p[batAt:], batAt|payloadFullyPresent); return p }},
	} {
		t.Run(c.name, func(t *testing.T) {
			img := c.edit(s.build(t))
			if !strings.HasPrefix(c.name, "crc-") {
				fixChecksums(img)
			}
			_, _, _, err := formattest.Split(t, Split, img)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Split: %v, want an error with %q", err, c.want)
			}
		})
	}
}

// The fuzz seeds' sparse form expands to the image, which splits.
func TestSparse(t *testing.T) {
	img := synth{blockSize: mib, blocks: smallBlocks(4, 64<<10), hasParent: true, logLength: mib}.build(t)
	for _, fix := range []bool{false, true} {
		if got := expand(sparse(img, fix)); !bytes.Equal(got, img) {
			t.Fatalf("fix %v: expands to %d bytes differing at %#x", fix, len(got), formattest.FirstDiff(got, img))
		}
	}
	formattest.RoundTrip(t, Split, img)
	if got := expand([]byte("vhdxfile")); string(got) != "vhdxfile" {
		t.Errorf("a plain input expands to %q", got)
	}
}
