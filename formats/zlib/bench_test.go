package zlib

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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

// clusters cuts data into 64 KiB clusters, dropping all-zero ones (qemu-img
// never compresses those).
func clusters(data []byte) [][]byte {
	var cl [][]byte
	for off := 0; off+benchCluster <= len(data); off += benchCluster {
		c := data[off : off+benchCluster]
		if bytes.Count(c, []byte{0}) != len(c) {
			cl = append(cl, c)
		}
	}
	return cl
}

// benchCorpora are the benchmark inputs: "disk" is 32 MiB of disk-like
// data (diskImage: file contents, zero runs, incompressible extents,
// metadata tables, text), "elf" is the go command's binary (up to 16 MiB),
// both in 64 KiB clusters.
var benchCorpora = sync.OnceValue(func() map[string][][]byte {
	m := map[string][][]byte{"disk": clusters(diskImage(32<<20, 2024))}
	if b := elfBinary(); len(b) > 0 {
		m["elf"] = clusters(b[:min(len(b), 16<<20)])
	}
	return m
})

// compressor is what the benchmarks time: the native Compressor or the
// modernc reference.
type compressor interface {
	Compress(dst, src []byte) ([]byte, error)
}

func newImpl(tb testing.TB, impl string, p Params) (compressor, func()) {
	switch impl {
	case "native":
		c, err := NewCompressor(p)
		if err != nil {
			tb.Fatal(err)
		}
		return c, func() { c.Close() }
	case "modernc":
		c, err := newRefCompressor(p)
		if err != nil {
			tb.Fatal(err)
		}
		return c, c.Close
	}
	tb.Fatalf("unknown implementation %q", impl)
	return nil, nil
}

var benchParams = []struct {
	name string
	p    Params
}{{"QCOW2", QCOW2}, {"VMDK", VMDK}}

// BenchmarkCompress times 64 KiB clusters, one Compressor reused, for each
// implementation, parameter set and corpus.
func BenchmarkCompress(b *testing.B) {
	for _, impl := range []string{"native", "modernc"} {
		for _, bp := range benchParams {
			for _, corpus := range []string{"disk", "elf"} {
				b.Run(impl+"/"+bp.name+"/"+corpus, func(b *testing.B) {
					cl := benchCorpora()[corpus]
					if len(cl) == 0 {
						b.Skip("SKIP: no " + corpus + " corpus")
					}
					c, done := newImpl(b, impl, bp.p)
					defer done()
					var out []byte
					var err error
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
				})
			}
		}
	}
}

