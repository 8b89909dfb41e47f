package vmdk

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/rehydrator/rehydrator/formats"
	"github.com/rehydrator/rehydrator/internal/formattest"
	"github.com/rehydrator/rehydrator/internal/testtool"
)

// streamFixture converts a fresh mixed raw disk to a streamOptimized VMDK
// with qemu-img, timing the conversion (the best of two runs, wall and CPU
// time), and returns the image.
func streamFixture(b *testing.B) (img []byte, qemuWall, qemuCPU time.Duration) {
	qemu := testtool.Require(b, "qemu-img")
	dir := b.TempDir()
	rawPath, _ := formattest.WriteMixedDisk(b, dir, testRawSize, 1)
	vm := filepath.Join(dir, "disk.vmdk")
	for range 2 {
		os.Remove(vm)
		cmd := exec.Command(qemu, "convert", "-f", "raw", "-O", "vmdk", "-o", qemuFormats[0].opts, rawPath, vm)
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("qemu-img convert: %v\n%s", err, out)
		}
		if d := time.Since(start); qemuWall == 0 || d < qemuWall {
			qemuWall = d
		}
		if c := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(); qemuCPU == 0 || c < qemuCPU {
			qemuCPU = c
		}
	}
	img, err := os.ReadFile(vm)
	if err != nil {
		b.Fatal(err)
	}
	return img, qemuWall, qemuCPU
}

// BenchmarkAssemble re-creates the streamOptimized fixture from its recipe
// and content into a file, and reports its time relative to the wall time
// of qemu-img making the same file from the raw disk (x-qemu; the target is
// ≤ 0.7), and its CPU time relative to qemu-img's (x-qemu-cpu; on a loaded
// machine wall times say little, and Assemble ≤ 0.7x qemu's wall time on 2
// cores needs x-qemu-cpu ≤ 1.4).
func BenchmarkAssemble(b *testing.B) {
	img, qemuWall, qemuCPU := streamFixture(b)
	recipe, content, st, err := formattest.Split(b, Split, img)
	if err != nil {
		b.Fatal(err)
	}
	if st.Kept != 0 {
		b.Logf("%d grains kept verbatim", st.Kept)
	}
	out := filepath.Join(b.TempDir(), "assembled.vmdk")
	b.SetBytes(testRawSize)
	cpu0 := testtool.ProcessCPU()
	b.ResetTimer()
	for b.Loop() {
		f, err := os.Create(out)
		if err != nil {
			b.Fatal(err)
		}
		if err := formats.Assemble(f, bytes.NewReader(recipe), bytes.NewReader(content)); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
	wall := b.Elapsed() / time.Duration(b.N)
	cpu := (testtool.ProcessCPU() - cpu0) / time.Duration(b.N)
	b.ReportMetric(qemuWall.Seconds(), "qemu-s")
	b.ReportMetric(wall.Seconds()/qemuWall.Seconds(), "x-qemu")
	b.ReportMetric(cpu.Seconds()/qemuCPU.Seconds(), "x-qemu-cpu")
	procs := runtime.GOMAXPROCS(0)
	b.Logf("Assemble: wall %v, CPU %v (GOMAXPROCS %d); qemu-img convert: wall %v, CPU %v; wall ratio %.2f (target ≤ 0.7), CPU ratio %.2f (on %d idle cores: %.2f)",
		wall, cpu, procs, qemuWall, qemuCPU, wall.Seconds()/qemuWall.Seconds(), cpu.Seconds()/qemuCPU.Seconds(),
		procs, cpu.Seconds()/float64(procs)/qemuCPU.Seconds())
}

// BenchmarkSplit splits the streamOptimized fixture (inflate and
// re-compress every grain).
func BenchmarkSplit(b *testing.B) {
	img, _, _ := streamFixture(b)
	b.SetBytes(int64(len(img)))
	b.ResetTimer()
	for b.Loop() {
		if _, _, _, err := formattest.Split(b, Split, img); err != nil {
			b.Fatal(err)
		}
	}
}
