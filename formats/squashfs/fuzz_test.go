package squashfs

import (
	"bytes"
	"io"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/rehydrator/rehydrator/internal/formattest"
)

// FuzzOpen: Open never panics or allocates without bound, and reading the
// View of an image it accepts ends in its bytes or an error.
func FuzzOpen(f *testing.F) {
	img, _ := synth()
	f.Add(img)
	f.Add(img[:superSize])
	if tool, err := exec.LookPath("mksquashfs"); err == nil {
		dir := f.TempDir()
		src := filepath.Join(dir, "src")
		formattest.WriteFile(f, filepath.Join(src, "a"), text(1, 5000))
		formattest.WriteFile(f, filepath.Join(src, "b/c"), text(2, 300))
		formattest.WriteFile(f, filepath.Join(src, "b/d"), make([]byte, 8192))
		formattest.WriteFile(f, filepath.Join(src, "e"), nil)
		for _, opts := range [][]string{
			{"-comp", "zstd", "-b", "4K"},
			{"-comp", "gzip", "-b", "4K"},
			{"-comp", "xz", "-b", "4K"},
			{"-comp", "lzma", "-b", "4K"},
			{"-b", "4K", "-no-fragments", "-noI"},
		} {
			dst := filepath.Join(dir, "img")
			args := append([]string{src, dst, "-noappend", "-quiet", "-no-progress"}, opts...)
			if out, err := exec.Command(tool, args...).CombinedOutput(); err != nil {
				f.Fatalf("mksquashfs: %v\n%s", err, out)
			}
			f.Add(formattest.ReadFile(f, dst))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		im, err := Open(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		var off int64
		for _, fl := range im.Layout() {
			if fl.Offset != off || fl.Size < 0 {
				t.Fatalf("layout: file at %d, size %d; want offset %d", fl.Offset, fl.Size, off)
			}
			off += fl.Size
		}
		v := im.Files()
		if v.Size() != off {
			t.Fatalf("View size %d, files sum to %d", v.Size(), off)
		}
		// Sparse files can make a View huge: read its start only.
		n, err := io.Copy(io.Discard, io.NewSectionReader(v, 0, min(v.Size(), 16<<20)))
		if err == nil && n != min(v.Size(), 16<<20) {
			t.Fatalf("read %d bytes of %d", n, v.Size())
		}
		var one [1]byte
		if v.Size() > 0 {
			v.ReadAt(one[:], v.Size()-1)
		}
	})
}
