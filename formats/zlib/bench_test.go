package zlib

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	z "modernc.org/z/lib"

	"github.com/rehydrator/rehydrator/internal/testtool"
)

// cpuMeter reports MB per CPU-second (process-wide) and CPU utilisation
// (CPU time / wall time; 2.0 means two cores busy) for a benchmark.
type cpuMeter struct {
	cpu  time.Duration
	wall time.Time
}

func startCPU() cpuMeter { return cpuMeter{testtool.ProcessCPU(), time.Now()} }

func (m cpuMeter) report(b *testing.B, bytes int64) {
	cpu, wall := testtool.ProcessCPU()-m.cpu, time.Since(m.wall)
	if cpu <= 0 || wall <= 0 {
		return
	}
	b.ReportMetric(float64(bytes)/1e6/cpu.Seconds(), "MB/cpu-s")
	b.ReportMetric(cpu.Seconds()/wall.Seconds(), "cpus")
}

const benchCluster = 64 << 10

// benchClusters is 32 MiB of disk-like data cut into 64 KiB clusters,
// with all-zero clusters dropped (qemu-img never compresses those).
var benchClusters = sync.OnceValue(func() [][]byte {
	img := diskImage(32<<20, 2024)
	var cl [][]byte
	for off := 0; off < len(img); off += benchCluster {
		c := img[off : off+benchCluster]
		zero := true
		for _, b := range c {
			if b != 0 {
				zero = false
				break
			}
		}
		if !zero {
			cl = append(cl, c)
		}
	}
	return cl
})

func benchCompress(b *testing.B, p Params) {
	cl := benchClusters()
	c, err := NewCompressor(p)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	var out []byte
	var in, outN int64
	b.SetBytes(benchCluster)
	b.ResetTimer()
	m := startCPU()
	for i := 0; i < b.N; i++ {
		src := cl[i%len(cl)]
		if out, err = c.Compress(out, src); err != nil {
			b.Fatal(err)
		}
		in += int64(len(src))
		outN += int64(len(out))
	}
	m.report(b, in)
	b.ReportMetric(float64(outN)/float64(in), "ratio")
}

func benchCompressParallel(b *testing.B, p Params) {
	cl := benchClusters()
	b.SetBytes(benchCluster)
	b.ResetTimer()
	m := startCPU()
	defer func() { m.report(b, int64(b.N)*benchCluster) }()
	b.RunParallel(func(pb *testing.PB) {
		c, err := NewCompressor(p)
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		var out []byte
		i := 0
		for pb.Next() {
			if out, err = c.Compress(out, cl[i%len(cl)]); err != nil {
				b.Error(err)
				return
			}
			i += 7
		}
	})
}

func BenchmarkCompressQCOW2(b *testing.B)         { benchCompress(b, QCOW2) }
func BenchmarkCompressVMDK(b *testing.B)          { benchCompress(b, VMDK) }
func BenchmarkCompressQCOW2Parallel(b *testing.B) { benchCompressParallel(b, QCOW2) }
func BenchmarkCompressVMDKParallel(b *testing.B)  { benchCompressParallel(b, VMDK) }

