package vmdk

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/rehydrator/rehydrator/formats"
	"github.com/rehydrator/rehydrator/internal/formattest"
)

func TestDetect(t *testing.T) {
	img := synth{grainSectors: 8, grains: smallGrains(4, 8), compressed: true}.build(t)
	if !Detect(img) {
		t.Error("Detect(streamOptimized) = false")
	}
	if !Detect(synth{grainSectors: 8, grains: smallGrains(4, 8)}.build(t)) {
		t.Error("Detect(monolithicSparse) = false")
	}
	if Detect(img[:100]) {
		t.Error("Detect(100 bytes) = true")
	}
	bad := bytes.Clone(img)
	binary.LittleEndian.PutUint32(bad[offVersion:], 7)
	if Detect(bad) {
		t.Error("Detect(version 7) = true")
	}
	for _, s := range []string{"QFI\xfb", "COWD", "# Disk DescriptorFile"} {
		if Detect([]byte(s + strings.Repeat("\x00", 600))) {
			t.Errorf("Detect(%q...) = true", s)
		}
	}
}

// TestSynthetic round-trips small hand-made extents covering what qemu 7.2
// does not write.
func TestSynthetic(t *testing.T) {
	le := binary.LittleEndian
	grains := smallGrains(8, 8)
	stream := synth{grainSectors: 8, grains: grains, compressed: true}.build(t)
	withTail := synth{grainSectors: 8, grains: grains, compressed: true, tail: true}.build(t)
	sparse := synth{grainSectors: 8, grains: grains}.build(t)
	var allocated []byte
	for _, g := range grains {
		allocated = append(allocated, g...)
	}
	firstGrain := 2 * sector // overHead of the synthetic stream

	cases := []struct {
		name     string
		img      []byte
		content  []byte // nil: not checked
		recreate int
		kept     int
	}{
		{"stream", stream, allocated, 6, 0},
		{"stream with GT, GD, footer and EOS markers", withTail, allocated, 6, 0},
		{"monolithicSparse", sparse, allocated, 0, 0},
		{"stream ending without padding", trimZeros(stream), allocated, 6, 0},
		{"stream with trailing garbage after EOS", append(bytes.Clone(withTail), "trailing junk"...), allocated, 6, 0},
		{"unknown metadata marker type", edit(withTail, func(p []byte) {
			at := bytes.LastIndex(p, make([]byte, 32)) // inside the EOS marker
			le.PutUint32(p[roundUp(int64(at))-sector+12:], 9)
		}), allocated, 6, 0},
		{"garbage grain data", edit(stream, func(p []byte) {
			copy(p[firstGrain+markerSize:], "not a zlib stream")
		}), nil, 5, 0},
		{"grain with bytes after its stream", edit(stream, func(p []byte) {
			// The first grain's stream ends before its (grown) size.
			size := le.Uint32(p[firstGrain+8:])
			le.PutUint32(p[firstGrain+8:], size+3)
			copy(p[firstGrain+markerSize+int(size):], "xyz")
		}), allocated, 6, 0},
		{"non-zero padding", edit(stream, func(p []byte) {
			size := le.Uint32(p[firstGrain+8:])
			p[firstGrain+markerSize+int(size)+1] = 0xee
		}), allocated, 6, 0},
		{"no compression algorithm", edit(stream, func(p []byte) {
			le.PutUint16(p[offCompressAlgorithm:], 0)
		}), []byte{}, 0, 0},
		{"unknown version", edit(stream, func(p []byte) {
			le.PutUint32(p[offVersion:], 4)
		}), []byte{}, 0, 0},
		{"overHead past the end", edit(stream, func(p []byte) {
			le.PutUint64(p[offOverHead:], 1<<40)
		}), []byte{}, 0, 0},
		{"sparse grain table pointing at metadata and past the end", edit(sparse, func(p []byte) {
			le.PutUint32(p[3*sector:], 0)        // the header
			le.PutUint32(p[3*sector+4:], 3)      // the grain table itself
			le.PutUint32(p[3*sector+8:], 1<<30)  // past the end
			le.PutUint32(p[3*sector+12:], 7+8+1) // overlapping the next grain
			le.PutUint32(p[3*sector+2044:], 7+8) // a duplicate
		}), nil, 0, 0},
		{"sparse grain directory pointing past the end", edit(sparse, func(p []byte) {
			le.PutUint32(p[2*sector:], 1<<31)
		}), []byte{}, 0, 0},
		{"sparse grain directory pointing at itself", edit(sparse, func(p []byte) {
			le.PutUint32(p[2*sector:], 2)
		}), nil, 0, 0},
		{"sparse without grain directory", edit(sparse, func(p []byte) {
			le.PutUint64(p[offGDOffset:], gdAtEnd)
		}), []byte{}, 0, 0},
		{"sparse with compressed grains but no markers", func() []byte {
			// Compressed grains laid out where a grain table points.
			p := bytes.Clone(sparse[:7*sector])
			putHeader(p, 3, flagCompressed, 8*8, 8, 1, 1, 512, 0, 2, 7, compressionDeflate)
			clear(p[3*sector : 7*sector])
			for i, g := range stream2grains(t, stream) {
				le.PutUint32(p[3*sector+4*i:], uint32(len(p)/sector))
				p = append(p, g...)
				p = append(p, make([]byte, int(roundUp(int64(len(p))))-len(p))...)
			}
			return p
		}(), nil, 6, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, content, st := formattest.RoundTrip(t, Split, c.img)
			if c.content != nil && !bytes.Equal(content, c.content) {
				t.Errorf("content: %d bytes, want %d; first difference at %d", len(content), len(c.content), formattest.FirstDiff(content, c.content))
			}
			if st.Recreated != c.recreate || st.Kept != c.kept {
				t.Errorf("re-created %d, kept %d; want %d, %d (stats %+v)", st.Recreated, st.Kept, c.recreate, c.kept, st)
			}
		})
	}
}

