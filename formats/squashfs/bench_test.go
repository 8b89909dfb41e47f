package squashfs

import (
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/rehydrator/rehydrator/internal/testtool"
)

// benchImage makes a zstd image (mksquashfs's default level, 15, as Fedora
// CoreOS uses) of the Go toolchain's tool binaries, some 64 MiB.
func benchImage(b *testing.B) *Image {
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		b.Skipf("go env GOROOT: %v", err)
	}
	src := filepath.Join(strings.TrimSpace(string(goroot)), "pkg", "tool", runtime.GOOS+"_"+runtime.GOARCH)
	img := mksquashfs(b, src, filepath.Join(b.TempDir(), "img"), "-comp", "zstd")
	return openFile(b, img)
}

// BenchmarkViewSequential reads the whole View in order, 1 MiB at a time
// and through io.Copy's 32 KiB reads, and reports MB/s of View bytes and
// the CPU time per View byte (the machine may be busy).
func BenchmarkViewSequential(b *testing.B) {
	im := benchImage(b)
	for _, c := range []struct {
		name string
		read func(v *View) (int64, error)
	}{
		{"1MiB", func(v *View) (int64, error) {
			buf := make([]byte, 1<<20)
			var off int64
			for off < v.Size() {
				n, err := v.ReadAt(buf, off)
				off += int64(n)
				if err != nil && err != io.EOF {
					return off, err
				}
			}
			return off, nil
		}},
		{"io.Copy", func(v *View) (int64, error) {
			return io.Copy(io.Discard, io.NewSectionReader(v, 0, v.Size()))
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(im.Files().Size())
			cpu0 := testtool.ProcessCPU()
			start := time.Now()
			for range b.N {
				// A fresh View each time: an empty cache.
				v := &View{im: im, cache: newCache(cacheUnits)}
				if n, err := c.read(v); err != nil || n != v.Size() {
					b.Fatalf("read %d of %d: %v", n, v.Size(), err)
				}
			}
			cpu := testtool.ProcessCPU() - cpu0
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N)/float64(im.Files().Size())*1e3, "cpu-ns/KB")
			b.ReportMetric(cpu.Seconds()/time.Since(start).Seconds(), "cores")
		})
	}
}