func BenchmarkInflateQCOW2(b *testing.B) {
	cl := benchClusters()
	c, _ := NewCompressor(QCOW2)
	defer c.Close()
	comp := make([][]byte, len(cl))
	for i, src := range cl {
		comp[i], _ = c.Compress(nil, src)
	}
	var out []byte
	var err error
	b.SetBytes(benchCluster)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if out, _, err = Inflate(out, comp[i%len(comp)], QCOW2, benchCluster); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNewCompressor is the cost of setting up (and closing) a zlib
// state, which Compressor reuse avoids per cluster.
func BenchmarkNewCompressor(b *testing.B) {
	for i := 0; i < b.N; i++ {
		c, err := NewCompressor(QCOW2)
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

// pySpeed times the system zlib (via python3) on the benchmark clusters:
// once the way qemu calls it (a fresh deflateInit2 per cluster, which is
// what zlib.compressobj does) and once reusing one stream with deflateReset
// through ctypes (what Compressor does). CPU seconds, best of 3.
const pySpeed = `
import sys, time, zlib, ctypes
data = open(sys.argv[1], "rb").read()
cl = [data[i:i+65536] for i in range(0, len(data), 65536)]
lz = ctypes.CDLL("libz.so.1"); lz.zlibVersion.restype = ctypes.c_char_p
class ZStream(ctypes.Structure):
    _fields_ = [("next_in", ctypes.c_void_p), ("avail_in", ctypes.c_uint), ("total_in", ctypes.c_ulong),
                ("next_out", ctypes.c_void_p), ("avail_out", ctypes.c_uint), ("total_out", ctypes.c_ulong),
                ("msg", ctypes.c_char_p), ("state", ctypes.c_void_p), ("zalloc", ctypes.c_void_p),
                ("zfree", ctypes.c_void_p), ("opaque", ctypes.c_void_p), ("data_type", ctypes.c_int),
                ("adler", ctypes.c_ulong), ("reserved", ctypes.c_ulong)]
bufs = [ctypes.create_string_buffer(c, len(c)) for c in cl]
outb = ctypes.create_string_buffer(1 << 20)
for name, wb, mem in (("QCOW2", -12, 9), ("VMDK", 15, 8)):
    fresh = reuse = 1e9
    for rep in range(3):
        t = time.process_time()
        for c in cl:
            o = zlib.compressobj(6, zlib.DEFLATED, wb, mem)
            o.compress(c); o.flush()
        fresh = min(fresh, time.process_time() - t)
        s = ZStream()
        lz.deflateInit2_(ctypes.byref(s), 6, 8, wb, mem, 0, lz.zlibVersion(), ctypes.sizeof(s))
        t = time.process_time()
        for b in bufs:
            s.next_in = ctypes.cast(b, ctypes.c_void_p); s.avail_in = 65536
            s.next_out = ctypes.cast(outb, ctypes.c_void_p); s.avail_out = 1 << 20
            lz.deflate(ctypes.byref(s), 4); lz.deflateReset(ctypes.byref(s))
        reuse = min(reuse, time.process_time() - t)
        lz.deflateEnd(ctypes.byref(s))
    n = len(cl) * 65536 / 1e6
    print("%s system zlib %s: %.1f MB/cpu-s fresh stream per cluster, %.1f MB/cpu-s with deflateReset" % (name, zlib.ZLIB_RUNTIME_VERSION, n / fresh, n / reuse))
`

// TestSpeedVsSystemZlib logs Compress's throughput next to the system
// zlib's on the same clusters, in CPU seconds so that a busy machine does
// not distort the comparison. Opt-in: ZLIB_SPEED=1.
func TestSpeedVsSystemZlib(t *testing.T) {
	if os.Getenv("ZLIB_SPEED") == "" {
		t.Skip("SKIP: set ZLIB_SPEED=1 to compare throughput with the system zlib")
	}
	py := testtool.Require(t, "python3")
	cl := benchClusters()
	dir := t.TempDir()
	f := filepath.Join(dir, "clusters")
	if err := os.WriteFile(f, bytes.Join(cl, nil), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		p    Params
	}{{"QCOW2", QCOW2}, {"VMDK", VMDK}} {
		c, err := NewCompressor(tc.p)
		if err != nil {
			t.Fatal(err)
		}
		best := time.Duration(1 << 62)
		var out []byte
		for rep := 0; rep < 3; rep++ {
			m := testtool.ProcessCPU()
			for _, src := range cl {
				if out, err = c.Compress(out, src); err != nil {
					t.Fatal(err)
				}
			}
			best = min(best, testtool.ProcessCPU()-m)
		}
		c.Close()
		t.Logf("%s this package (modernc zlib %s): %.1f MB/cpu-s", tc.name, z.ZLIB_VERSION, float64(len(cl))*benchCluster/1e6/best.Seconds())
	}
	out, err := exec.Command(py, "-c", pySpeed, f).CombinedOutput()
	if err != nil {
		t.Fatalf("python3: %v\n%s", err, out)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		t.Log(l)
	}
}
