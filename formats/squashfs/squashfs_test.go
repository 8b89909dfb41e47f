package squashfs

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"path/filepath"
	"sync"
	"testing"

	"github.com/rehydrator/rehydrator/internal/formattest"
	"github.com/rehydrator/rehydrator/internal/testtool"
)

// checkView compares the View of img with what unsquashfs extracts: every
// regular file once per inode, in the same order, the same bytes.
func checkView(t *testing.T, img string) *Image {
	t.Helper()
	im := openFile(t, img)
	pf := unsquashfsPF(t, img)
	layout := im.Layout()
	if len(layout) != len(pf.sizes) {
		t.Fatalf("%d files, unsquashfs lists %d", len(layout), len(pf.sizes))
	}
	var off int64
	for i, f := range layout {
		if f.Offset != off || f.Size != pf.sizes[i] {
			t.Fatalf("file %d (%s): offset %d size %d, unsquashfs: offset %d size %d", i, pf.names[i], f.Offset, f.Size, off, pf.sizes[i])
		}
		off += f.Size
	}
	v := im.Files()
	if v.Size() != int64(len(pf.data)) {
		t.Fatalf("View size %d, unsquashfs %d", v.Size(), len(pf.data))
	}
	got, err := io.ReadAll(io.NewSectionReader(v, 0, v.Size()))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, pf.data) {
		for i, f := range layout {
			if !bytes.Equal(got[f.Offset:f.Offset+f.Size], pf.data[f.Offset:f.Offset+f.Size]) {
				t.Fatalf("file %d (%s, %d bytes) differs", i, pf.names[i], f.Size)
			}
		}
		t.Fatal("View differs")
	}
	return im
}

func TestMksquashfs(t *testing.T) {
	src := filepath.Join(t.TempDir(), "root")
	makeTree(t, src, 1)
	cases := []struct {
		name string
		opts []string
	}{
		{"zstd", []string{"-comp", "zstd"}}, // level 15, as Fedora CoreOS
		{"zstd-9", []string{"-comp", "zstd", "-Xcompression-level", "9"}},
		{"gzip", []string{"-comp", "gzip"}},
		{"xz", []string{"-comp", "xz"}},
		{"lzma", []string{"-comp", "lzma"}},
		{"zstd-4K", []string{"-comp", "zstd", "-Xcompression-level", "3", "-b", "4K"}},
		{"zstd-1M", []string{"-comp", "zstd", "-Xcompression-level", "3", "-b", "1M"}},
		{"gzip-64K-no-fragments", []string{"-Xcompression-level", "1", "-b", "64K", "-no-fragments"}},
		{"zstd-always-use-fragments", []string{"-comp", "zstd", "-Xcompression-level", "3", "-always-use-fragments"}},
		{"zstd-no-duplicates", []string{"-comp", "zstd", "-Xcompression-level", "3", "-no-duplicates"}},
		{"zstd-no-sparse", []string{"-comp", "zstd", "-Xcompression-level", "3", "-no-sparse"}},
		{"uncompressed", []string{"-noI", "-noD", "-noF", "-noX"}},
		{"gzip-uncompressed-data", []string{"-Xcompression-level", "1", "-noD"}},
	}
	if testing.Short() {
		cases = cases[:3]
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img := mksquashfs(t, src, filepath.Join(t.TempDir(), "img"), c.opts...)
			checkView(t, img)
		})
	}
}

// TestAppend reads an image that mksquashfs appended to: the new data
// lies where the first image's tables were.
func TestAppend(t *testing.T) {
	dir := t.TempDir()
	src1, src2 := filepath.Join(dir, "one"), filepath.Join(dir, "two")
	formattest.WriteFile(t, filepath.Join(src1, "x"), text(7, 200<<10))
	formattest.WriteFile(t, filepath.Join(src2, "y"), text(8, 300<<10))
	img := mksquashfs(t, src1, filepath.Join(dir, "img"), "-comp", "zstd")
	testtool.Run(t, testtool.Require(t, "mksquashfs"), src2, img, "-quiet", "-no-progress")
	checkView(t, img)
}

func TestUnsupported(t *testing.T) {
	src := filepath.Join(t.TempDir(), "root")
	formattest.WriteFile(t, filepath.Join(src, "f"), text(1, 1000))
	for _, opts := range [][]string{
		{"-comp", "lz4"},
		{"-comp", "lzo"},
		{"-comp", "xz", "-Xbcj", "x86"},
	} {
		img := mksquashfs(t, src, filepath.Join(t.TempDir(), "img"), opts...)
		data := formattest.ReadFile(t, img)
		if _, err := Open(bytes.NewReader(data), int64(len(data))); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%v: Open: %v, want ErrUnsupported", opts, err)
		}
	}
}

// TestConcurrentReadAt reads random ranges on many goroutines and
// compares them with unsquashfs's extraction.
func TestConcurrentReadAt(t *testing.T) {
	src := filepath.Join(t.TempDir(), "root")
	makeTree(t, src, 1)
	img := mksquashfs(t, src, filepath.Join(t.TempDir(), "img"), "-comp", "zstd", "-b", "64K")
	want := unsquashfsPF(t, img).data
	v := openFile(t, img).Files()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(g)))
			buf := make([]byte, 300<<10)
			for range 300 {
				off := rng.Int63n(v.Size() + 10)
				n := rng.Intn(len(buf))
				if rng.Intn(4) == 0 {
					n = rng.Intn(100)
				}
				got, err := v.ReadAt(buf[:n], off)
				end := min(off+int64(n), int64(len(want)))
				wantN := int(max(end-off, 0))
				if got != wantN || (got < n && err != io.EOF) || (got == n && err != nil) {
					errs <- errorf("ReadAt(%d, %d) = %d, %v; want %d", n, off, got, err, wantN)
					return
				}
				if !bytes.Equal(buf[:got], want[off:off+int64(got)]) {
					errs <- errorf("ReadAt(%d, %d): wrong bytes", n, off)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	v.cache.mu.Lock()
	cached := v.cache.lru.Len()
	v.cache.mu.Unlock()
	if cached > cacheUnits {
		t.Errorf("%d blocks cached, at most %d wanted", cached, cacheUnits)
	}
	if _, err := v.ReadAt(make([]byte, 1), -1); err == nil {
		t.Error("ReadAt at -1: no error")
	}
}
