package zstdseek

import (
	"bytes"
	"io"
	"runtime"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// FuzzReader feeds arbitrary bytes to NewReader as a blob: NewReader,
// ReadAt and WriteTo must never panic, and their allocations must stay
// bounded (a few MaxFrameSize buffers plus a multiple of the blob size).
func FuzzReader(f *testing.F) {
	for _, c := range []struct {
		size, frameSize int
	}{{0, 1024}, {1, 1024}, {1000, 256}, {5000, 1024}, {3000, 1 << 20}} {
		blob := compress(f, diskLike(c.size, uint64(c.size)), c.frameSize, 1, 0)
		f.Add(blob)
		f.Add(blob[:len(blob)/2])
	}
	f.Add(compress(f, make([]byte, 4000), 1000, 1, 0)) // zero frames
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderCRC(false))
	if err != nil {
		f.Fatal(err)
	}
	g := enc.EncodeAll([]byte("no checksum here, no checksum here"), nil)
	enc.Close()
	f.Add(rawBlob(g, []tableEntry{{uint32(len(g)), 34, 0}}, 0, 1))
	f.Add(rawBlob(g, []tableEntry{{uint32(len(g)), 34, 0}}, checksumFlag, 1))

	f.Fuzz(func(t *testing.T, blob []byte) {
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		r, err := NewReader(bytes.NewReader(blob), int64(len(blob)))
		if err != nil {
			return
		}
		defer r.Close()
		size := r.Size()
		if size < 0 || r.Frames() < 0 || r.Frames() > len(blob)/minFrameSize {
			t.Fatalf("Size %d, Frames %d for a %d-byte blob", size, r.Frames(), len(blob))
		}
		p := make([]byte, 64<<10)
		for _, off := range []int64{0, size / 3, size / 2, size - 1, size, size + 1} {
			if off < 0 {
				continue
			}
			n, err := r.ReadAt(p, off)
			if n < 0 || n > len(p) || (n < len(p) && err == nil) {
				t.Fatalf("ReadAt(%d) = %d, %v", off, n, err)
			}
		}
		if size <= 16<<20 {
			n, err := r.WriteTo(io.Discard)
			if err == nil && n != size {
				t.Fatalf("WriteTo wrote %d bytes, Size %d", n, size)
			}
		}
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4*MaxFrameSize+64*uint64(len(blob)) {
			t.Fatalf("allocated %d bytes for a %d-byte blob", alloc, len(blob))
		}
	})
}

// FuzzFrames wraps arbitrary bytes as the frames of a blob with a consistent
// seek table (split into up to two frames at split, with the given
// decompressed sizes), so that mutations reach frame decoding rather than
// seek table validation.
func FuzzFrames(f *testing.F) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderCRC(true))
	if err != nil {
		f.Fatal(err)
	}
	a := enc.EncodeAll(diskLike(3000, 1), nil)
	b := enc.EncodeAll(make([]byte, 5000), nil)
	enc.Close()
	f.Add(append(bytes.Clone(a), b...), uint16(len(a)), uint32(3000), uint32(5000), true)
	f.Add(append(bytes.Clone(a), b...), uint16(len(a)), uint32(3000), uint32(5000), false)
	f.Add(append(bytes.Clone(b), b...), uint16(len(b)), uint32(5000), uint32(5000), false)

	f.Fuzz(func(t *testing.T, frames []byte, split uint16, d0, d1 uint32, sums bool) {
		d0 %= 1 << 20 // keep executions fast; size limits are tested elsewhere
		d1 %= 1 << 20
		s := min(int(split), len(frames))
		entries := []tableEntry{{uint32(s), d0, 0}, {uint32(len(frames) - s), d1, 0}}
		if s == 0 || s == len(frames) {
			entries = []tableEntry{{uint32(len(frames)), d0, 0}}
		}
		desc := byte(0)
		if sums {
			desc = checksumFlag
		}
		blob := rawBlob(frames, entries, desc, uint32(len(entries)))
		r, err := NewReader(bytes.NewReader(blob), int64(len(blob)))
		if err != nil {
			return
		}
		defer r.Close()
		p := make([]byte, 4096)
		for _, off := range []int64{0, int64(d0) - 1, int64(d0), r.Size() - 1} {
			if off >= 0 {
				_, _ = r.ReadAt(p, off)
			}
		}
		var out bytes.Buffer
		n, err := r.WriteTo(&out)
		if err != nil {
			return
		}
		if n != r.Size() || int64(out.Len()) != n {
			t.Fatalf("WriteTo: %d bytes, Size %d", n, r.Size())
		}
		all := make([]byte, n)
		if m, err := r.ReadAt(all, 0); m != len(all) || (err != nil && err != io.EOF) || !bytes.Equal(all, out.Bytes()) {
			t.Fatalf("ReadAt disagrees with WriteTo: %d, %v", m, err)
		}
	})
}