// stream2grains returns the compressed grains of a synthetic stream.
func stream2grains(tb testing.TB, img []byte) [][]byte {
	var gs [][]byte
	for _, at := range streamGrains(tb, img) {
		size := int(binary.LittleEndian.Uint32(img[at+8:]))
		gs = append(gs, img[at+markerSize:at+markerSize+size])
	}
	return gs
}

func edit(img []byte, f func([]byte)) []byte {
	p := bytes.Clone(img)
	f(p)
	return p
}

func trimZeros(p []byte) []byte { return bytes.TrimRight(p, "\x00") }

// TestHostile checks that malformed headers and markers give clear errors.
func TestHostile(t *testing.T) {
	le := binary.LittleEndian
	stream := synth{grainSectors: 8, grains: smallGrains(4, 8), compressed: true}.build(t)
	sparse := synth{grainSectors: 8, grains: smallGrains(4, 8)}.build(t)
	firstGrain := 2 * sector
	cases := []struct {
		name string
		img  []byte
		want string
	}{
		{"short", stream[:100], "vmdk: file is 100 bytes, shorter than the 512-byte header"},
		{"not a VMDK", append([]byte("QFI\xfb"), stream[4:]...), "vmdk: not a sparse extent"},
		{"grain size 0", edit(stream, func(p []byte) { le.PutUint64(p[offGrainSize:], 0) }), "vmdk: grain size 0 sectors out of range"},
		{"grain size enormous", edit(stream, func(p []byte) { le.PutUint64(p[offGrainSize:], 1<<62) }), "vmdk: grain size 4611686018427387904 sectors out of range"},
		{"grain size 4 MiB", edit(stream, func(p []byte) { le.PutUint64(p[offGrainSize:], 8192) }), "out of range (1..4096)"},
		{"descriptor huge", edit(stream, func(p []byte) { le.PutUint64(p[offDescriptorSize:], 1<<55) }), "vmdk: descriptor of 36028797018963968 sectors exceeds"},
		{"descriptor past the end", edit(stream, func(p []byte) { le.PutUint64(p[offDescriptorOffset:], 1000) }), "vmdk: descriptor (1 sectors at sector 1000) lies outside"},
		{"descriptor over the header", edit(stream, func(p []byte) { le.PutUint64(p[offDescriptorOffset:], 0) }), "vmdk: descriptor"},
		{"marker size huge", edit(stream, func(p []byte) { le.PutUint32(p[firstGrain+8:], 0xffffffff) }), "vmdk: grain marker at 0x400: data size 4294967295 exceeds 8192 bytes"},
		{"marker size past the end", edit(stream, func(p []byte) { le.PutUint32(p[firstGrain+8:], 8000) })[:firstGrain+4000], "vmdk: grain marker at 0x400: 8000 bytes of data run past the end of the file"},
		{"stream cut after a grain marker", stream[:firstGrain+markerSize], "vmdk: grain marker at 0x400: 49 bytes of data run past the end of the file (1036 bytes)"},
		{"metadata marker past the end", edit(stream, func(p []byte) {
			clear(p[firstGrain : firstGrain+sector])
			le.PutUint64(p[firstGrain:], 1<<60)
			le.PutUint32(p[firstGrain+12:], markerGT)
		}), "vmdk: grain table marker at 0x400: 1152921504606846976 sectors run past the end"},
		{"sparse capacity huge", edit(sparse, func(p []byte) { le.PutUint64(p[offCapacity:], 1<<60) }), "vmdk: grain directory (281474976710656 tables at sector 2) runs past the end"},
		{"sparse capacity at the limit", edit(sparse, func(p []byte) {
			le.PutUint64(p[offCapacity:], ^uint64(0))
			le.PutUint64(p[offGrainSize:], 1)
		}), "vmdk: grain directory (36028797018963968 tables at sector 2) runs past the end"},
		{"sparse no grain table entries", edit(sparse, func(p []byte) { le.PutUint32(p[offNumGTEsPerGT:], 0) }), "vmdk: 0 grain table entries per table out of range"},
		{"sparse grain directory past the end", edit(sparse, func(p []byte) { le.PutUint64(p[offGDOffset:], 1<<58) }), "vmdk: grain directory (1 tables at sector 288230376151711744) runs past the end"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, _, err := formattest.Split(t, Split, c.img)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Split error %v, want one containing %q", err, c.want)
			}
		})
	}
}

// TestShortReader checks that a file shorter than the size given to Split
// is an error, not a panic or a silently short recipe.
func TestShortReader(t *testing.T) {
	img := synth{grainSectors: 8, grains: smallGrains(4, 8), compressed: true}.build(t)
	var r, c bytes.Buffer
	b, err := formats.NewBuilder(&r, &c)
	if err != nil {
		t.Fatal(err)
	}
	err = Split(bytes.NewReader(img), int64(len(img))+sector, b)
	if err == nil || !strings.Contains(err.Error(), "shorter than its stated size") {
		t.Errorf("Split error %v, want a short-file error", err)
	}
}
