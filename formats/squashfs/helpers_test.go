package squashfs

import (
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/rehydrator/rehydrator/internal/formattest"
	"github.com/rehydrator/rehydrator/internal/testtool"
)

// text returns n bytes of compressible, seed-dependent text.
func text(seed int64, n int) []byte {
	rng := rand.New(rand.NewSource(seed))
	words := []string{"squashfs", "block", "fragment", "inode", "zstd", "the", "of", "data", "rehydrator", "\n"}
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[rng.Intn(len(words))])
		b.WriteByte(' ')
		fmt.Fprint(&b, rng.Intn(1000))
	}
	return b.Bytes()[:n]
}

// random returns n incompressible bytes.
func random(seed int64, n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

// makeTree fills dir with what a root filesystem holds: small and big
// files, compressible and not, empty files, duplicates, hard links, sparse
// files, a directory big enough for an extended directory inode with an
// index, symlinks, a fifo, and a user xattr where the file system allows
// one. scale multiplies the big files' sizes.
func makeTree(t testing.TB, dir string, scale int) {
	t.Helper()
	formattest.WriteFile(t, filepath.Join(dir, "a.txt"), text(1, 100))
	formattest.WriteFile(t, filepath.Join(dir, "b/big.txt"), text(2, scale*700<<10+17))
	formattest.WriteFile(t, filepath.Join(dir, "b/random.bin"), random(3, scale*(1<<20)+5))
	formattest.WriteFile(t, filepath.Join(dir, "b/dup-of-big.txt"), text(2, scale*700<<10+17))
	formattest.WriteFile(t, filepath.Join(dir, "b/dup-of-a.txt"), text(1, 100))
	formattest.WriteFile(t, filepath.Join(dir, "b/exact-block"), text(4, 128<<10))
	formattest.WriteFile(t, filepath.Join(dir, "c/empty1"), nil)
	formattest.WriteFile(t, filepath.Join(dir, "c/empty2"), nil)
	formattest.WriteFile(t, filepath.Join(dir, "z-empty"), nil)
	if err := os.Link(filepath.Join(dir, "a.txt"), filepath.Join(dir, "c/hardlink-to-a")); err != nil {
		t.Fatal(err)
	}
	// Sparse: data, a 1 MiB hole, data; and a file of zeros only.
	sp := append(append(text(5, 300<<10), make([]byte, 1<<20)...), text(6, 100<<10+3)...)
	formattest.WriteFile(t, filepath.Join(dir, "d/sparse"), sp)
	formattest.WriteFile(t, filepath.Join(dir, "d/zeros"), make([]byte, 2<<20+100))
	for i := range 300 {
		formattest.WriteFile(t, filepath.Join(dir, fmt.Sprintf("many/a-rather-long-file-name-to-fill-directory-blocks-%04d", i)), text(int64(100+i), i*37))
	}
	if err := os.Symlink("a.txt", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "d/fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = syscall.Setxattr(filepath.Join(dir, "b/big.txt"), "user.test", []byte("value"), 0)
}

// mksquashfs makes an image of src with extra options and returns its path.
func mksquashfs(t testing.TB, src, dst string, opts ...string) string {
	t.Helper()
	tool := testtool.Require(t, "mksquashfs")
	args := append([]string{src, dst, "-noappend", "-quiet", "-no-progress",
		// A character device, as root filesystems have in /dev.
		"-p", "/dev-null c 666 0 0 1 3"}, opts...)
	testtool.Run(t, tool, args...)
	return dst
}

// pseudoFile is what `unsquashfs -pf` says of an image: its regular files
// (each inode once, hard links listed as links), in directory order, and
// their contents, concatenated.
type pseudoFile struct {
	names []string
	sizes []int64
	data  []byte
}

const pfDataMarker = "\n#\n# START OF DATA - DO NOT MODIFY\n#\n"

func unsquashfsPF(t testing.TB, img string) pseudoFile {
	t.Helper()
	tool := testtool.Require(t, "unsquashfs")
	pf := filepath.Join(t.TempDir(), "out.pf")
	testtool.Run(t, tool, "-no-progress", "-pf", pf, img)
	raw := formattest.ReadFile(t, pf)
	i := bytes.Index(raw, []byte(pfDataMarker))
	if i < 0 {
		t.Fatalf("unsquashfs -pf: no data marker")
	}
	var out pseudoFile
	out.data = raw[i+len(pfDataMarker):]
	var next int64
	for _, line := range strings.Split(string(raw[:i]), "\n") {
		// name R time mode uid gid size offset (names have no spaces here)
		f := strings.Fields(line)
		if len(f) != 8 || f[1] != "R" {
			continue
		}
		size, err1 := strconv.ParseInt(f[6], 10, 64)
		off, err2 := strconv.ParseInt(f[7], 10, 64)
		if err1 != nil || err2 != nil || off != next {
			t.Fatalf("unsquashfs -pf: unexpected line %q (want offset %d)", line, next)
		}
		next += size
		out.names = append(out.names, f[0])
		out.sizes = append(out.sizes, size)
	}
	if next != int64(len(out.data)) {
		t.Fatalf("unsquashfs -pf: files hold %d bytes, data %d", next, len(out.data))
	}
	return out
}

// openFile opens an image file.
func openFile(t testing.TB, path string) *Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	im, err := Open(f, st.Size())
	if err != nil {
		t.Fatalf("Open %s: %v", filepath.Base(path), err)
	}
	return im
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
