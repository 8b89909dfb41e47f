package zlib

import (
	"bytes"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	z "modernc.org/z/lib"
)

// rss is the process's resident set size in bytes (Linux), or -1.
func rss() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return -1
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return -1
	}
	pages, err := strconv.ParseInt(string(f[1]), 10, 64)
	if err != nil {
		return -1
	}
	return pages * int64(os.Getpagesize())
}

// footprint is what a Compressor holds after compressing n bytes, by
// zlib's allocation rules (deflate.c: window 2*wsize bytes, prev wsize Pos,
// head hash_size Pos, pending_buf 4*lit_bufsize) plus the z_stream and the
// input/output buffers, each rounded like reserve does.
func footprint(p Params, n int) (state, buffers int) {
	wbits := abs(p.WindowBits) & 15
	if wbits == 8 {
		wbits = 9
	}
	wsize := 1 << wbits
	hashSize := 1 << (p.MemLevel + 7)
	litBufsize := 1 << (p.MemLevel + 6)
	state = int(unsafe.Sizeof(z.Deflate_state{})) + int(zStreamSize)
	c, _ := NewCompressor(p)
	defer c.Close()
	bound := int(z.XdeflateBound(c.m.tls, c.m.strm, z.ULong(n)))
	round := func(x int) int { return (x + 0xfff) &^ 0xfff }
	return state + 2*wsize + 2*wsize + 2*hashSize + 4*litBufsize, round(n) + round(bound)
}

// TestCompressorMemory measures what one Compressor costs once it has
// compressed a 64 KiB cluster (zlib state and C-side buffers live outside
// the Go heap, so RSS is the measure), and that Close gives it back. It runs
// in a child process so other tests' memory does not blur the numbers.
func TestCompressorMemory(t *testing.T) {
	if rss() < 0 {
		t.Skip("SKIP: no /proc/self/statm")
	}
	if os.Getenv("ZLIB_MEMTEST_CHILD") != "1" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCompressorMemory$", "-test.v")
		cmd.Env = append(os.Environ(), "ZLIB_MEMTEST_CHILD=1")
		out, err := cmd.CombinedOutput()
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if strings.Contains(l, "memory_test.go") {
				t.Log(strings.TrimSpace(l))
			}
		}
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		return
	}
	cluster := diskImage(64<<10, 77)
	for _, p := range []Params{QCOW2, VMDK} {
		const n = 64
		runtime.GC()
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		before := rss()
		cs := make([]*Compressor, n)
		for i := range cs {
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
		per := (rss() - before) / n
		goHeap := (int64(ms1.HeapAlloc) - int64(ms0.HeapAlloc)) / n
		state, bufs := footprint(p, len(cluster))
		t.Logf("%v: %d KiB allocated per Compressor after one 64 KiB cluster (zlib state %d KiB + buffers %d KiB), %d KiB of it resident; Go heap %d B",
			p, (state+bufs)>>10, state>>10, bufs>>10, per>>10, goHeap)
		if per > 1<<20 {
			t.Errorf("%v: %d bytes per Compressor, expected well under 1 MiB", p, per)
		}
		mid := rss()
		for _, c := range cs {
			c.Close()
		}
		t.Logf("%v: Close released %d KiB of %d KiB", p, (mid-rss())>>10, (mid-before)>>10)
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
