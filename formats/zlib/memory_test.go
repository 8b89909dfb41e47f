package zlib

import (
	"runtime"
	"testing"
	"unsafe"
)

// footprint is what a Compressor holds after compressing n <= 64 KiB bytes
// into a nil dst: uint16 hash heads and chain links (levels 1..9), the
// symbol buffer, the Huffman state and the scratch output buffer.
func footprint(p Params, n int) int {
	c, _ := NewCompressor(p)
	defer c.Close()
	return 2<<16 + 2<<15 + 4*(1<<(p.MemLevel+6)-1) + int(unsafe.Sizeof(deflater{})) + c.bound(n) + 64
}

// TestCompressorMemory measures what one Compressor costs on the Go heap
// once it has compressed a 64 KiB cluster, and that Compress into a reused
// dst allocates nothing.
func TestCompressorMemory(t *testing.T) {
	cluster := diskImage(64<<10, 77)
	for _, p := range []Params{QCOW2, VMDK} {
		const n = 32
		runtime.GC()
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		cs := make([]*Compressor, n)
		for i := range cs {
			// Fresh states, not pooled ones: Close is only called below.
			c, err := NewCompressor(p)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Compress(nil, cluster); err != nil {
				t.Fatal(err)
			}
			cs[i] = c
		}
		runtime.ReadMemStats(&ms1)
		per := (int64(ms1.TotalAlloc) - int64(ms0.TotalAlloc)) / n
		want := footprint(p, len(cluster))
		t.Logf("%v: %d KiB allocated per Compressor after one 64 KiB cluster (expected %d KiB)", p, per>>10, want>>10)
		if per > 1<<20 || per > int64(want)*5/4 {
			t.Errorf("%v: %d bytes per Compressor, expected about %d", p, per, want)
		}
		c := cs[0]
		dst := make([]byte, 0, c.bound(len(cluster))+64)
		if a := testing.AllocsPerRun(20, func() {
			var err error
			if dst, err = c.Compress(dst, cluster); err != nil {
				t.Fatal(err)
			}
		}); a != 0 {
			t.Errorf("%v: Compress into a big enough dst allocates %v times per call", p, a)
		}
		if a := testing.AllocsPerRun(20, func() {
			if _, err := c.Compress(nil, cluster); err != nil {
				t.Fatal(err)
			}
		}); a != 1 {
			t.Errorf("%v: Compress into nil allocates %v times per call, want 1 (the result)", p, a)
		}
		for _, c := range cs {
			c.Close()
		}
	}
}
