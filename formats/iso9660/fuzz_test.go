package iso9660

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/rehydrator/rehydrator/internal/formattest"
)

// seeds adds the synthetic images, their hostile variants and, if xorriso
// is installed, a small ISO it makes.
func seeds(f *testing.F) {
	f.Add(synth(true))
	f.Add(synth(false))
	for _, h := range hostile(f) {
		f.Add(h.img)
	}
	xorriso, err := exec.LookPath("xorriso")
	if err != nil {
		return
	}
	dir := f.TempDir()
	src := filepath.Join(dir, "src")
	for name, data := range map[string]string{"a/b/c.txt": "c", "boot.img": string(make([]byte, 4096)), "x": "x"} {
		formattest.WriteFile(f, filepath.Join(src, name), []byte(data))
	}
	iso := filepath.Join(dir, "seed.iso")
	out, err := exec.Command(xorriso, "-report_about", "SORRY", "-as", "mkisofs", "-r", "-J", "-no-pad",
		"-e", "boot.img", "-no-emul-boot", "-o", iso, src).CombinedOutput()
	if err != nil {
		f.Fatalf("xorriso: %v\n%s", err, out)
	}
	f.Add(formattest.ReadFile(f, iso))
}

// FuzzFiles: Files never panics, reads in proportion to the image, and
// what it lists lies in the image, sorted, each extent once.
//
// Run with -fuzzminimizetime 1x: the seeds are ~90 KiB, and with the
// default (60 s) a short run spends its time minimizing new inputs.
func FuzzFiles(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		r := &formattest.CountingReader{R: bytes.NewReader(data)}
		size := int64(len(data))
		files, err := Files(r, size)
		if limit := 3*size + 1<<20; r.N() > limit {
			t.Fatalf("read %d bytes of a %d-byte image", r.N(), size)
		}
		if err != nil {
			return
		}
		seen := map[[2]int64]bool{}
		for i, fl := range files {
			if fl.Size <= 0 || fl.Offset < 0 || fl.Offset+fl.Size > size {
				t.Fatalf("%q: %d bytes at %d, in a %d-byte image", fl.Path, fl.Size, fl.Offset, size)
			}
			if len(fl.Path) > maxPath {
				t.Fatalf("a path of %d bytes", len(fl.Path))
			}
			k := [2]int64{fl.Offset, fl.Size}
			if seen[k] {
				t.Fatalf("%q: extent listed twice", fl.Path)
			}
			seen[k] = true
			if i > 0 && (files[i-1].Offset > fl.Offset || files[i-1].Offset == fl.Offset && files[i-1].Size < fl.Size) {
				t.Fatalf("not sorted: %v before %v", files[i-1], fl)
			}
		}
	})
}

// FuzzSplit: Split never panics, and when it succeeds Assemble gives the
// input back exactly. Run with -fuzzminimizetime 1x, as FuzzFiles.
func FuzzSplit(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		formattest.FuzzRoundTrip(t, Split, data)
	})
}