// BenchmarkCompressParallel runs one native Compressor per goroutine.
func BenchmarkCompressParallel(b *testing.B) {
	for _, bp := range benchParams {
		b.Run(bp.name, func(b *testing.B) {
			cl := benchCorpora()["disk"]
			b.SetBytes(benchCluster)
			b.ResetTimer()
			m := startCPU()
			defer func() { m.report(b, int64(b.N)*benchCluster) }()
			b.RunParallel(func(pb *testing.PB) {
				c, err := NewCompressor(bp.p)
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
		})
	}
}

func BenchmarkInflateQCOW2(b *testing.B) {
	cl := benchCorpora()["disk"]
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

// BenchmarkNewCompressor is the cost of setting up (and closing) a
// Compressor, which Compressor reuse avoids per cluster.
func BenchmarkNewCompressor(b *testing.B) {
	for i := 0; i < b.N; i++ {
		c, err := NewCompressor(QCOW2)
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

// pySpeed times the system zlib through ctypes on the clusters (64 KiB
// each) of the file named on the command line, one stream reused with
// deflateReset (what Compressor does; a fresh stream per cluster, as qemu
// does, costs a few percent more): for each line name:level:windowBits:memLevel
// read from stdin, one pass over all clusters, answered with the CPU
// seconds it took.
const pySpeed = `
import sys, time, ctypes
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
streams = {}
print(lz.zlibVersion().decode(), flush=True)
for line in sys.stdin:
    name, level, wb, mem = line.split(":")
    s = streams.get(line)
    if s is None:
        s = streams[line] = ZStream()
        lz.deflateInit2_(ctypes.byref(s), int(level), 8, int(wb), int(mem), 0, lz.zlibVersion(), ctypes.sizeof(s))
    t = time.process_time()
    for b in bufs:
        s.next_in = ctypes.cast(b, ctypes.c_void_p); s.avail_in = 65536
        s.next_out = ctypes.cast(outb, ctypes.c_void_p); s.avail_out = 1 << 20
        lz.deflate(ctypes.byref(s), 4); lz.deflateReset(ctypes.byref(s))
    print(time.process_time() - t, flush=True)
`

// TestSpeedVsSystemZlib logs Compress's throughput next to the system
// zlib's (C, via python3 ctypes) and the modernc reference's on the same
// clusters, in MB per CPU-second, best of 5 passes that alternate between
// Go and C so that a busy machine distorts the ratio less. Opt-in:
// ZLIB_SPEED=1 (ZLIB_SPEED=nomodernc skips the slow modernc passes).
func TestSpeedVsSystemZlib(t *testing.T) {
	if os.Getenv("ZLIB_SPEED") == "" {
		t.Skip("SKIP: set ZLIB_SPEED=1 to compare throughput with the system zlib")
	}
	py := testtool.Require(t, "python3")
	dir := t.TempDir()
	const passes = 5
	var lines []string
	for _, corpus := range []string{"disk", "elf"} {
		cl := benchCorpora()[corpus]
		if len(cl) == 0 {
			continue
		}
		total := float64(len(cl)) * benchCluster / 1e6
		f := filepath.Join(dir, corpus)
		if err := os.WriteFile(f, bytes.Join(cl, nil), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(py, "-c", pySpeed, f)
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		rd := bufio.NewReader(stdout)
		readLine := func() string {
			l, err := rd.ReadString('\n')
			if err != nil {
				t.Fatalf("python3: %v", err)
			}
			return strings.TrimSpace(l)
		}
		version := readLine()
		pass := func(c compressor) time.Duration {
			var out []byte
			var err error
			m := testtool.ProcessCPU()
			for _, src := range cl {
				if out, err = c.Compress(out, src); err != nil {
					t.Fatal(err)
				}
			}
			return testtool.ProcessCPU() - m
		}
		for _, bp := range benchParams {
			nc, done := newImpl(t, "native", bp.p)
			bestGo, bestC := time.Duration(1<<62), time.Duration(1<<62)
			for i := 0; i < passes; i++ {
				bestGo = min(bestGo, pass(nc))
				fmt.Fprintf(stdin, "%s:%d:%d:%d\n", bp.name, bp.p.Level, bp.p.WindowBits, bp.p.MemLevel)
				sec, err := strconv.ParseFloat(readLine(), 64)
				if err != nil {
					t.Fatal(err)
				}
				bestC = min(bestC, time.Duration(sec*float64(time.Second)))
			}
			done()
			mod := "-"
			if os.Getenv("ZLIB_SPEED") != "nomodernc" {
				rc, done := newImpl(t, "modernc", bp.p)
				mod = fmt.Sprintf("%.1f", total/pass(rc).Seconds())
				done()
			}
			nat, c := total/bestGo.Seconds(), total/bestC.Seconds()
			lines = append(lines, fmt.Sprintf("%-5s %-4s (%4.1f MB): native %5.1f  C zlib %s %5.1f  modernc (zlib %s) %5s MB/cpu-s;  native/C %.2f",
				bp.name, corpus, total, nat, version, c, z.ZLIB_VERSION, mod, nat/c))
		}
		stdin.Close()
		cmd.Wait()
	}
	for _, l := range lines {
		t.Log(l)
	}
}
